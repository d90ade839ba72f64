"""A detector with no network at all: the demo's shapes found by classical computer vision.

brittle tests any predictor, not only neural networks. This one finds the circles, squares
and triangles of ``brittle demo``'s synthetic scenes with OpenCV alone, so it runs wherever
core brittle does (no extra, no download)::

    brittle demo --out runs/demo      # writes the scenes to runs/demo/data
    brittle eval --data runs/demo/data --model examples/shapes_contours.py:ShapesContours
    brittle run --data runs/demo/data --suite quick \\
        --model contours=examples/shapes_contours.py:ShapesContours

How: the demo's objects are flat-filled and sharply outlined. Below a colour-gradient
threshold each is a connected region; its outline is compared with the best-fitting
ellipse, rectangle and triangle (IoU of the masks), and the best fit names the class. On
the demo's 100 validation scenes it reaches mAP50 0.94 (mAP50-95 0.85), as high as the
demo's trained models, but it breaks differently: noise and JPEG artefacts cut its regions
apart (rPC 0.13 under noise in the quick suite), while fog and low light matter less.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.models.nms import postprocess
from brittle.types import Detections

CLASS_NAMES = ("circle", "square", "triangle")

Candidate = tuple[list[float], float, int]


class ShapesContours:
    """Circles, squares and triangles by contour shape fit (a brittle Python predictor).

    ``conf``, ``iou`` and ``max_det`` come from brittle's evaluation settings; the rest
    tune the segmentation (the defaults were chosen on the demo's validation scenes).
    """

    def __init__(
        self,
        *,
        conf: float = 0.001,
        iou: float | None = None,
        max_det: int = 300,
        thresholds: Sequence[float] = (4, 6, 8, 12, 16, 24, 32),
        blur: float = 0.5,
        contrast: float = 10.0,
        min_area: int = 20,
    ) -> None:
        self.conf, self.max_det = conf, max_det
        # Regions found at neighbouring thresholds are mostly the same object: suppress
        # the duplicates hard (0.5 beat 0.3 and 0.7 on the demo scenes).
        self.iou = 0.5 if iou is None else iou
        self.thresholds = tuple(float(t) for t in thresholds)
        self.blur, self.contrast, self.min_area = blur, contrast, min_area
        # The source is the model here: any edit may change predictions, so it is hashed
        # along with every setting, and brittle's cache never serves stale detections.
        settings = json.dumps([self.conf, self.iou, self.max_det, self.thresholds, blur,
                               contrast, min_area])  # fmt: skip
        digest = hashlib.sha256(Path(__file__).read_bytes() + settings.encode()).hexdigest()
        self._fingerprint = f"shapes-contours:{digest[:32]}"

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        return [self._one(image) for image in images]

    def _one(self, image: NDArray[np.uint8]) -> Detections:
        grad = self._gradient(image)
        found: list[Candidate] = []
        for t in self.thresholds:
            # One threshold cannot suit every scene: objects differ from their backgrounds
            # by more or less colour, and textured backgrounds need a higher one.
            flat = (grad < t).astype(np.uint8)
            n, regions, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
            for i in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[i])
                # Objects are at most ~60 px of 160: anything larger is background.
                if area >= self.min_area and w <= 0.6 * grad.shape[1] and h <= 0.6 * grad.shape[0]:
                    cand = self._candidate(grad, np.asarray(regions, np.int32), i, (x, y, w, h))
                    if cand is not None:
                        found.append(cand)
        if not found:
            return Detections.empty()
        boxes = np.array([c[0] for c in found], np.float32)
        scores = np.array([c[1] for c in found], np.float32)
        labels = np.array([c[2] for c in found], np.int64)
        keep = postprocess(
            boxes, scores, labels, conf=self.conf, iou=self.iou, max_det=self.max_det
        )
        return Detections(boxes[keep], scores[keep], labels[keep])

    def _gradient(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        # Lab, because two colours of equal brightness differ only in a and b; the largest
        # channel gradient, so that a difference in any one of them is an edge.
        smooth = cv2.GaussianBlur(image, (0, 0), self.blur) if self.blur > 0 else image
        lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
        grads = [
            np.hypot(cv2.Sobel(ch, cv2.CV_32F, 1, 0), cv2.Sobel(ch, cv2.CV_32F, 0, 1)) / 8
            for ch in cv2.split(lab)
        ]
        return np.asarray(np.max(grads, axis=0), np.float32)

    def _candidate(
        self, grad: NDArray[np.float32], regions: NDArray[np.int32], i: int, rect: tuple[int, ...]
    ) -> Candidate | None:
        x, y, w, h = rect
        H, W = grad.shape
        x0, y0, x1, y1 = max(x - 2, 0), max(y - 2, 0), min(x + w + 2, W), min(y + h + 2, H)
        core = (regions[y0:y1, x0:x1] == i).astype(np.uint8)
        # The object's own edge is above the threshold, so the region stops a pixel short
        # of the outline the labels box: grow it back by that pixel.
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        mask = np.asarray(cv2.dilate(core, disk), np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        if len(contour) < 5:  # fitEllipse needs five points
            return None
        fits = _shape_fits(mask, contour)
        label = int(fits.argmax())
        # A good fit alone also finds background tiles and stripes; what sets objects apart
        # is a sharp, contrasted outline, and lying inside the image, not cut by its border.
        ring = (mask > 0) & (core == 0)
        edge = float(grad[y0:y1, x0:x1][ring].mean()) if ring.any() else 0.0
        pts = contour.reshape(-1, 2) + np.array([x0, y0])
        cut = np.mean((pts.min(axis=1) <= 0) | (pts[:, 0] >= W - 1) | (pts[:, 1] >= H - 1))
        score = float(fits[label]) * edge / (edge + self.contrast) * (1.0 - float(cut)) ** 2
        bx, by, bw, bh = cv2.boundingRect(contour)
        box = [x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh]
        return [float(v) for v in box], score, label


def _shape_fits(mask: NDArray[np.uint8], contour: NDArray[Any]) -> NDArray[np.float64]:
    """IoU of the region with its fitted ellipse, min-area rectangle and enclosing triangle."""
    region = mask > 0
    rect = np.round(cv2.boxPoints(cv2.minAreaRect(contour))).astype(np.int32)
    _, triangle = cv2.minEnclosingTriangle(contour)
    shapes = [np.zeros_like(mask) for _ in CLASS_NAMES]
    cv2.ellipse(shapes[0], cv2.fitEllipse(contour), 1, -1)
    cv2.fillPoly(shapes[1], [rect], 1)
    cv2.fillPoly(shapes[2], [np.round(triangle.reshape(-1, 2)).astype(np.int32)], 1)
    out = []
    for shape in shapes:
        s = shape > 0
        out.append((region & s).sum() / max(int((region | s).sum()), 1))
    return np.array(out, np.float64)
