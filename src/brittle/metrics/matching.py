"""COCO's matching of detections to ground truth, kept as per-image match records.

The rules are pycocotools' ``COCOeval.evaluateImg`` (bbox), reproduced bit for bit
but computed for every image, class, area range and IoU threshold at once:

* per (image, class), detections are sorted by descending score with a stable sort
  (ties keep their input order) and only the first ``max(max_dets)`` are kept;
* a ground truth is *ignored* in an area range when it is a crowd region or its
  ``area`` lies outside the range (bounds inclusive);
* at each IoU threshold, detections take turns in score order; each takes the
  available ground truth with the highest IoU (at least the threshold), preferring
  non-ignored ones; among equal IoUs the later ground truth wins; a crowd region
  stays available after a match, any other ground truth does not;
* a detection matched to an ignored ground truth is ignored; so is an unmatched one
  whose box area ``w * h`` lies outside the area range.

The result, :class:`MatchRecords`, holds these outcomes for any number of images in
flat arrays with per-image offsets, so a subset or a bootstrap resample of images is
an index away (see :func:`brittle.metrics.coco.evaluate_records`).

>>> from brittle.types import Detections, GroundTruth
>>> gt = GroundTruth(boxes=[[0, 0, 10, 10], [20, 20, 30, 30]], labels=[0, 0])
>>> det = Detections(boxes=[[0, 0, 10, 9], [50, 50, 60, 60]], scores=[0.9, 0.8], labels=[0, 0])
>>> rec = match_image(gt, det, classes=[0])
>>> rec.det_match[0, 0].tolist(), rec.det_match[0, -1].tolist()  # area "all", IoU .5 / .95
([0, -1], [-1, -1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, DatasetError, ModelError, ShapeError
from brittle.types import Detections, GroundTruth

__all__ = [
    "COCO_AREA_NAMES",
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_MAX_DETS",
    "MatchRecords",
    "bbox_iou",
    "match_coco",
    "match_image",
    "match_images",
]


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    view = a.view()
    view.flags.writeable = False
    return view


# Built with the very linspace calls pycocotools uses, so the values are bit-identical.
COCO_IOU_THRESHOLDS: NDArray[np.float64] = _readonly(
    np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
)
COCO_AREA_RANGES: NDArray[np.float64] = _readonly(
    np.array([[0.0, 1e5**2], [0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e5**2]])
)
COCO_AREA_NAMES: tuple[str, ...] = ("all", "small", "medium", "large")
COCO_MAX_DETS: tuple[int, int, int] = (1, 10, 100)

_INT = np.int64


def bbox_iou(dt: ArrayLike, gt: ArrayLike, iscrowd: ArrayLike | None = None) -> NDArray[np.float64]:
    """IoU matrix (D, G) of xywh boxes, evaluated exactly as pycocotools' ``bbIou``.

    For a crowd ground truth the union is the detection's area alone. The operation
    order matters for bit-identical results: the right edge is ``w + x``, the union
    ``(da + ga) - inter``.

    >>> bbox_iou([[0, 0, 2, 2]], [[1, 0, 2, 2], [0, 0, 4, 4]], [0, 1]).tolist()
    [[0.3333333333333333, 1.0]]
    """
    d = np.asarray(dt, np.float64).reshape(-1, 4)
    g = np.asarray(gt, np.float64).reshape(-1, 4)
    crowd = np.zeros(len(g), np.bool_) if iscrowd is None else np.asarray(iscrowd, np.bool_)
    return _pair_iou(d[:, None, :], g[None, :, :], crowd[None, :])


def _pair_iou(
    d: NDArray[np.float64], g: NDArray[np.float64], crowd: NDArray[np.bool_]
) -> NDArray[np.float64]:
    dx, dy, dw, dh = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    gx, gy, gw, gh = g[..., 0], g[..., 1], g[..., 2], g[..., 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    overlap = (w > 0) & (h > 0)
    out = np.zeros(overlap.shape, np.float64)
    np.divide(inter, union, out=out, where=overlap)
    return out


@dataclass(frozen=True, slots=True)
class MatchRecords:
    """COCO match outcomes of one or more images.

    Detection arrays cover the evaluated detections only (labels in ``classes``, top
    ``max(max_dets)`` per image and class), ordered by image, class, then rank;
    ground-truth arrays cover the ground truth of the evaluated classes, ordered by
    image, class, then input order. Image ``i`` owns ``det_offsets[i]:det_offsets[i+1]``
    and ``gt_offsets[i]:gt_offsets[i+1]``. Axes A and T are area ranges and IoU
    thresholds.

    * ``det_index`` / ``gt_index``: position in the image's own Detections / GroundTruth
    * ``det_class`` / ``gt_class``: position in ``classes`` (the K axis)
    * ``det_rank``: rank by score within the image and class; ``det_score``, ``det_area``
    * ``det_match`` (A, T, D): ``gt_index`` of the matched ground truth, -1 if none
    * ``det_ignore`` (A, T, D): neither true nor false positive
    * ``det_tp`` (A, T, D): true positive (matched and not ignored); unmatched and not
      ignored is a false positive
    * ``gt_match`` (A, T, G): ``det_index`` of the matching detection (a crowd region's
      last one), -1 if missed
    * ``gt_ignore`` (A, G): crowd region or area outside the range
    """

    classes: tuple[int, ...]
    iou_thresholds: NDArray[np.float64]
    area_ranges: NDArray[np.float64]
    max_dets: tuple[int, ...]
    det_offsets: NDArray[np.int64]
    det_index: NDArray[np.int64]
    det_class: NDArray[np.int64]
    det_rank: NDArray[np.int64]
    det_score: NDArray[np.float64]
    det_area: NDArray[np.float64]
    det_match: NDArray[np.int32]
    det_ignore: NDArray[np.bool_]
    gt_offsets: NDArray[np.int64]
    gt_index: NDArray[np.int64]
    gt_class: NDArray[np.int64]
    gt_ignore: NDArray[np.bool_]
    gt_match: NDArray[np.int32]
    det_tp: NDArray[np.bool_] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "det_tp", (self.det_match >= 0) & ~self.det_ignore)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                object.__setattr__(self, f.name, _readonly(value))

    def __len__(self) -> int:
        return int(self.det_offsets.shape[0] - 1)

    def image(self, i: int) -> MatchRecords:
        """The records of image ``i`` alone."""
        return self.subset([i])

    def subset(self, image_indices: ArrayLike) -> MatchRecords:
        """The records of the given images, in that order (repeats allowed)."""
        idx = _image_indices(image_indices, len(self))
        d, d_off = _gather_ranges(self.det_offsets, idx)
        g, g_off = _gather_ranges(self.gt_offsets, idx)
        return MatchRecords(
            classes=self.classes,
            iou_thresholds=self.iou_thresholds,
            area_ranges=self.area_ranges,
            max_dets=self.max_dets,
            det_offsets=d_off,
            det_index=self.det_index[d],
            det_class=self.det_class[d],
            det_rank=self.det_rank[d],
            det_score=self.det_score[d],
            det_area=self.det_area[d],
            det_match=self.det_match[:, :, d],
            det_ignore=self.det_ignore[:, :, d],
            gt_offsets=g_off,
            gt_index=self.gt_index[g],
            gt_class=self.gt_class[g],
            gt_ignore=self.gt_ignore[:, g],
            gt_match=self.gt_match[:, :, g],
        )

    @staticmethod
    def concat(parts: Sequence[MatchRecords]) -> MatchRecords:
        """Records of several batches of images, one after the other.

        All parts must share classes, IoU thresholds, area ranges and max_dets.
        """
        if not parts:
            raise ConfigError("MatchRecords.concat: need at least one part")
        first = parts[0]
        for p in parts[1:]:
            if (
                p.classes != first.classes
                or p.max_dets != first.max_dets
                or not np.array_equal(p.iou_thresholds, first.iou_thresholds)
                or not np.array_equal(p.area_ranges, first.area_ranges)
            ):
                raise ConfigError(
                    "MatchRecords.concat: parts were matched with different classes, "
                    "IoU thresholds, area ranges or max_dets"
                )

        def offsets(attr: str) -> NDArray[np.int64]:
            sizes = np.concatenate([np.diff(getattr(p, attr)) for p in parts])
            return np.concatenate([[0], np.cumsum(sizes)]).astype(_INT)

        def cat(attr: str, axis: int = 0) -> NDArray[Any]:
            return np.concatenate([getattr(p, attr) for p in parts], axis=axis)

        return MatchRecords(
            classes=first.classes,
            iou_thresholds=first.iou_thresholds,
            area_ranges=first.area_ranges,
            max_dets=first.max_dets,
            det_offsets=offsets("det_offsets"),
            det_index=cat("det_index"),
            det_class=cat("det_class"),
            det_rank=cat("det_rank"),
            det_score=cat("det_score"),
            det_area=cat("det_area"),
            det_match=cat("det_match", 2),
            det_ignore=cat("det_ignore", 2),
            gt_offsets=offsets("gt_offsets"),
            gt_index=cat("gt_index"),
            gt_class=cat("gt_class"),
            gt_ignore=cat("gt_ignore", 1),
            gt_match=cat("gt_match", 2),
        )


def _image_indices(image_indices: ArrayLike, n: int) -> NDArray[np.int64]:
    idx = np.asarray(image_indices, dtype=_INT).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ConfigError(f"image indices must be in 0..{n - 1}, got {idx.min()}..{idx.max()}")
    return np.where(idx < 0, idx + n, idx)


def _gather_ranges(
    offsets: NDArray[np.int64], idx: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Element indices of the chosen images' ranges, concatenated, and their new offsets."""
    starts = offsets[idx]
    sizes = offsets[idx + 1] - starts
    new_off = np.zeros(len(idx) + 1, _INT)
    np.cumsum(sizes, out=new_off[1:])
    total = int(new_off[-1])
    # arange(total) shifted, per range, from its new start to its old one.
    elems = np.arange(total, dtype=_INT) + np.repeat(starts - new_off[:-1], sizes)
    return elems, new_off


