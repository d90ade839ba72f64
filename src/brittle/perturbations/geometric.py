"""Geometric perturbations: camera pose and framing. Pixels move, and boxes move with them.

Every perturbation here is one exact map of the plane. Box coordinates are continuous
(pixel ``i`` covers ``[i, i + 1)``); the map is stored in ``params`` in that convention as
a plain 3x3 list (or the few numbers that define it), and both the pixels (through
OpenCV) and the boxes (through :meth:`map_points` and
:func:`brittle.perturbations.base.transform_boxes`) are moved by that same map. OpenCV puts
pixel centres at integer coordinates, so the warp matrix handed to it is the stored one
conjugated by a half-pixel shift (:func:`_cv_matrix`).

Frames are filled the way a real camera fills them where that is possible: a tilted
camera (``rotate``) or a camera looking from a slightly different angle (``perspective``)
still sees a full picture, so those zoom in just enough to avoid empty corners. Where the
real camera would see content we do not have (``scale``: camera further away;
``translate``: camera panned), the uncovered area is black rather than mirrored, because
mirrored copies would add unlabelled objects that count as false positives.

>>> import numpy as np
>>> p = Rotate90()
>>> p.map_points(np.array([[10.0, 20.0]]), {}, 50, 100).tolist()
[[30.0, 10.0]]
"""

from __future__ import annotations

import math
from typing import ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import register
from brittle.perturbations.base import Image, Params, Perturbation, level, short_side

__all__ = [
    "Crop",
    "Hflip",
    "Perspective",
    "Rotate",
    "Rotate90",
    "Scale",
    "Translate",
    "Vflip",
]

Matrix = NDArray[np.float64]

# Half-pixel shifts between box coordinates (pixel i covers [i, i+1)) and OpenCV's
# (pixel i is centred on i).
_TO_CV = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
_FROM_CV = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])

_BLACK = (0, 0, 0)


def _cv_matrix(m: Matrix) -> Matrix:
    """The warp matrix for OpenCV, given the map ``m`` in box coordinates."""
    return np.asarray(_TO_CV @ m @ _FROM_CV, dtype=np.float64)


