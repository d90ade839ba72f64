"""The perturbation contract: draw parameters, then apply them, purely.

A perturbation is a subclass of :class:`Perturbation` (one level deep, no
metaclass) registered with ``@brittle.perturbations.register``. Drawing random
parameters is separate from applying them (as in albumentations):

* ``params(severity, height, width, rng)`` draws everything random that is not
  per-pixel (an angle, a crop window, a JPEG quality) and returns a JSON-able
  dict: it is stored with results, so a perturbed image can be reproduced
  exactly from it.
* ``apply(image, params, rng)`` is pure: it never mutates ``image`` and draws
  per-pixel randomness (noise fields, snow flakes) from ``rng`` only.
* Geometric perturbations also implement ``map_points(points, params, h, w)``;
  boxes (ground truth or predictions) move through it with
  :func:`transform_boxes`. Photometric ones never touch boxes.

All randomness comes from :func:`rng_for`, derived from (seed, perturbation,
severity, sample id), so results never depend on worker count or order.

>>> import numpy as np
>>> a = rng_for(0, "gaussian_noise", 3, "img1.jpg").integers(0, 1000, 3)
>>> b = rng_for(0, "gaussian_noise", 3, "img1.jpg").integers(0, 1000, 3)
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from brittle.errors import ConfigError

__all__ = [
    "FAMILIES",
    "MIN_VISIBLE_FRACTION",
    "SEVERITIES",
    "Params",
    "Perturbation",
    "as_image",
    "check_severity",
    "level",
    "rng_for",
    "short_side",
    "transform_boxes",
    "validate_class",
]

Params = dict[str, Any]
Image = NDArray[np.uint8]

SEVERITIES = (1, 2, 3, 4, 5)

#: Families in display order, with what they model.
FAMILIES: dict[str, str] = {
    "noise": "sensor and transmission noise",
    "blur": "focus, motion and optical blur",
    "weather": "fog, frost, snow, rain, dirt and glare",
    "light": "exposure, contrast and colour",
    "digital": "compression, resampling and data loss",
    "geometric": "camera pose and framing (boxes move with the pixels)",
    "occlusion": "occluders and lens defects",
}

#: A transformed box is dropped when less than this fraction of it stays inside the image
#: (the fraction of the transformed box's area that survives clipping).
MIN_VISIBLE_FRACTION = 0.25


def rng_for(seed: int, perturbation: str, severity: int, sample_id: str) -> np.random.Generator:
    """The one source of randomness: a generator derived from its four inputs.

    Hashing (rather than, say, ``seed + index``) keeps streams independent across
    perturbations and images, and stable whatever order images are processed in.
    """
    key = f"{seed}\x1f{perturbation}\x1f{severity}\x1f{sample_id}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))


def check_severity(severity: int) -> int:
    """Severities are the integers 1..5.

    >>> check_severity(6)
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: severity must be an integer from 1 to 5, got 6
    """
    if (
        isinstance(severity, bool)
        or not isinstance(severity, int | np.integer)
        or not (1 <= int(severity) <= 5)
    ):
        raise ConfigError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def level(table: tuple[float, ...], severity: int) -> float:
    """The parameter of ``severity`` (1..5) from a five-entry table.

    >>> level((0.1, 0.2, 0.3, 0.4, 0.5), 2)
    0.2
    """
    return float(table[severity - 1])


def as_image(x: Any) -> Image:
    """A C-contiguous uint8 image, the form every ``apply`` returns (no copy when it is one)."""
    return np.ascontiguousarray(x, dtype=np.uint8)


def short_side(height: int, width: int) -> int:
    """Spatial parameters are defined relative to this, so 640 and 1280 images look alike."""
    return min(height, width)


class Perturbation:
    """Base class of brittle's perturbations (subclass once; register with the decorator)."""

    #: snake_case name, unique in the registry.
    name: ClassVar[str] = ""
    #: one of :data:`FAMILIES`.
    family: ClassVar[str] = ""
    #: one line for ``brittle perturbations``.
    description: ClassVar[str] = ""
    #: bump when the output for given inputs changes: part of every cache key.
    version: ClassVar[int] = 1
    #: True when pixels move (and boxes must move with them).
    geometric: ClassVar[bool] = False
    #: False when the output does not depend on the random generator at all.
    random: ClassVar[bool] = True
    #: False for all-or-nothing perturbations (hflip, vflip, rotate90): every severity
    #: gives the same output, so they are exempt from "effect grows with severity".
    graded: ClassVar[bool] = True
    #: "common" or "validation" for the ImageNet-C corruptions (names and constants kept).
    imagenet_c: ClassVar[str | None] = None

    @property
    def tag(self) -> str:
        """What this perturbation computes, for cache keys: ``name@version`` (plus a digest
        of fixed parameters for a suite's overrides, see ``brittle.perturbations.tuned``)."""
        return f"{self.name}@{self.version}"

    def cache_condition(self, severity: int, seed: int) -> tuple[str, int, int]:
        """The ``(tag, severity, seed)`` under which predictions on this perturbation's
        images are cached and scored: the severity only where it changes the image (not
        for all-or-nothing ones, ``graded`` and ``random`` False) and the seed only where
        it does (``random``). Cells that show the models the same image share one
        prediction: the standard suite's hflip, vflip and rotate90 at 1, 3 and 5 cost one
        cell each, and a run with another ``--seed`` reuses every non-random cell.

        >>> from brittle.perturbations import get_perturbation
        >>> get_perturbation("hflip").cache_condition(5, 7)
        ('hflip@1', 1, 0)
        >>> get_perturbation("gaussian_noise").cache_condition(5, 7)
        ('gaussian_noise@1', 5, 7)
        """
        same_at_every_severity = not self.graded and not self.random
        return (
            self.tag,
            1 if same_at_every_severity else severity,
            seed if self.random else 0,
        )

    def params(self, severity: int, height: int, width: int, rng: np.random.Generator) -> Params:
        """Draw the non-per-pixel parameters for one image (JSON-able dict)."""
        return {}

    def apply(self, image: Image, params: Params, rng: np.random.Generator) -> Image:
        """The perturbed image: same shape, uint8; ``image`` is not modified."""
        raise NotImplementedError

    def map_points(
        self, points: NDArray[np.float64], params: Params, height: int, width: int
    ) -> NDArray[np.float64]:
        """Where (N, 2) pixel points (x, y) of the clean image land (geometric only)."""
        raise NotImplementedError(f"{self.name} is not geometric")

    def output_size(self, params: Params, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the output; only rotate90 on non-square images changes it."""
        return height, width

    def __call__(
        self,
        image: Image,
        severity: int,
        rng: np.random.Generator,
        boxes: NDArray[Any] | None = None,
    ) -> tuple[Image, NDArray[np.float64] | None, NDArray[np.bool_] | None, Params]:
        """Draw, apply, and move ``boxes`` when geometric: (image, boxes, kept, params)."""
        severity = check_severity(severity)
        h, w = image.shape[:2]
        params = self.params(severity, h, w, rng)
        out = self.apply(image, params, rng)
        if boxes is None:
            return out, None, None, params
        new, kept = transform_boxes(self, boxes, params, h, w)
        return out, new, kept, params


def transform_boxes(
    p: Perturbation, boxes: NDArray[Any], params: Params, height: int, width: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Move xyxy boxes through a geometric perturbation: corners (plus edge midpoints and the
    edge points nearest the image centre, for maps that bend lines) through ``map_points``,
    then min/max, then clip to the output.

    Returns ``(boxes, kept)``: ``boxes`` holds only the kept ones; ``kept`` is a mask over the
    input telling which survived (less than :data:`MIN_VISIBLE_FRACTION` visible → dropped).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not p.geometric:
        return b.copy(), np.ones(len(b), np.bool_)
    n = len(b)
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0, np.bool_)
    x1, y1, x2, y2 = b.T
    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
    # Corners suffice for affine/projective maps. Radial (lens) maps bulge an edge most at
    # its point nearest the image centre, so those points, and the midpoints, go in too.
    xc = np.clip(width / 2, x1, x2)
    yc = np.clip(height / 2, y1, y2)
    xs = np.stack([x1, x2, x2, x1, xm, x2, xm, x1, xc, x2, xc, x1], axis=1)
    ys = np.stack([y1, y1, y2, y2, y1, ym, y2, ym, y1, yc, y2, yc], axis=1)
    k = xs.shape[1]
    pts = p.map_points(np.stack([xs.ravel(), ys.ravel()], axis=1), params, height, width)
    px = pts[:, 0].reshape(n, k)
    py = pts[:, 1].reshape(n, k)
    moved = np.stack([px.min(1), py.min(1), px.max(1), py.max(1)], axis=1)
    oh, ow = p.output_size(params, height, width)
    clipped = np.stack(
        [
            np.clip(moved[:, 0], 0, ow),
            np.clip(moved[:, 1], 0, oh),
            np.clip(moved[:, 2], 0, ow),
            np.clip(moved[:, 3], 0, oh),
        ],
        axis=1,
    )
    full = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    vis = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(full > 0, vis / np.where(full > 0, full, 1), 0.0)
    kept = (frac >= MIN_VISIBLE_FRACTION) & (vis > 0)
    return clipped[kept], kept


def validate_class(cls: type[Perturbation]) -> None:
    """Checked at registration: a perturbation must say what it is."""
    if not cls.name or cls.name != cls.name.lower() or " " in cls.name:
        raise ConfigError(f"{cls.__name__}: name must be snake_case, got {cls.name!r}")
    if cls.family not in FAMILIES:
        raise ConfigError(
            f"{cls.name}: family must be one of {', '.join(FAMILIES)}, got {cls.family!r}"
        )
    if not cls.description:
        raise ConfigError(f"{cls.name}: a one-line description is required")