def _check_classes(classes: Sequence[int] | None, num_classes: int) -> tuple[int, ...]:
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
    if classes is None:
        return tuple(range(num_classes))
    out = sorted(int(c) for c in classes)
    if len(set(out)) != len(out):
        raise ConfigError(f"classes must be distinct, got {list(classes)}")
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"classes must be in 0..{num_classes - 1}, got {bad}")
    # pycocotools sorts its category ids, and the order of the K axis changes the
    # summation order of the means, hence the last bit of the stats.
    return tuple(out)


def _check_max_dets(max_dets: Sequence[int]) -> tuple[int, ...]:
    md = tuple(sorted(int(m) for m in max_dets))
    if not md or md[0] < 1:
        raise ConfigError(f"max_dets must be positive integers, got {tuple(max_dets)}")
    return md


def _check_thresholds(iou_thresholds: ArrayLike | None) -> NDArray[np.float64]:
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS
    thr = np.asarray(iou_thresholds, np.float64).reshape(-1)
    if thr.size == 0 or not np.all((thr >= 0) & (thr <= 1)):
        raise ConfigError(f"iou_thresholds must be values in [0, 1], got {thr.tolist()}")
    return _readonly(thr.copy())


def _check_area_ranges(area_ranges: ArrayLike | None) -> NDArray[np.float64]:
    if area_ranges is None:
        return COCO_AREA_RANGES
    ar = np.asarray(area_ranges, np.float64)
    if ar.ndim != 2 or ar.shape[1] != 2 or ar.shape[0] == 0:
        raise ShapeError(f"area_ranges: expected shape (A, 2), got {ar.shape}")
    return _readonly(ar.copy())


