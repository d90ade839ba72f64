"""Label-free consistency and per-image behaviour change under a perturbation.

Consistency compares a model's predictions on a clean image with its predictions on
the perturbed image; no ground truth is needed, so it also runs on unlabelled
production images. For one image, at an *operating* confidence (default 0.3, a
deployed model's threshold, not the evaluation one):

1. keep the detections with score >= ``conf`` on both sides;
2. for a geometric perturbation, move the clean detections through the same transform
   (:func:`align_detections`, built on
   :func:`~brittle.perturbations.base.transform_boxes`); clean detections the geometry
   pushes out of the image are dropped, not counted as lost;
3. match one-to-one: the perturbed detections take turns in descending score (stable:
   equal scores keep their input order); each takes the still unmatched clean detection
   **of the same class** with the highest IoU, if that IoU is >= ``iou`` (0.5). These are
   COCO's matching rules with the clean detections playing the ground truth (among equal
   IoUs the later clean detection wins), run by the same vectorised engine
   (:mod:`brittle.metrics.matching`) for all images at once;
4. consistency = F1 of the matching = ``2 * matched / (n_clean + n_perturbed)``, and 1.0
   when both sides are empty (nothing changed).

Greedy rather than optimal (Hungarian) matching: it is what every detection metric does,
it is what a person looking at the boxes would pair, and it differs from an optimal
assignment only when a box has two or more candidates of its class at IoU >= 0.5 on the
other side — crowded boxes of one class, which NMS makes uncommon at an operating
threshold.

The *affected fraction* is the share of images whose consistency is below
``strictness`` (default 0.75).

>>> from brittle.types import Detections
>>> clean = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 1])]
>>> same = consistency(clean, clean)
>>> same.per_image.tolist(), same.affected_fraction
([1.0], 0.0)
>>> flipped = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 2])]
>>> consistency(clean, flipped).per_image.tolist()  # the class flip is a mismatch
[0.5]

:func:`behaviour_change` splits each image's differences into lost, gained and changed
detections, adds the drop in F1 against the ground truth when there is one, and ranks
images for failure mining. docs/robustness.md gives the definitions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, ModelError, ShapeError
from brittle.metrics.matching import _flat_dets, _flat_gt, _match, _readonly, _xywh
from brittle.perturbations.base import Params, Perturbation, transform_boxes
from brittle.types import Detections, GroundTruth

__all__ = [
    "DEFAULT_CONF",
    "DEFAULT_IOU",
    "DEFAULT_STRICTNESS",
    "BehaviourChange",
    "Consistency",
    "align_detections",
    "align_ground_truth",
    "behaviour_change",
    "consistency",
    "detection_f1",
]

#: Operating confidence: detections below it are not part of what a deployment sees.
DEFAULT_CONF = 0.3
#: IoU at which two boxes are the same object.
DEFAULT_IOU = 0.5
#: An image whose consistency is below this is *affected*.
DEFAULT_STRICTNESS = 0.75

_INT = np.int64
_ALL_AREAS = np.array([[-np.inf, np.inf]])


# ----------------------------------------------------------------------------- results


def _f1(matched: NDArray[Any], total: NDArray[Any]) -> NDArray[np.float64]:
    """``2 * matched / total``, 1.0 where total is 0 (nothing on either side)."""
    out = np.ones(len(total), np.float64)
    np.divide(2.0 * matched, total, out=out, where=total > 0)
    return out


def _counts(name: str, value: ArrayLike) -> NDArray[np.int64]:
    a = np.asarray(value)
    if a.ndim != 1 or (a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0)):
        raise ShapeError(f"{name}: expected a 1-d array of counts >= 0, got {a.dtype} {a.shape}")
    return np.asarray(_readonly(a.astype(_INT)), _INT)


def _check_fraction(name: str, value: float, *, low_open: bool = False) -> float:
    v = float(value)
    if not (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class Consistency:
    """Per-image consistency between clean and perturbed predictions (one row per image).

    ``n_clean`` / ``n_perturbed``: detections at or above ``conf`` (clean ones after the
    geometry, in the perturbed image); ``n_matched``: pairs of the same class at IoU >=
    ``iou``. ``per_image`` = ``2 * n_matched / (n_clean + n_perturbed)``, 1.0 when both
    are 0.

    >>> c = Consistency(n_clean=[2, 0, 4], n_perturbed=[2, 0, 2], n_matched=[2, 0, 1])
    >>> c.per_image.tolist(), round(c.mean, 4), c.affected.tolist(), c.affected_fraction
    ([1.0, 1.0, 0.3333333333333333], 0.7778, [False, False, True], 0.3333333333333333)
    """

    n_clean: NDArray[np.int64]
    n_perturbed: NDArray[np.int64]
    n_matched: NDArray[np.int64]
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    strictness: float = DEFAULT_STRICTNESS
    per_image: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        nc = _counts("Consistency.n_clean", self.n_clean)
        npert = _counts("Consistency.n_perturbed", self.n_perturbed)
        nm = _counts("Consistency.n_matched", self.n_matched)
        if not len(nc) == len(npert) == len(nm):
            raise ShapeError(
                f"Consistency: one row per image, got {len(nc)}, {len(npert)} and {len(nm)}"
            )
        if np.any(nm > np.minimum(nc, npert)):
            raise ShapeError("Consistency: n_matched exceeds n_clean or n_perturbed")
        object.__setattr__(self, "n_clean", nc)
        object.__setattr__(self, "n_perturbed", npert)
        object.__setattr__(self, "n_matched", nm)
        object.__setattr__(self, "conf", _check_fraction("conf", self.conf))
        object.__setattr__(self, "iou", _check_fraction("iou", self.iou, low_open=True))
        object.__setattr__(self, "strictness", _check_fraction("strictness", self.strictness))
        object.__setattr__(self, "per_image", _readonly(_f1(nm, nc + npert)))

    def __len__(self) -> int:
        return int(self.n_clean.shape[0])

    @property
    def mean(self) -> float:
        """Consistency averaged over images (each image weighs the same); nan with none."""
        return float(self.per_image.mean()) if len(self) else float("nan")

    @property
    def affected(self) -> NDArray[np.bool_]:
        """Images whose consistency is below ``strictness``."""
        return np.asarray(self.per_image < self.strictness, np.bool_)

    @property
    def affected_fraction(self) -> float:
        """Share of images whose consistency is below ``strictness``; nan with none."""
        return float(self.affected.mean()) if len(self) else float("nan")

    def subset(self, image_indices: ArrayLike) -> Consistency:
        """The rows of the given images, in that order (repeats allowed: bootstrap)."""
        i = np.asarray(image_indices, _INT).reshape(-1)
        return Consistency(
            self.n_clean[i],
            self.n_perturbed[i],
            self.n_matched[i],
            conf=self.conf,
            iou=self.iou,
            strictness=self.strictness,
        )


@dataclass(frozen=True, slots=True)
class BehaviourChange:
    """How each image's predictions changed under a perturbation (one row per image).

    Every detection at the operating confidence falls in exactly one bucket:

    * ``consistency.n_matched``: same class, IoU >= ``iou`` (the consistency matching);
    * ``changed``: left unmatched by it, but paired class-agnostically at IoU >= ``iou``
      (greedy again, on the leftovers) — the object stayed and its class flipped;
    * ``lost``: clean detections in neither; ``gained``: perturbed detections in neither.

    So ``n_clean = matched + changed + lost`` and ``n_perturbed = matched + changed +
    gained``. ``f1_clean`` / ``f1_perturbed`` are each side's F1 against the ground truth
    (same class, IoU >= ``iou``), nan for images without ground truth; ``f1_drop`` =
    clean minus perturbed. ``score`` = 1 - consistency.
    """

    consistency: Consistency
    changed: NDArray[np.int64]
    lost: NDArray[np.int64]
    gained: NDArray[np.int64]
    f1_clean: NDArray[np.float64]
    f1_perturbed: NDArray[np.float64]
    f1_drop: NDArray[np.float64] = field(init=False)
    score: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        c = self.consistency
        changed = _counts("BehaviourChange.changed", self.changed)
        lost = _counts("BehaviourChange.lost", self.lost)
        gained = _counts("BehaviourChange.gained", self.gained)
        f1c = np.asarray(self.f1_clean, np.float64)
        f1p = np.asarray(self.f1_perturbed, np.float64)
        n = len(c)
        if any(a.shape != (n,) for a in (changed, lost, gained, f1c, f1p)):
            raise ShapeError(f"BehaviourChange: every array needs one row per image ({n})")
        if np.any(c.n_matched + changed + lost != c.n_clean) or np.any(
            c.n_matched + changed + gained != c.n_perturbed
        ):
            raise ShapeError(
                "BehaviourChange: matched + changed + lost must equal n_clean and "
                "matched + changed + gained must equal n_perturbed"
            )
        object.__setattr__(self, "changed", changed)
        object.__setattr__(self, "lost", lost)
        object.__setattr__(self, "gained", gained)
        object.__setattr__(self, "f1_clean", _readonly(f1c))
        object.__setattr__(self, "f1_perturbed", _readonly(f1p))
        object.__setattr__(self, "f1_drop", _readonly(f1c - f1p))
        object.__setattr__(self, "score", _readonly(1.0 - c.per_image))

    def __len__(self) -> int:
        return len(self.consistency)

    def rank(self) -> NDArray[np.int64]:
        """Image indices, most changed first.

        Sorted by ``score`` (1 - consistency), descending; ties by ``f1_drop``,
        descending (images without ground truth after those with); then by the number
        of lost + gained + changed detections, descending; then by image index.
        """
        drop = np.where(np.isnan(self.f1_drop), -np.inf, self.f1_drop)
        events = self.lost + self.gained + self.changed
        n = len(self)
        return np.lexsort((np.arange(n), -events, -drop, -self.score)).astype(_INT)

    def subset(self, image_indices: ArrayLike) -> BehaviourChange:
        """The rows of the given images, in that order (repeats allowed)."""
        i = np.asarray(image_indices, _INT).reshape(-1)
        return BehaviourChange(
            self.consistency.subset(i),
            self.changed[i],
            self.lost[i],
            self.gained[i],
            self.f1_clean[i],
            self.f1_perturbed[i],
        )


# ---------------------------------------------------------------------------- geometry


def align_detections(
    dets: Detections, perturbation: Perturbation, params: Params, height: int, width: int
) -> Detections:
    """Clean-image detections moved into the perturbed image (unchanged if photometric).

    ``height`` / ``width`` are the clean image's; detections the geometry pushes (mostly)
    out of the image are dropped.

    >>> from brittle.perturbations import get_perturbation
    >>> d = Detections([[0, 0, 10, 8]], [0.9], [3])
    >>> align_detections(d, get_perturbation("hflip"), {}, 20, 48).boxes.tolist()
    [[38.0, 0.0, 48.0, 8.0]]
    """
    if not perturbation.geometric:
        return dets
    boxes, kept = transform_boxes(perturbation, dets.boxes, params, height, width)
    return Detections(boxes.astype(np.float32), dets.scores[kept], dets.labels[kept])


def align_ground_truth(
    gt: GroundTruth, perturbation: Perturbation, params: Params, height: int, width: int
) -> GroundTruth:
    """Ground truth moved into the perturbed image, as :func:`align_detections`.

    Areas become the moved boxes' areas (a polygon area does not survive the move).
    """
    if not perturbation.geometric:
        return gt
    boxes, kept = transform_boxes(perturbation, gt.boxes, params, height, width)
    return GroundTruth(boxes, gt.labels[kept], gt.iscrowd[kept])


# ------------------------------------------------------------------------ flat arrays


@dataclass(frozen=True, slots=True)
class _Flat:
    """Boxes of all images, image by image, in input order."""

    image: NDArray[np.int64]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    labels: NDArray[np.int64]
    crowd: NDArray[np.bool_]

    def select(self, mask: NDArray[np.bool_]) -> _Flat:
        return _Flat(
            self.image[mask],
            self.boxes[mask],
            self.scores[mask],
            self.labels[mask],
            self.crowd[mask],
        )


def _flatten(items: Sequence[Detections] | Sequence[GroundTruth], what: str, conf: float) -> _Flat:
    """One flat set of arrays; detections below ``conf`` are left out."""
    n = len(items)
    counts = np.fromiter((len(x) for x in items), _INT, n)
    image = np.repeat(np.arange(n, dtype=_INT), counts)
    if not image.size:
        return _Flat(image, np.zeros((0, 4)), np.zeros(0), np.zeros(0, _INT), np.zeros(0, np.bool_))
    boxes = np.concatenate([x.boxes for x in items]).astype(np.float64)
    labels = np.concatenate([x.labels for x in items])
    if isinstance(items[0], Detections):
        scores = np.concatenate([x.scores for x in items if isinstance(x, Detections)])
        scores = scores.astype(np.float64)
        crowd = np.zeros(len(image), np.bool_)
        bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores))
        if bad.any():
            raise ModelError(f"{what}[{int(image[np.argmax(bad)])}]: non-finite box or score")
    else:
        scores = np.ones(len(image))
        crowd = np.concatenate([x.iscrowd for x in items if isinstance(x, GroundTruth)])
        bad = ~np.isfinite(boxes).all(axis=1)
        if bad.any():
            raise ShapeError(f"{what}[{int(image[np.argmax(bad)])}]: non-finite box")
    if labels.size and labels.min() < 0:
        i = int(np.argmax(labels < 0))
        raise ConfigError(f"{what}[{int(image[i])}]: negative label {int(labels[i])}")
    return _Flat(image, boxes, scores, labels, crowd).select(scores >= conf)


_Geometry = tuple[Perturbation, list[Params], list[tuple[int, int]]]


def _per_image(
    perturbation: Perturbation | str | None,
    params: Params | Sequence[Params] | None,
    sizes: tuple[int, int] | Sequence[tuple[int, int]] | None,
    n: int,
) -> _Geometry | None:
    """The geometry to apply per image, or None when there is nothing to move."""
    if perturbation is None:
        return None
    if isinstance(perturbation, str):
        from brittle.perturbations import get_perturbation

        perturbation = get_perturbation(perturbation)
    if not perturbation.geometric:
        return None
    name = perturbation.name
    if params is None or sizes is None:
        raise ConfigError(
            f"{name} is geometric: pass params= (each image's perturbation params) and "
            "sizes= (each clean image's (height, width)) so the clean boxes can be moved, "
            "or move them yourself with align_detections and pass no perturbation"
        )
    plist = [params] * n if isinstance(params, Mapping) else list(params)
    if len(sizes) == 2 and all(isinstance(v, int | np.integer) for v in sizes):
        slist = [(int(sizes[0]), int(sizes[1]))] * n  # type: ignore[arg-type]
    else:
        slist = [(int(h), int(w)) for h, w in sizes]  # type: ignore[misc]
    if len(plist) != n or len(slist) != n:
        raise ShapeError(
            f"{name}: params and sizes need one entry per image ({n}), got {len(plist)} "
            f"and {len(slist)}"
        )
    return perturbation, plist, slist


def _align(flat: _Flat, geometry: _Geometry) -> _Flat:
    """Every image's boxes moved through its own parameters.

    Images sharing parameters and size (any fixed transform, such as hflip, on
    equal-size images) are moved together in one call.
    """
    p, plist, slist = geometry
    groups: dict[tuple[str, int, int], list[int]] = {}
    for i in np.unique(flat.image).tolist():
        key = (json.dumps(plist[i], sort_keys=True, default=repr), *slist[i])
        groups.setdefault(key, []).append(i)
    bounds = np.searchsorted(flat.image, np.arange(len(plist) + 1)).tolist()
    keep = np.zeros(len(flat.image), np.bool_)
    moved = np.zeros_like(flat.boxes)
    for images in groups.values():
        rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in images])
        h, w = slist[images[0]]
        boxes, kept = transform_boxes(p, flat.boxes[rows], plist[images[0]], h, w)
        keep[rows[kept]] = True
        moved[rows[kept]] = boxes
    return _Flat(flat.image, moved, flat.scores, flat.labels, flat.crowd).select(keep)


def _pair(
    ref: _Flat, dets: _Flat, n_images: int, iou: float, *, class_aware: bool
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Greedy one-to-one matching of ``dets`` (in score order) to ``ref``, all images at once.

    Returns (ref matched, dets matched, dets ignored — matched to a crowd region).
    """
    if class_aware:
        _, k = np.unique(np.concatenate([ref.labels, dets.labels]), return_inverse=True)
        k = k.reshape(-1).astype(_INT)
        n_classes = int(k.max()) + 1 if k.size else 1
    else:
        k = np.zeros(len(ref.labels) + len(dets.labels), _INT)
        n_classes = 1
    kr, kd = k[: len(ref.labels)], k[len(ref.labels) :]
    # Positions in the flat arrays ride along as the per-image indices, so the records
    # point straight back at them.
    g = _flat_gt(
        ref.image,
        np.arange(len(kr), dtype=_INT),
        kr,
        _xywh(ref.boxes),
        ref.crowd,
        np.zeros(len(kr)),
        n_classes,
    )
    max_det = max(1, len(kd))
    d = _flat_dets(
        dets.image,
        np.arange(len(kd), dtype=_INT),
        kd,
        _xywh(dets.boxes),
        dets.scores,
        n_classes,
        max_det,
    )
    rec = _match(g, d, n_images, tuple(range(n_classes)), np.array([iou]), _ALL_AREAS, (max_det,))
    ref_matched = np.zeros(len(kr), np.bool_)
    ref_matched[rec.gt_index[rec.gt_match[0, 0] >= 0]] = True
    det_matched = np.zeros(len(kd), np.bool_)
    det_matched[rec.det_index[rec.det_match[0, 0] >= 0]] = True
    det_ignored = np.zeros(len(kd), np.bool_)
    det_ignored[rec.det_index[rec.det_ignore[0, 0]]] = True
    return ref_matched, det_matched, det_ignored


