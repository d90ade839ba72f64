"""The predictor contract: what brittle needs from any model.

A predictor maps a batch of RGB uint8 images to one :class:`~brittle.types.Detections`
per image, with boxes in each image's own pixel coordinates and labels indexing
``class_names``. ``fingerprint`` identifies the exact model (weights hash, or
endpoint + version) so cached predictions are keyed correctly.

>>> import numpy as np
>>> from brittle.types import Detections
>>> class Everywhere:
...     class_names = ("thing",)
...     fingerprint = "everywhere-v1"
...     def predict(self, images):
...         return [Detections([[0, 0, im.shape[1], im.shape[0]]], [1.0], [0]) for im in images]
>>> isinstance(Everywhere(), Predictor)
True
>>> Everywhere().predict([np.zeros((4, 6, 3), np.uint8)])[0].boxes.tolist()
[[0.0, 0.0, 6.0, 4.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from brittle.types import Detections

__all__ = ["Predictor"]


@runtime_checkable
class Predictor(Protocol):
    """Anything with ``class_names``, ``fingerprint`` and ``predict(images)``."""

    @property
    def class_names(self) -> Sequence[str]:
        """Names of the classes the model predicts; ``Detections.labels`` index this."""
        ...

    @property
    def fingerprint(self) -> str:
        """A string that changes whenever the model's predictions could change."""
        ...

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        """Detections for each RGB uint8 (H, W, 3) image, in that image's pixels."""
        ...