def match_image(
    gt: GroundTruth,
    det: Detections,
    *,
    classes: Sequence[int],
    iou_thresholds: ArrayLike | None = None,
    max_dets: Sequence[int] = COCO_MAX_DETS,
    area_ranges: ArrayLike | None = None,
) -> MatchRecords:
    """Match one image's detections to its ground truth (see :func:`match_images`)."""
    labels = np.concatenate([gt.labels, det.labels, np.asarray(classes, _INT)])
    num_classes = int(labels.max()) + 1 if labels.size else 0
    return match_images(
        [gt],
        [det],
        num_classes,
        classes=classes,
        iou_thresholds=iou_thresholds,
        max_dets=max_dets,
        area_ranges=area_ranges,
    )


def match_images(
    gts: Sequence[GroundTruth],
    dets: Sequence[Detections],
    num_classes: int,
    *,
    classes: Sequence[int] | None = None,
    iou_thresholds: ArrayLike | None = None,
    max_dets: Sequence[int] = COCO_MAX_DETS,
    area_ranges: ArrayLike | None = None,
) -> MatchRecords:
    """COCO match records of every image: ``gts[i]`` against ``dets[i]``.

    ``classes`` (default all ``0..num_classes-1``) are the class indices evaluated;
    ground truth and detections of other classes are left out. Labels outside
    ``0..num_classes-1`` raise :class:`ConfigError`.
    """
    if len(gts) != len(dets):
        raise ShapeError(
            f"gts and dets must have one entry per image, got {len(gts)} and {len(dets)}"
        )
    cls = _check_classes(classes, num_classes)
    thr = _check_thresholds(iou_thresholds)
    areas = _check_area_ranges(area_ranges)
    md = _check_max_dets(max_dets)
    g = _flatten_gt(gts, num_classes, cls)
    d = _flatten_dets(dets, num_classes, cls, md[-1])
    return _match(g, d, len(gts), cls, thr, areas, md)