def _bincount(image: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    return np.bincount(image, minlength=n).astype(_INT)


def _f1_against(preds: _Flat, gt: _Flat, n: int, iou: float) -> NDArray[np.float64]:
    """Per-image F1 of predictions against ground truth; crowd regions absorb, never count."""
    _, matched, ignored = _pair(gt, preds, n, iou, class_aware=True)
    tp = _bincount(preds.image[matched & ~ignored], n)
    total = _bincount(preds.image[~ignored], n) + _bincount(gt.image[~gt.crowd], n)
    return _f1(tp, total)


def _options(conf: float, iou: float, strictness: float) -> tuple[float, float, float]:
    return (
        _check_fraction("conf", conf),
        _check_fraction("iou", iou, low_open=True),
        _check_fraction("strictness", strictness),
    )


def _check_lengths(**seqs: Sequence[Any] | None) -> int:
    lengths = {k: len(v) for k, v in seqs.items() if v is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ShapeError(f"one entry per image is needed in each input, got {detail}")
    return next(iter(lengths.values()))


# -------------------------------------------------------------------------------- API


def consistency(
    clean: Sequence[Detections],
    perturbed: Sequence[Detections],
    *,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    strictness: float = DEFAULT_STRICTNESS,
    perturbation: Perturbation | str | None = None,
    params: Params | Sequence[Params] | None = None,
    sizes: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
) -> Consistency:
    """Consistency of every image: ``clean[i]`` (clean image) against ``perturbed[i]``.

    Either pass clean detections already in the perturbed image's frame (photometric
    perturbations, or moved with :func:`align_detections`), or pass ``perturbation``
    (instance or name) with ``params`` (one dict per image, or one for all) and
    ``sizes`` (each clean image's ``(height, width)``, or one for all) to have them
    moved here. Labels must be in one class space on both sides.

    >>> from brittle.types import Detections
    >>> clean = [Detections([[0, 0, 10, 8]], [0.9], [0]), Detections.empty()]
    >>> flipped = [Detections([[38, 0, 48, 8]], [0.8], [0]), Detections.empty()]
    >>> c = consistency(clean, flipped, perturbation="hflip", params={}, sizes=(20, 48))
    >>> c.per_image.tolist(), c.mean
    ([1.0, 1.0], 1.0)
    """
    n = _check_lengths(clean=clean, perturbed=perturbed)
    conf, iou, strictness = _options(conf, iou, strictness)
    geometry = _per_image(perturbation, params, sizes, n)
    c = _flatten(clean, "clean", conf)
    p = _flatten(perturbed, "perturbed", conf)
    if geometry is not None:
        c = _align(c, geometry)
    _, p_matched, _ = _pair(c, p, n, iou, class_aware=True)
    return Consistency(
        _bincount(c.image, n),
        _bincount(p.image, n),
        _bincount(p.image[p_matched], n),
        conf=conf,
        iou=iou,
        strictness=strictness,
    )


def behaviour_change(
    clean: Sequence[Detections],
    perturbed: Sequence[Detections],
    gts: Sequence[GroundTruth | None] | None = None,
    *,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    strictness: float = DEFAULT_STRICTNESS,
    perturbation: Perturbation | str | None = None,
    params: Params | Sequence[Params] | None = None,
    sizes: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
) -> BehaviourChange:
    """Lost, gained and changed detections per image, and the F1 drop against ``gts``.

    Inputs as in :func:`consistency`; ``gts[i]`` is the clean image's ground truth (None
    for an unlabelled image) in the same frame as ``clean[i]`` — with ``perturbation``
    given, it is moved too. Both F1s are computed in the perturbed image's frame, so
    objects a crop removes leave both sides; for a photometric perturbation
    ``f1_clean`` is simply the clean image's F1.

    >>> from brittle.types import Detections, GroundTruth
    >>> clean = [Detections([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]],
    ...                     [0.9, 0.8, 0.7], [0, 1, 2])]
    >>> pert = [Detections([[0, 0, 10, 10], [20, 0, 30, 10], [60, 0, 70, 10]],
    ...                    [0.9, 0.8, 0.7], [0, 3, 2])]
    >>> gts = [GroundTruth([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1])]
    >>> b = behaviour_change(clean, pert, gts)
    >>> b.changed.tolist(), b.lost.tolist(), b.gained.tolist(), b.f1_drop.round(2).tolist()
    ([1], [1], [1], [0.4])
    """
    n = _check_lengths(clean=clean, perturbed=perturbed, gts=gts)
    conf, iou, strictness = _options(conf, iou, strictness)
    geometry = _per_image(perturbation, params, sizes, n)
    c = _flatten(clean, "clean", conf)
    p = _flatten(perturbed, "perturbed", conf)
    if geometry is not None:
        c = _align(c, geometry)
    c_matched, p_matched, _ = _pair(c, p, n, iou, class_aware=True)
    left_c, left_p = c.select(~c_matched), p.select(~p_matched)
    _, changed_p, _ = _pair(left_c, left_p, n, iou, class_aware=False)
    n_c, n_p = _bincount(c.image, n), _bincount(p.image, n)
    matched = _bincount(p.image[p_matched], n)
    changed = _bincount(left_p.image[changed_p], n)
    f1_clean = np.full(n, np.nan)
    f1_pert = np.full(n, np.nan)
    if gts is not None:
        labelled = np.array([g is not None for g in gts], np.bool_)
        g = _flatten([x if x is not None else GroundTruth.empty() for x in gts], "gts", 0.0)
        if geometry is not None:
            g = _align(g, geometry)
        f1_clean = np.where(labelled, _f1_against(c, g, n, iou), np.nan)
        f1_pert = np.where(labelled, _f1_against(p, g, n, iou), np.nan)
    return BehaviourChange(
        Consistency(n_c, n_p, matched, conf=conf, iou=iou, strictness=strictness),
        changed=changed,
        lost=n_c - matched - changed,
        gained=n_p - matched - changed,
        f1_clean=f1_clean,
        f1_perturbed=f1_pert,
    )


def detection_f1(
    preds: Sequence[Detections],
    gts: Sequence[GroundTruth],
    *,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
) -> NDArray[np.float64]:
    """Per-image F1 of the predictions at ``conf`` against the ground truth.

    A prediction is a true positive when it takes (greedily, in score order) a ground
    truth of its class at IoU >= ``iou``. One taking a crowd region is ignored, and crowd
    regions are not objects to find: ``F1 = 2 TP / (n_pred + n_gt)`` without either; 1.0
    when both are 0.

    >>> from brittle.types import Detections, GroundTruth
    >>> preds = [Detections([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.2], [0, 0])]
    >>> detection_f1(preds, [GroundTruth([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])]).tolist()
    [0.6666666666666666]
    """
    n = _check_lengths(preds=preds, gts=gts)
    conf, iou, _ = _options(conf, iou, DEFAULT_STRICTNESS)
    p = _flatten(preds, "preds", conf)
    g = _flatten(gts, "gts", 0.0)
    return _f1_against(p, g, n, iou)
