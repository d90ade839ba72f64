"""Fitting an image into a detector's fixed input, and mapping boxes back.

Two ways to fit: *letterbox* (scale by one ratio so the whole image fits,
pad the rest; the image sits at the centre, as in Ultralytics, or at the top
left, as in YOLOX) or *plain resize* (stretch each axis separately). The
:class:`Fit` remembers the scale and padding so boxes the model predicts in
input pixels go back to the original image exactly.

>>> fit = Fit.compute(480, 640, 416, 416, letterbox=True, center=True)
>>> fit.new_w, fit.new_h, fit.pad_x, fit.pad_y
(416, 312, 0, 52)
>>> fit.to_original(fit.to_input([[100, 50, 300, 200]])).tolist()
[[100.0, 50.0, 300.0, 200.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Fit"]


@dataclass(frozen=True, slots=True)
class Fit:
    """How one image of ``src_h`` x ``src_w`` is placed in the model input.

    ``scale_x``/``scale_y`` multiply original pixels into input pixels (equal
    under letterbox); ``pad_x``/``pad_y`` are the left/top padding;
    ``new_w``/``new_h`` the size of the resized image inside the input.
    """

    src_h: int
    src_w: int
    dst_h: int
    dst_w: int
    new_h: int
    new_w: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    @classmethod
    def compute(
        cls, src_h: int, src_w: int, dst_h: int, dst_w: int, *, letterbox: bool, center: bool
    ) -> Fit:
        """The placement of a ``src_h`` x ``src_w`` image in a ``dst_h`` x ``dst_w`` input.

        Letterbox rounding and padding follow Ultralytics' ``LetterBox`` (which
        YOLOv5/v8 were validated with); at the top left the padding is 0.

        >>> Fit.compute(100, 200, 64, 64, letterbox=False, center=False).scale_y
        0.64
        """
        if not letterbox:
            return cls(src_h, src_w, dst_h, dst_w, dst_h, dst_w, dst_w / src_w, dst_h / src_h, 0, 0)
        r = min(dst_h / src_h, dst_w / src_w)
        new_w, new_h = round(src_w * r), round(src_h * r)
        new_w, new_h = min(max(new_w, 1), dst_w), min(max(new_h, 1), dst_h)
        if center:
            # The -0.1 puts an odd pixel of padding on the bottom/right, like Ultralytics.
            pad_x = round((dst_w - new_w) / 2 - 0.1)
            pad_y = round((dst_h - new_h) / 2 - 0.1)
        else:
            pad_x = pad_y = 0
        return cls(src_h, src_w, dst_h, dst_w, new_h, new_w, r, r, max(pad_x, 0), max(pad_y, 0))

    def apply(
        self, image: NDArray[np.uint8], canvas: NDArray[np.uint8], pad_value: int
    ) -> NDArray[np.uint8]:
        """Draw ``image`` into ``canvas`` (``dst_h`` x ``dst_w`` x 3, reused between calls)."""
        resized: NDArray[Any]
        if (self.new_h, self.new_w) == image.shape[:2]:
            resized = image
        else:
            resized = cv2.resize(image, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)
        if (self.new_h, self.new_w) != (self.dst_h, self.dst_w):
            canvas[...] = pad_value
        canvas[self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w] = resized
        return canvas

    def to_input(self, boxes: ArrayLike) -> NDArray[np.float64]:
        """Boxes in original pixels -> input pixels (the inverse of :meth:`to_original`)."""
        b = np.array(boxes, np.float64).reshape(-1, 4)
        b[:, 0::2] = b[:, 0::2] * self.scale_x + self.pad_x
        b[:, 1::2] = b[:, 1::2] * self.scale_y + self.pad_y
        return b

    def to_original(self, boxes: ArrayLike) -> NDArray[np.float64]:
        """Boxes in input pixels -> original pixels, clipped to the image.

        >>> fit = Fit.compute(10, 10, 20, 20, letterbox=True, center=True)
        >>> fit.to_original([[-4, 2, 30, 8]]).tolist()
        [[0.0, 1.0, 10.0, 4.0]]
        """
        b = np.array(boxes, np.float64).reshape(-1, 4)
        b[:, 0::2] = (b[:, 0::2] - self.pad_x) / self.scale_x
        b[:, 1::2] = (b[:, 1::2] - self.pad_y) / self.scale_y
        b[:, 0::2] = np.clip(b[:, 0::2], 0, self.src_w)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, self.src_h)
        return b