def match_coco(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    iou_thresholds: ArrayLike | None = None,
    max_dets: Sequence[int] = COCO_MAX_DETS,
    area_ranges: ArrayLike | None = None,
) -> MatchRecords:
    """Match records straight from a COCO instances dict and a results list.

    Reads the numbers pycocotools reads — ``bbox`` as xywh, ``area``, ``iscrowd``,
    float64 scores — so the evaluation equals pycocotools on any files, not only on
    those brittle wrote. Images are sorted by id and classes are the categories by
    ascending id (as :func:`brittle.coco_format.coco_to_gt`); per-image indices count
    each image's annotations / results in file order. Results on categories absent
    from ``gt`` are ignored (pycocotools filters them out too); results on unknown
    images raise :class:`DatasetError` (pycocotools refuses them).
    """
    thr = _check_thresholds(iou_thresholds)
    areas = _check_area_ranges(area_ranges)
    md = _check_max_dets(max_dets)
    try:
        cat_ids = sorted(int(c["id"]) for c in gt["categories"])
        image_ids = sorted(int(im["id"]) for im in gt["images"])
        anns = list(gt.get("annotations", []))
        row = {image_id: i for i, image_id in enumerate(image_ids)}
        k_of = {c: i for i, c in enumerate(cat_ids)}
        g_img = np.array([row[int(a["image_id"])] for a in anns], _INT)
        g_k = np.array([k_of.get(int(a["category_id"]), -1) for a in anns], _INT)
        g_box = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        g_area = np.array([a["area"] for a in anns], np.float64)
        g_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], np.bool_)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"not a valid COCO instances dict: {exc!r}") from exc
    try:
        d_img = np.array([row[int(r["image_id"])] for r in results], _INT)
        d_k = np.array([k_of.get(int(r["category_id"]), -1) for r in results], _INT)
        d_box = np.array([r["bbox"] for r in results], np.float64).reshape(-1, 4)
        d_score = np.array([r["score"] for r in results], np.float64)
    except KeyError as exc:
        raise DatasetError(f"results refer to an image or field not in the dict: {exc}") from exc
    g = _flat_gt(g_img, _index_in_image(g_img), g_k, g_box, g_crowd, g_area, len(cat_ids))
    d = _flat_dets(d_img, _index_in_image(d_img), d_k, d_box, d_score, len(cat_ids), md[-1])
    return _match(g, d, len(image_ids), tuple(range(len(cat_ids))), thr, areas, md)


def _index_in_image(image: NDArray[np.int64]) -> NDArray[np.int64]:
    """Position of each entry among its image's entries, in list order."""
    order = np.argsort(image, kind="stable")
    rank = np.empty(len(image), _INT)
    sorted_image = image[order]
    rank[order] = np.arange(len(image)) - np.searchsorted(sorted_image, sorted_image)
    return rank