def _apply_matrix(points: NDArray[np.float64], m: Matrix) -> NDArray[np.float64]:
    """(N, 2) points through a 3x3 projective (or affine) matrix."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    hom = pts @ m[:, :2].T + m[:, 2]
    return np.asarray(hom[:, :2] / hom[:, 2:3], dtype=np.float64)


def _matrix(params: Params) -> Matrix:
    return np.asarray(params["matrix"], dtype=np.float64).reshape(3, 3)


def _as_list(m: Matrix) -> list[list[float]]:
    return [[float(v) for v in row] for row in m]


def _warp_affine(image: Image, m: Matrix, border: int) -> Image:
    h, w = image.shape[:2]
    out = cv2.warpAffine(
        image,
        _cv_matrix(m)[:2],
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=_BLACK,
    )
    return np.ascontiguousarray(out, dtype=np.uint8)


class _Geometric(Perturbation):
    """Shared plumbing: the family, and map_points from a stored matrix."""

    family: ClassVar[str] = "geometric"
    geometric: ClassVar[bool] = True

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        return _apply_matrix(points, _matrix(params))


@register
class Hflip(_Geometric):
    """Mirror image left-right (camera image flipped in firmware, or a mirrored feed).

    All-or-nothing: every severity is the same flip, ``x -> W - x``.
    """

    name: ClassVar[str] = "hflip"
    description: ClassVar[str] = "horizontal mirror (flipped feed); boxes mirrored, x -> W - x"
    random: ClassVar[bool] = False
    graded: ClassVar[bool] = False

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return np.ascontiguousarray(cv2.flip(image, 1), dtype=np.uint8)

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        out = np.array(points, np.float64).reshape(-1, 2)
        out[:, 0] = width - out[:, 0]
        return out


@register
class Vflip(_Geometric):
    """Upside-down image (camera mounted on a ceiling without the flip setting).

    All-or-nothing: every severity is the same flip, ``y -> H - y``.
    """

    name: ClassVar[str] = "vflip"
    description: ClassVar[str] = "vertical mirror (ceiling-mounted camera); boxes mirrored"
    random: ClassVar[bool] = False
    graded: ClassVar[bool] = False

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return np.ascontiguousarray(cv2.flip(image, 0), dtype=np.uint8)

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        out = np.array(points, np.float64).reshape(-1, 2)
        out[:, 1] = height - out[:, 1]
        return out


@register
class Rotate90(_Geometric):
    """Camera mounted sideways: the picture turned 90 degrees clockwise.

    All-or-nothing: every severity is the same turn. A (H, W) image becomes (W, H);
    a point (x, y) goes to (H - y, x).
    """

    name: ClassVar[str] = "rotate90"
    description: ClassVar[str] = "camera mounted sideways: 90 degrees clockwise (H and W swap)"
    random: ClassVar[bool] = False
    graded: ClassVar[bool] = False

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return np.ascontiguousarray(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), dtype=np.uint8)

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return np.stack([height - pts[:, 1], pts[:, 0]], axis=1)

    def output_size(self, params: Params, height: int, width: int) -> tuple[int, int]:
        return width, height


def rotation_matrix(angle: float, height: int, width: int) -> tuple[Matrix, float]:
    """Rotation by ``angle`` degrees (positive: counter-clockwise on screen) about the image
    centre, zoomed by the smallest factor that leaves no empty corner; returns
    ``(matrix, zoom)`` in box coordinates.

    >>> m, zoom = rotation_matrix(90.0, 100, 100)
    >>> round(zoom, 9), np.round(m @ [100, 50, 1], 9).tolist()
    (1.0, [50.0, 0.0, 1.0])
    """
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    ac, as_ = abs(c), abs(s)
    # The output frame, turned back by -angle and shrunk by 1/zoom, must fit in the source.
    zoom = max((width * ac + height * as_) / width, (width * as_ + height * ac) / height)
    cx, cy = width / 2, height / 2
    # y points down, so this is counter-clockwise as seen on screen.
    a = np.array([[c, s], [-s, c]]) * zoom
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = np.array([cx, cy]) - a @ np.array([cx, cy])
    return m, zoom


@register
class Rotate(_Geometric):
    """Tilted camera (not levelled): the picture rotated about its centre by a small angle of
    random sign, zoomed just enough that no black corner shows (what a tilted camera with
    the same lens records).

    ============  ====  ====  ====  ====  ====
    severity       1     2     3     4     5
    ============  ====  ====  ====  ====  ====
    angle (deg)    3     6    10    15    20
    zoom, square  1.05  1.10  1.16  1.22  1.28
    ============  ====  ====  ====  ====  ====

    The zoom is larger on non-square images (1.55 at 20 degrees for 16:9).
    """

    name: ClassVar[str] = "rotate"
    description: ClassVar[str] = "tilted camera: rotation 3-20 deg, random sign, cropped to fill"

    ANGLES: ClassVar[tuple[float, ...]] = (3.0, 6.0, 10.0, 15.0, 20.0)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        # +-10% around the nominal angle: real tilts are never round numbers, and a sign
        # alone would give only two distinct outputs per severity.
        sign = 1.0 if rng.random() < 0.5 else -1.0
        angle = sign * level(self.ANGLES, severity) * float(rng.uniform(0.9, 1.1))
        m, zoom = rotation_matrix(angle, height, width)
        return {"angle": angle, "zoom": zoom, "matrix": _as_list(m)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        # The zoom keeps the warped frame inside the source; the border mode only decides
        # the half-pixel at the edge, where the edge pixel itself is the right value.
        return _warp_affine(image, _matrix(params), cv2.BORDER_REPLICATE)


@register
class Scale(_Geometric):
    """Camera further away (zoom out): the picture shrunk about its centre by a factor and
    padded with black (content beyond the original frame is unknown; black rather than
    mirrored so no unlabelled copies of objects appear).

    ============  ====  ====  ====  ====  ====
    severity       1     2     3     4     5
    ============  ====  ====  ====  ====  ====
    factor        0.95  0.88  0.80  0.70  0.60
    ============  ====  ====  ====  ====  ====

    Resampled with area averaging (what a further camera's sensor does); the shrunk image
    has whole-pixel size and offset so the map stays exact.
    """

    name: ClassVar[str] = "scale"
    description: ClassVar[str] = "camera further away: image shrunk to 0.95-0.60, black border"
    random: ClassVar[bool] = False

    FACTORS: ClassVar[tuple[float, ...]] = (0.95, 0.88, 0.80, 0.70, 0.60)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        f = level(self.FACTORS, severity)
        nw, nh = max(1, round(width * f)), max(1, round(height * f))
        x0, y0 = (width - nw) // 2, (height - nh) // 2
        return {"factor": f, "size": [nw, nh], "offset": [x0, y0]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        nw, nh = (int(v) for v in params["size"])
        x0, y0 = (int(v) for v in params["offset"])
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        out = np.zeros_like(image)
        out[y0 : y0 + nh, x0 : x0 + nw] = small
        return out

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        nw, nh = params["size"]
        x0, y0 = params["offset"]
        # cv2.resize maps continuous coordinates by exactly new/old size per axis.
        return np.stack([pts[:, 0] * (nw / width) + x0, pts[:, 1] * (nh / height) + y0], axis=1)


@register
class Translate(_Geometric):
    """Camera panned or bumped: the picture shifted in a random direction by a fraction of
    the short side, the uncovered strip black. Shifts are whole pixels (no resampling).

    =====================  ====  ====  ====  ====  ====
    severity                1     2     3     4     5
    =====================  ====  ====  ====  ====  ====
    shift / short side     0.03  0.06  0.10  0.15  0.20
    =====================  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "translate"
    description: ClassVar[str] = "camera panned: shift 3-20% of short side, random direction"

    SHIFTS: ClassVar[tuple[float, ...]] = (0.03, 0.06, 0.10, 0.15, 0.20)

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        dist = level(self.SHIFTS, severity) * short_side(height, width)
        theta = float(rng.uniform(0.0, 2 * math.pi))
        dx, dy = round(dist * math.cos(theta)), round(dist * math.sin(theta))
        return {"shift": [int(dx), int(dy)]}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        dx, dy = (int(v) for v in params["shift"])
        out = np.zeros_like(image)
        if abs(dx) >= w or abs(dy) >= h:
            return out
        out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        return out

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        dx, dy = params["shift"]
        return np.asarray(points, np.float64).reshape(-1, 2) + np.array([dx, dy], np.float64)


@register
class Perspective(_Geometric):
    """Camera looking from a slightly different angle (keystone): each corner of a source
    quadrilateral is moved inward from the frame corner by a fraction of the short side, in
    a random direction within 15 degrees of the diagonal, and that quadrilateral is
    stretched onto the full frame, so the view stays full (no black wedges) like a real
    camera's. Unequal corner moves make the lean; their shared inward part is a zoom.

    ===========================  ====  ====  ====  ====  ====
    severity                      1     2     3     4     5
    ===========================  ====  ====  ====  ====  ====
    corner shift / short side    0.03  0.06  0.10  0.15  0.21
    ===========================  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "perspective"
    description: ClassVar[str] = "camera angle change: homography from 3-21% corner shifts"

    SHIFTS: ClassVar[tuple[float, ...]] = (0.03, 0.06, 0.10, 0.15, 0.21)
    SPREAD: ClassVar[float] = math.pi / 12

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        d = level(self.SHIFTS, severity) * short_side(height, width)
        # Fixed shift length, random inward direction per corner: the severity sets how far
        # the view moves, the direction mix sets which way it leans. Directions near the
        # diagonal keep the strength of a severity nearly the same from draw to draw.
        theta = rng.uniform(math.pi / 4 - self.SPREAD, math.pi / 4 + self.SPREAD, 4)
        frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
        inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64)
        src = frame + inward * d * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        m = cv2.getPerspectiveTransform(src.astype(np.float32), frame.astype(np.float32))
        m = np.asarray(m, np.float64) / float(m[2, 2])
        return {"corners": [[float(v) for v in c] for c in src], "matrix": _as_list(m)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        out = cv2.warpPerspective(
            image,
            _cv_matrix(_matrix(params)),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
            borderValue=_BLACK,
        )
        return np.ascontiguousarray(out, dtype=np.uint8)


@register
class Crop(_Geometric):
    """Zoom in / tighter framing: a window of a fraction of the image (same aspect ratio)
    resized back to the full size. Objects grow and those near the edge are cut. The
    window's centre is random within 0.05 of the short side of the image centre (framing
    jitter); a wider range would make the strength of a severity depend on the draw more
    than on the severity.

    =====================  ====  ====  ====  ====  ====
    severity                1     2     3     4     5
    =====================  ====  ====  ====  ====  ====
    window / image side    0.95  0.88  0.80  0.70  0.60
    =====================  ====  ====  ====  ====  ====
    """

    name: ClassVar[str] = "crop"
    description: ClassVar[str] = "zoom in: random window 0.95-0.60 of the frame, resized back"

    FRACTIONS: ClassVar[tuple[float, ...]] = (0.95, 0.88, 0.80, 0.70, 0.60)
    REACH: ClassVar[float] = 0.05

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        f = level(self.FRACTIONS, severity)
        reach = self.REACH * short_side(height, width)
        sx, sy = width * (1 - f) / 2, height * (1 - f) / 2
        u, v = rng.uniform(-1.0, 1.0, 2)
        x0 = float(sx + u * min(sx, reach))
        y0 = float(sy + v * min(sy, reach))
        m = np.array([[1 / f, 0.0, -x0 / f], [0.0, 1 / f, -y0 / f], [0.0, 0.0, 1.0]])
        return {"fraction": f, "window": [x0, y0, width * f, height * f], "matrix": _as_list(m)}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        return _warp_affine(image, _matrix(params), cv2.BORDER_REPLICATE)
