"""Image similarity measures used to calibrate and test perturbations.

SSIM follows Wang et al. (2004): Gaussian window (sigma 1.5, 11x11), K1 = 0.01,
K2 = 0.03, dynamic range 255, on the luma channel, averaged over the image.

>>> import numpy as np
>>> img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
>>> ssim(img, img)
1.0
>>> ssim(img, 255 - img) < 0.1
True
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["psnr", "ssim"]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _luma(image: NDArray[np.uint8]) -> NDArray[np.float64]:
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.float64)
    # ITU-R BT.601 weights, as most SSIM implementations use for colour input.
    w = np.array([0.299, 0.587, 0.114])
    return np.asarray(img[..., :3].astype(np.float64) @ w, dtype=np.float64)


def _blur(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT))


def ssim(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Mean structural similarity of two same-sized images (1.0 = identical).

    Images of different sizes (rotate90 on a non-square image) compare as 0.
    """
    if a.shape[:2] != b.shape[:2]:
        return 0.0
    x, y = _luma(a), _luma(b)
    mx, my = _blur(x), _blur(y)
    sxx = _blur(x * x) - mx * mx
    syy = _blur(y * y) - my * my
    sxy = _blur(x * y) - mx * my
    num = (2 * mx * my + _C1) * (2 * sxy + _C2)
    den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
    return float(round(float(np.mean(num / den)), 12))


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images).

    >>> import numpy as np
    >>> round(psnr(np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)), 6)
    0.0
    """
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))