@dataclass(frozen=True, slots=True)
class _FlatGT:
    image: NDArray[np.int64]
    index: NDArray[np.int64]
    klass: NDArray[np.int64]
    xywh: NDArray[np.float64]
    crowd: NDArray[np.bool_]
    area: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _FlatDets:
    image: NDArray[np.int64]
    index: NDArray[np.int64]
    klass: NDArray[np.int64]
    rank: NDArray[np.int64]
    xywh: NDArray[np.float64]
    score: NDArray[np.float64]


def _xywh(boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    # Same arithmetic as brittle.coco_format.xyxy_to_xywh, which writes the JSON that
    # pycocotools reads: the IoUs below are then computed from identical numbers.
    out = boxes.copy()
    out[:, 2:] -= boxes[:, :2]
    return out


def _class_index(num_classes: int, classes: tuple[int, ...]) -> NDArray[np.int64]:
    kmap = np.full(num_classes, -1, _INT)
    kmap[list(classes)] = np.arange(len(classes))
    return kmap


def _image_and_index(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    starts = np.cumsum(counts) - counts
    image = np.repeat(np.arange(len(counts), dtype=_INT), counts)
    return image, np.arange(int(counts.sum()), dtype=_INT) - np.repeat(starts, counts)


def _check_labels(labels: NDArray[np.int64], image: NDArray[np.int64], what: str, n: int) -> None:
    bad = (labels < 0) | (labels >= n)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"{what}[{int(image[i])}]: label {int(labels[i])} is outside 0..{n - 1}; "
            "map the labels to the dataset's classes first"
        )


def _flatten_gt(gts: Sequence[GroundTruth], num_classes: int, classes: tuple[int, ...]) -> _FlatGT:
    counts = np.fromiter((len(g) for g in gts), _INT, len(gts))
    image, index = _image_and_index(counts)
    if not len(image):
        z = np.zeros(0, _INT)
        return _FlatGT(z, z, z, np.zeros((0, 4)), np.zeros(0, np.bool_), np.zeros(0))
    labels = np.concatenate([g.labels for g in gts])
    _check_labels(labels, image, "gts", num_classes)
    boxes = np.concatenate([g.boxes for g in gts])
    area = np.concatenate([g.areas for g in gts])
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(area))
    if bad.any():
        raise DatasetError(f"gts[{int(image[np.argmax(bad)])}]: non-finite box or area")
    k = _class_index(num_classes, classes)[labels]
    crowd = np.concatenate([g.iscrowd for g in gts])
    return _flat_gt(image, index, k, _xywh(boxes), crowd, area, len(classes))


def _flat_gt(
    image: NDArray[np.int64],
    index: NDArray[np.int64],
    k: NDArray[np.int64],
    xywh: NDArray[np.float64],
    crowd: NDArray[np.bool_],
    area: NDArray[np.float64],
    n_classes: int,
) -> _FlatGT:
    """Ground truth of the evaluated classes (k >= 0), grouped by (image, class).

    The sort is stable, so each group keeps input order, the order pycocotools sees.
    """
    order = np.flatnonzero(k >= 0)
    order = order[np.argsort(image[order] * n_classes + k[order], kind="stable")]
    return _FlatGT(image[order], index[order], k[order], xywh[order], crowd[order], area[order])


def _flatten_dets(
    dets: Sequence[Detections], num_classes: int, classes: tuple[int, ...], max_det: int
) -> _FlatDets:
    counts = np.fromiter((len(d) for d in dets), _INT, len(dets))
    image, index = _image_and_index(counts)
    if not len(image):
        z = np.zeros(0, _INT)
        return _FlatDets(z, z, z, z, np.zeros((0, 4)), np.zeros(0))
    labels = np.concatenate([d.labels for d in dets])
    _check_labels(labels, image, "dets", num_classes)
    boxes = np.concatenate([d.boxes for d in dets]).astype(np.float64)
    score = np.concatenate([d.scores for d in dets]).astype(np.float64)
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(score))
    if bad.any():
        raise ModelError(f"dets[{int(image[np.argmax(bad)])}]: non-finite box or score")
    k = _class_index(num_classes, classes)[labels]
    return _flat_dets(image, index, k, _xywh(boxes), score, len(classes), max_det)


