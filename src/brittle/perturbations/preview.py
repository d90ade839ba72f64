"""Preview grids: rows are perturbations, columns are the clean image and severities 1..5.

A grid is for people: each cell is labelled, geometric rows show the moved boxes,
and cells are thumbnails so a grid of the whole catalogue stays a few MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import get_perturbation, rng_for
from brittle.perturbations.base import SEVERITIES

__all__ = ["preview_grid"]

_LABEL_W = 170
_HEADER_H = 26


def _fit(image: NDArray[np.uint8], cell: int) -> tuple[NDArray[np.uint8], float]:
    """Resize into a cell x cell square (letterboxed on dark gray); returns the scale."""
    h, w = image.shape[:2]
    s = cell / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.full((cell, cell, 3), 40, np.uint8)
    y0, x0 = (cell - nh) // 2, (cell - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = small
    return canvas, s


def _text(img: NDArray[np.uint8], text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)


def preview_grid(
    image: NDArray[np.uint8],
    names: Sequence[str],
    *,
    boxes: NDArray[np.float64] | None = None,
    seed: int = 0,
    cell: int = 160,
    sample_id: str = "preview",
) -> NDArray[np.uint8]:
    """An RGB grid image: one row per perturbation name, columns clean, 1, 2, 3, 4, 5.

    >>> img = np.full((40, 60, 3), 100, np.uint8)
    >>> preview_grid(img, ["gaussian_noise", "hflip"], cell=32).shape
    (90, 362, 3)
    """
    cols = 1 + len(SEVERITIES)
    grid = np.full((_HEADER_H + cell * len(names), _LABEL_W + cell * cols, 3), 24, np.uint8)
    for j, title in enumerate(["clean", *(f"severity {s}" for s in SEVERITIES)]):
        _text(grid, title, (_LABEL_W + j * cell + 6, 18))
    for i, name in enumerate(names):
        p = get_perturbation(name)
        y = _HEADER_H + i * cell
        _text(grid, name, (6, y + cell // 2 - 4))
        _text(grid, f"({p.family})", (6, y + cell // 2 + 14), 0.4)
        row: list[tuple[NDArray[np.uint8], NDArray[np.float64] | None]] = [(image, boxes)]
        for s in SEVERITIES:
            out, moved, _, _ = p(image, s, rng_for(seed, p.name, s, sample_id), boxes)
            row.append((out, moved))
        for j, (img, bxs) in enumerate(row):
            thumb, scale = _fit(img, cell)
            if bxs is not None:
                oy = (cell - round(img.shape[0] * scale)) // 2
                ox = (cell - round(img.shape[1] * scale)) // 2
                for b in bxs:
                    x1, y1, x2, y2 = (b * scale).round().astype(int)
                    cv2.rectangle(thumb, (x1 + ox, y1 + oy), (x2 + ox, y2 + oy), (255, 200, 0), 1)
            grid[y : y + cell, _LABEL_W + j * cell : _LABEL_W + (j + 1) * cell] = thumb
    return grid