def _flat_dets(
    image: NDArray[np.int64],
    index: NDArray[np.int64],
    k: NDArray[np.int64],
    xywh: NDArray[np.float64],
    score: NDArray[np.float64],
    n_classes: int,
    max_det: int,
) -> _FlatDets:
    """Detections of the evaluated classes (k >= 0): the top ``max_det`` per (image, class)."""
    keep = np.flatnonzero(k >= 0)
    group = image[keep] * n_classes + k[keep]
    # lexsort is stable: per (image, class), descending score, ties in input order,
    # which is pycocotools' mergesort of -score over the results list.
    order = keep[np.lexsort((-score[keep], group))]
    group = image[order] * n_classes + k[order]
    rank = np.arange(len(order), dtype=_INT) - np.searchsorted(group, group, side="left")
    top = rank < max_det
    order, rank = order[top], rank[top]
    return _FlatDets(image[order], index[order], k[order], rank, xywh[order], score[order])


def _match(
    g: _FlatGT,
    d: _FlatDets,
    n_images: int,
    classes: tuple[int, ...],
    thr: NDArray[np.float64],
    area_ranges: NDArray[np.float64],
    max_dets: tuple[int, ...],
) -> MatchRecords:
    A, T, K = len(area_ranges), len(thr), len(classes)
    lo, hi = area_ranges[:, :1], area_ranges[:, 1:]
    gt_ignore = g.crowd[None, :] | (g.area[None, :] < lo) | (g.area[None, :] > hi)
    det_area = d.xywh[:, 2] * d.xywh[:, 3]

    # pycocotools caps the threshold just below 1, so IoU 1 still matches at t=1.
    thr_eff = np.minimum(thr, 1 - 1e-10)
    pair_det, pair_gt, pair_local, pair_iou, gs = _candidates(g, d, K, float(thr_eff.min()))
    n_det, n_gt = len(d.image), len(g.image)
    row, md, mg = _greedy(
        pair_det, pair_gt, pair_local, pair_iou, d, gs, gt_ignore, g.crowd, thr_eff
    )
    # Filled through flat indices: multi-dimensional fancy indexing is much slower.
    det_flat = row * n_det + md
    det_match = np.full((A, T, n_det), -1, np.int32)
    det_match.reshape(-1)[det_flat] = g.index[mg]
    det_ignore = np.repeat(((det_area < lo) | (det_area > hi))[:, None, :], T, axis=1)
    det_ignore.reshape(-1)[det_flat] = gt_ignore.reshape(-1)[row // T * n_gt + mg]
    gt_match = np.full((A, T, n_gt), -1, np.int32)
    gt_flat = row * n_gt + mg
    gt_match.reshape(-1)[gt_flat] = d.index[md]
    # A crowd region can be matched by several detections; like pycocotools, keep the
    # last one. Fancy assignment does not promise which duplicate wins, so write the
    # crowd matches again, last one only (entries are in matching order).
    crowd = np.flatnonzero(g.crowd[mg])
    if crowd.size:
        cf = gt_flat[crowd][::-1]
        last = crowd[::-1][np.unique(cf, return_index=True)[1]]
        gt_match.reshape(-1)[gt_flat[last]] = d.index[md[last]]
    bounds = np.arange(n_images + 1)
    return MatchRecords(
        classes=classes,
        iou_thresholds=thr,
        area_ranges=area_ranges,
        max_dets=max_dets,
        det_offsets=np.searchsorted(d.image, bounds).astype(_INT),
        det_index=d.index,
        det_class=d.klass,
        det_rank=d.rank,
        det_score=d.score,
        det_area=det_area,
        det_match=det_match,
        det_ignore=det_ignore,
        gt_offsets=np.searchsorted(g.image, bounds).astype(_INT),
        gt_index=g.index,
        gt_class=g.klass,
        gt_ignore=gt_ignore,
        gt_match=gt_match,
    )


_PAIR_CHUNK = 1 << 22


def _candidates(
    g: _FlatGT, d: _FlatDets, n_classes: int, min_iou: float
) -> tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]
]:
    """(detection, ground truth) pairs of the same image and class with IoU >= min_iou.

    Returns pair_det, pair_gt, pair_local (the ground truth's position in its group),
    pair_iou, sorted by detection, and gs, each detection's first ground truth.
    """
    gt_group = g.image * n_classes + g.klass
    det_group = d.image * n_classes + d.klass
    gs = np.searchsorted(gt_group, det_group, side="left")
    n_pairs = np.searchsorted(gt_group, det_group, side="right") - gs
    # All pairs of a crowded image can be many: build them a few million at a time.
    ends = np.cumsum(n_pairs)
    cuts = np.searchsorted(
        ends, np.arange(_PAIR_CHUNK, int(ends[-1]) if len(ends) else 0, _PAIR_CHUNK), side="right"
    )
    parts = []
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(n_pairs)], strict=True):
        counts = n_pairs[lo:hi]
        pd = np.repeat(np.arange(lo, hi, dtype=_INT), counts)
        local = np.arange(len(pd), dtype=_INT) - np.repeat(np.cumsum(counts) - counts, counts)
        pg = gs[pd] + local
        iou = _pair_iou(d.xywh[pd], g.xywh[pg], g.crowd[pg])
        keep = iou >= min_iou
        parts.append((pd[keep], pg[keep], local[keep], iou[keep]))
    pair_det, pair_gt, pair_local, pair_iou = (np.concatenate(x) for x in zip(*parts, strict=True))
    return pair_det, pair_gt, pair_local, pair_iou, gs


def _greedy(
    pair_det: NDArray[np.int64],
    pair_gt: NDArray[np.int64],
    pair_local: NDArray[np.int64],
    pair_iou: NDArray[np.float64],
    d: _FlatDets,
    gs: NDArray[np.int64],
    gt_ignore: NDArray[np.bool_],
    crowd: NDArray[np.bool_],
    thr: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Greedy matching at every (area range, IoU threshold).

    Returns the matches as index arrays (row = area range * T + threshold, detection,
    ground truth), in matching order, with global detection and ground-truth indices.
    """
    A, T, n_gt = gt_ignore.shape[0], len(thr), len(crowd)
    found: list[tuple[NDArray[np.int64], ...]] = []
    if not len(pair_det):
        z = np.zeros(0, _INT)
        return z, z, z

    # A detection's choice is the maximum of one integer key over its candidates:
    # non-ignored ground truth first, then higher IoU, then later position (pycocotools
    # replaces its best on IoU >= best). IoUs enter as ranks, so nothing is rounded.
    _, iou_rank = np.unique(pair_iou, return_inverse=True)
    stride = int(pair_local.max()) + 1
    top = (int(iou_rank.max()) + 1) * stride
    base = iou_rank.astype(_INT) * stride + pair_local
    key = base[None, :] + (~gt_ignore[:, pair_gt]).astype(_INT) * top
    passes = pair_iou[None, :] >= thr[:, None]

    # Only detections of the same image and class compete for a ground truth, so all
    # images and classes advance together: round r handles, in each group, the r-th
    # detection that has any candidate (detections without one cannot take anything).
    cand = np.flatnonzero(np.diff(pair_det, prepend=-1) != 0)
    cand_det = pair_det[cand]
    group = d.image[cand_det] * (int(d.klass.max()) + 1) + d.klass[cand_det]
    turn = np.arange(len(cand), dtype=_INT) - np.searchsorted(group, group, side="left")
    pair_turn = np.repeat(turn, np.diff(np.append(cand, len(pair_det))))
    order = np.argsort(pair_turn, kind="stable")
    bounds = np.searchsorted(pair_turn[order], np.arange(int(turn.max()) + 2))

    taken = np.zeros(A * T * n_gt, np.bool_)
    row_base = (np.arange(A * T, dtype=_INT) * n_gt)[:, None]
    for r in range(len(bounds) - 1):
        p = order[bounds[r] : bounds[r + 1]]
        pg, pd = pair_gt[p], pair_det[p]
        starts = np.flatnonzero(np.diff(pd, prepend=-1) != 0)
        free = ~taken[row_base + pg].reshape(A, T, -1) | crowd[pg]
        valid = free & passes[None, :, p]
        best = np.maximum.reduceat(np.where(valid, key[:, None, p], -1), starts, axis=2)
        best = best.reshape(A * T, -1)
        row, di = np.nonzero(best >= 0)
        det = pd[starts[di]]
        gt = gs[det] + best[row, di] % stride
        taken[row * n_gt + gt] = True
        found.append((row, det, gt))
    row, det, gt = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return row, det, gt
