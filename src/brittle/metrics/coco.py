"""Exact COCO bbox evaluation: pycocotools' numbers, vectorised.

:func:`evaluate` returns what ``COCOeval(iouType="bbox")`` computes after
``evaluate(); accumulate(); summarize()`` on the same data written as COCO JSON by
:mod:`brittle.coco_format` — the same precision, recall and score arrays and the
same 12 stats, bit for bit. It runs in two stages: :func:`~brittle.metrics.matching.match_images`
builds per-image match records, :func:`accumulate` turns the records of any list of
images (a subset, a bootstrap resample) into precision/recall curves.

>>> from brittle.types import Detections, GroundTruth
>>> gts = [GroundTruth(boxes=[[0, 0, 10, 10]], labels=[0]), GroundTruth.empty()]
>>> dets = [Detections([[0, 0, 10, 8]], [0.9], [0]), Detections([[5, 5, 9, 9]], [0.8], [0])]
>>> ev = evaluate(gts, dets, num_classes=1)

The first detection overlaps its object with IoU 0.8, so it matches at 7 of the 10
IoU thresholds; the second, on an image without objects, is a false positive but
ranks below it. Precision is ``tp / (tp + fp + eps)``, so, as in pycocotools, a
perfect curve averages to just under 1:

>>> ev.stat("map50"), ev.stat("ar100")
(0.9999999999999999, 0.7)
>>> ev.per_class_ap()
{0: 0.6999999999999998}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, UnknownNameError
from brittle.metrics.matching import (
    COCO_AREA_NAMES,
    COCO_AREA_RANGES,
    COCO_MAX_DETS,
    MatchRecords,
    _check_max_dets,
    _gather_ranges,
    _image_indices,
    _readonly,
    match_coco,
    match_images,
)
from brittle.metrics.weighted_ap import _column_counts, _distinct_columns, _Groups, _layout
from brittle.types import Detections, GroundTruth

__all__ = [
    "COCO_RECALL_THRESHOLDS",
    "COCO_STAT_NAMES",
    "CocoEvaluation",
    "WeightedAP",
    "accumulate",
    "evaluate",
    "evaluate_coco",
    "evaluate_records",
    "summarize",
]

COCO_STAT_NAMES: tuple[str, ...] = (
    "map50_95",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)

COCO_RECALL_THRESHOLDS: NDArray[np.float64] = _readonly(
    np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
)

_EPS = np.spacing(1)


@dataclass(frozen=True, slots=True)
class CocoEvaluation:
    """COCO results: arrays indexed like pycocotools' ``COCOeval.eval``, -1 = undefined.

    ``precision`` and ``scores`` are (T, R, K, A, M), ``recall`` is (T, K, A, M) with
    T IoU thresholds, R=101 recall thresholds, K ``classes`` (sorted class indices),
    A=4 area ranges (all, small, medium, large) and M ``max_dets``.
    """

    stats: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: tuple[int, ...]
    iou_thresholds: NDArray[np.float64]
    max_dets: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("stats", "precision", "recall", "scores", "iou_thresholds"):
            object.__setattr__(self, name, _readonly(np.asarray(getattr(self, name))))

    def stat(self, name: str) -> float:
        """One of the 12 summary numbers, by its name in :data:`COCO_STAT_NAMES`."""
        if name not in COCO_STAT_NAMES:
            import difflib

            close = difflib.get_close_matches(name, COCO_STAT_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"unknown COCO stat {name!r}{hint}")
        return float(self.stats[COCO_STAT_NAMES.index(name)])

    def as_dict(self) -> dict[str, float]:
        """The 12 summary numbers by name (-1.0 where undefined)."""
        return {n: float(v) for n, v in zip(COCO_STAT_NAMES, self.stats, strict=True)}

    def per_class_ap(self) -> dict[int, float | None]:
        """AP@[.5:.95] per class (area all, largest max_dets); None without ground truth."""
        return self._per_class(self.precision[:, :, :, 0, -1])

    def per_class_ap50(self) -> dict[int, float | None]:
        """AP@.5 per class (area all, largest max_dets); None without ground truth."""
        t = np.flatnonzero(self.iou_thresholds == 0.5)
        if not t.size:
            raise ConfigError("per_class_ap50: 0.5 is not one of the IoU thresholds")
        return self._per_class(self.precision[t][:, :, :, 0, -1])

    def _per_class(self, p: NDArray[np.float64]) -> dict[int, float | None]:
        out: dict[int, float | None] = {}
        for k, c in enumerate(self.classes):
            v = p[:, :, k]
            v = v[v > -1]
            out[c] = float(np.mean(v)) if v.size else None
        return out


def evaluate(
    gts: Sequence[GroundTruth],
    dets: Sequence[Detections],
    num_classes: int,
    *,
    classes: Sequence[int] | None = None,
    iou_thresholds: ArrayLike | None = None,
    max_dets: tuple[int, int, int] = COCO_MAX_DETS,
) -> CocoEvaluation:
    """COCO bbox evaluation of ``dets[i]`` against ``gts[i]`` for every image ``i``.

    ``classes`` (default all ``0..num_classes-1``) form the K axis; ground truth and
    detections of other classes are ignored. Equal to pycocotools on
    ``gt_to_coco(gts, ..., classes=classes)`` and ``dets_to_coco(dets, classes=classes)``
    (with ``summarize()`` corrected for non-default ``max_dets``, see docs/metrics.md).

    >>> gt = GroundTruth(boxes=[[0, 0, 20, 20], [40, 40, 80, 80]], labels=[0, 1])
    >>> det = Detections([[0, 0, 20, 20], [0, 0, 20, 20]], [0.9, 0.3], [0, 1])
    >>> ev = evaluate([gt], [det], num_classes=2)
    >>> {c: round(ap, 6) for c, ap in ev.per_class_ap().items()}
    {0: 1.0, 1: 0.0}
    >>> round(ev.stat("map_small"), 6), ev.stat("map_medium"), ev.stat("map_large")
    (1.0, 0.0, -1.0)
    """
    md = _check_max_dets(max_dets)
    if len(md) != 3:
        raise ConfigError(f"max_dets must be three numbers, got {tuple(max_dets)}")
    records = match_images(
        gts, dets, num_classes, classes=classes, iou_thresholds=iou_thresholds, max_dets=md
    )
    return evaluate_records(records)


def evaluate_coco(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    iou_thresholds: ArrayLike | None = None,
    max_dets: tuple[int, int, int] = COCO_MAX_DETS,
) -> CocoEvaluation:
    """Evaluate a COCO results list against a COCO instances dict, as pycocotools would.

    Unlike converting to :class:`GroundTruth`/:class:`Detections` first (float32
    detection boxes, ``x + w`` edges), this reads the files' own numbers, so the result
    equals pycocotools on any files. ``classes`` are the categories by ascending id.

    >>> gt = {"images": [{"id": 4}], "categories": [{"id": 7}],
    ...       "annotations": [{"id": 1, "image_id": 4, "category_id": 7,
    ...                        "bbox": [0.1, 0.2, 30.3, 40.4], "area": 1000.0, "iscrowd": 0}]}
    >>> res = [{"image_id": 4, "category_id": 7, "bbox": [0.1, 0.2, 30.3, 40.4], "score": 0.9}]
    >>> evaluate_coco(gt, res).stat("ar100"), evaluate_coco(gt, res).classes
    (1.0, (0,))
    """
    md = _check_max_dets(max_dets)
    if len(md) != 3:
        raise ConfigError(f"max_dets must be three numbers, got {tuple(max_dets)}")
    return evaluate_records(match_coco(gt, results, iou_thresholds=iou_thresholds, max_dets=md))


def evaluate_records(
    records: MatchRecords, image_indices: ArrayLike | None = None
) -> CocoEvaluation:
    """:class:`CocoEvaluation` of the images ``image_indices`` (default all, in order).

    Indices may repeat (a bootstrap resample); a repeated image counts as a new image
    with the same content, placed at its position in the list.
    """
    if len(records.max_dets) != 3 or not np.array_equal(records.area_ranges, COCO_AREA_RANGES):
        raise ConfigError(
            "evaluate_records: the 12 COCO stats need three max_dets and COCO's area ranges; "
            "use accumulate() for other settings"
        )
    precision, recall, scores = accumulate(records, image_indices)
    return CocoEvaluation(
        stats=summarize(precision, recall, records.iou_thresholds),
        precision=precision,
        recall=recall,
        scores=scores,
        classes=records.classes,
        iou_thresholds=records.iou_thresholds,
        max_dets=records.max_dets,
    )


def summarize(
    precision: NDArray[np.float64],
    recall: NDArray[np.float64],
    iou_thresholds: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The 12 COCO stats from accumulated arrays (A=4 COCO area ranges, M=3 max_dets).

    AP stats use the largest max_dets, AR stats each max_dets in turn — what
    pycocotools' ``summarize()`` computes for the default (1, 10, 100); unlike it,
    this stays right for any max_dets (docs/metrics.md explains the difference).
    """
    if precision.shape[3] != len(COCO_AREA_NAMES) or precision.shape[4] != 3:
        raise ConfigError(f"summarize: expected A=4 and M=3, got precision {precision.shape}")

    def mean(s: NDArray[np.float64]) -> float:
        v = s[s > -1]
        return float(np.mean(v)) if v.size else -1.0

    def at(thr: float) -> NDArray[np.float64]:
        # pycocotools looks thresholds up by exact equality, which holds for its own
        # linspace values; a custom threshold list without 0.5/0.75 gives -1.
        return precision[np.flatnonzero(iou_thresholds == thr)]

    last = precision.shape[4] - 1
    return np.array(
        [
            mean(precision[:, :, :, 0, last]),
            mean(at(0.5)[:, :, :, 0, last]),
            mean(at(0.75)[:, :, :, 0, last]),
            mean(precision[:, :, :, 1, last]),
            mean(precision[:, :, :, 2, last]),
            mean(precision[:, :, :, 3, last]),
            mean(recall[:, :, 0, 0]),
            mean(recall[:, :, 0, 1]),
            mean(recall[:, :, 0, 2]),
            mean(recall[:, :, 1, last]),
            mean(recall[:, :, 2, last]),
            mean(recall[:, :, 3, last]),
        ],
        np.float64,
    )


def accumulate(
    records: MatchRecords,
    image_indices: ArrayLike | None = None,
    *,
    rec_thresholds: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(precision, recall, scores)`` of the chosen images, as pycocotools' ``accumulate()``.

    Detections of all chosen images are pooled per class (in image order, then rank),
    sorted by descending score with a stable sort; at each position the cumulative
    true and false positives give recall ``tp / n_gt`` and precision
    ``tp / (tp + fp + eps)``; precision is made non-increasing from the right and read
    at the first position whose recall reaches each recall threshold (0 past the end).
    Classes with no non-ignored ground truth stay -1. Ignored detections keep their
    position in the sequence without counting as true or false positives.
    """
    rthr = COCO_RECALL_THRESHOLDS
    if rec_thresholds is not None:
        rthr = np.asarray(rec_thresholds, np.float64).reshape(-1)
        if not (rthr.size and np.all(np.diff(rthr) >= 0) and rthr[0] >= 0 and rthr[-1] <= 1):
            raise ConfigError("rec_thresholds must be ascending values in [0, 1]")
    T, R, K = len(records.iou_thresholds), len(rthr), len(records.classes)
    A, M = len(records.area_ranges), len(records.max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))

    if image_indices is None:
        d: NDArray[np.int64] | None = None
        gt_class, gt_ignore = records.gt_class, records.gt_ignore
    else:
        idx = _image_indices(image_indices, len(records))
        d = _gather_ranges(records.det_offsets, idx)[0]
        g = _gather_ranges(records.gt_offsets, idx)[0]
        gt_class, gt_ignore = records.gt_class[g], records.gt_ignore[:, g]
    # (K, A): non-ignored ground truth per class and area range, pycocotools' npig
    n_gt = np.stack([np.bincount(gt_class[~ig], minlength=K) for ig in gt_ignore], axis=1)

    klass, score = records.det_class, records.det_score
    if d is not None:
        klass, score = klass[d], score[d]
    # Pooled order: class, then descending score; lexsort is stable, so equal scores
    # keep image order then rank, as pycocotools' mergesort over concatenated images.
    order = np.lexsort((-score, klass))
    if d is not None:
        order = d[order]
    klass, score, rank = records.det_class[order], records.det_score[order], records.det_rank[order]
    tp_all = np.take(records.det_tp, order, axis=2)
    ig_all = np.take(records.det_ignore, order, axis=2)

    for m, max_det in enumerate(records.max_dets):
        # Dropping detections of rank >= max_det keeps the stable order of the rest;
        # their matches do not change because greedy matching goes in rank order.
        keep = rank < max_det
        if keep.all():
            kk, ss, tp_m, ig_m = klass, score, tp_all, ig_all
        else:
            kept = np.flatnonzero(keep)
            kk, ss = klass[kept], score[kept]
            tp_m, ig_m = np.take(tp_all, kept, axis=2), np.take(ig_all, kept, axis=2)
        bounds = np.searchsorted(kk, np.arange(K + 1))
        for k in range(K):
            a_ok = np.flatnonzero(n_gt[k] > 0)
            if a_ok.size:
                lo, hi = bounds[k], bounds[k + 1]
                p, r, s = _curves(tp_m[:, :, lo:hi], ig_m[:, :, lo:hi], ss[lo:hi], n_gt[k], rthr)
                precision[:, :, k, a_ok, m] = p[a_ok].transpose(1, 2, 0)
                scores[:, :, k, a_ok, m] = s[a_ok].transpose(1, 2, 0)
                recall[:, k, a_ok, m] = r[a_ok].T
    return precision, recall, scores


def _curves(
    tp: NDArray[np.bool_],
    ig: NDArray[np.bool_],
    score: NDArray[np.float64],
    n_gt: NDArray[np.int64],
    rthr: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Sampled precision (A, T, R), recall (A, T) and scores (A, T, R) of one class.

    ``tp`` and ``ig`` (A, T, n) flag true positives and ignored detections in pooled
    order. Rows whose ``n_gt`` is 0 come out meaningless; the caller drops them.
    """
    A, T, n = tp.shape
    rows = A * T
    # Precision only rises at a true positive, so its running maximum from the right,
    # read where recall first reaches a threshold (always a true positive, or the
    # first position), only needs the precision at true positives.
    flat = np.flatnonzero(tp)  # multi-dimensional nonzero() is ~10x slower
    row, pos = np.divmod(flat, n)
    n_tp = np.bincount(row, minlength=rows)
    j = np.arange(len(row)) - np.repeat(np.cumsum(n_tp) - n_tp, n_tp) + 1
    n_ig = np.cumsum(ig, axis=2, dtype=np.int32).reshape(-1)[flat]
    counted = (pos + 1 - n_ig).astype(np.float64)  # tp + fp, exact in float
    width = max(int(n_tp.max()), 1)
    env = np.zeros((rows, width))
    env[row, j - 1] = j / (counted + _EPS)
    env = np.maximum.accumulate(env[:, ::-1], axis=1)[:, ::-1]
    at = np.zeros((rows, width), np.int64)
    at[row, j - 1] = pos

    # Recall tp / n_gt grows with tp, so "first position with recall >= r" is the
    # position of the J-th true positive, J the least count whose recall, divided in
    # floating point as pycocotools does, reaches r (J = 0: the first position).
    J = np.stack([np.searchsorted(np.arange(c + 1) / max(c, 1), rthr) for c in n_gt])
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = (n_tp.reshape(A, T) / n_gt[:, None]).astype(np.float64)
    J = np.repeat(J, T, axis=0)  # (rows, R)
    ok = ((J >= 1) & (n_tp[:, None] >= J)) | ((J == 0) & (n > 0))
    slot = np.clip(J - 1, 0, width - 1)
    r_idx = np.arange(rows)[:, None]
    prec = np.where(ok, env[r_idx, slot], 0.0)
    first = score[0] if n else 0.0
    sc = np.where(ok, np.where(J == 0, first, score[at[r_idx, slot]] if n else 0.0), 0.0)
    return prec.reshape(A, T, -1), recall, sc.reshape(A, T, -1)


# ------------------------------------------------------------------ weighted images


@dataclass(frozen=True, slots=True, eq=False)
class WeightedAP:
    """AP of images given integer weights: the fast path of bootstrap resamples.

    A bootstrap resample is a multiset of images; weighting each image by its count is
    the same as listing its copies, so one sort of the detections, made once, serves
    every resample: the curves follow from weighted cumulative sums of true and false
    positives. Only what AP at the largest ``max_dets`` needs is computed, in one area
    range (``area``, default 0: "all"). Build it with :meth:`from_records`.

    With all weights 1 the precision table is ``accumulate(records)``'s, bit for bit.
    With integer weights it is that of ``np.repeat(np.arange(n), weights)`` (copies of
    an image side by side), unless an image has two detections of one class with equal
    scores and different outcomes (docs/bootstrap.md measures the effect).

    >>> gts = [GroundTruth([[0, 0, 10, 10]], [0]), GroundTruth([[0, 0, 10, 10]], [0])]
    >>> dets = [Detections([[0, 0, 10, 10]], [0.9], [0]),
    ...         Detections([[50, 50, 60, 60]], [0.95], [0])]
    >>> records = match_images(gts, dets, 1)
    >>> wap = WeightedAP.from_records(records)
    >>> float(wap.ap([1, 1])) == evaluate(gts, dets, 1).stat("map50_95")
    True
    >>> wap.ap([[2, 0], [0, 2], [2, 1]]).round(4).tolist()  # three resamples at once
    [1.0, 0.0, 0.4422]
    >>> round(evaluate_records(records, [0, 0, 1]).stat("map50_95"), 4)
    0.4422
    """

    n_images: int
    classes: tuple[int, ...]
    iou_thresholds: NDArray[np.float64]
    # (n_images, K): non-ignored ground truth of each image and class
    gt_counts: NDArray[np.int64]
    # Images of the detections in pooled order (class, then descending score), and of
    # the ignored ones among them, by threshold then position.
    det_image: NDArray[np.int64]
    ig_image: NDArray[np.int64]
    # Slots: two sentinels (precision 0 and -1), then the true positives of each
    # non-empty (threshold, class) row in pooled order, each row framed by a lead and a
    # trail slot and padded (see _layout). Per slot: its image (n: weight 0, for pads;
    # n + 1: weight 1, for sentinels, leads and trails) and its column (none: slot s is
    # column s).
    slot_image: NDArray[np.int64]
    slot_col: NDArray[np.int64]
    # Columns: the distinct bounds, in the cumulative sums over det_image and ig_image,
    # of the detections counted up to a slot; (n_images, columns) how many of them each
    # image has, or (0, 0) where a matrix product would cost more than the sums.
    col_hi: NDArray[np.int64]
    col_lo: NDArray[np.int64]
    col_ig_hi: NDArray[np.int64]
    col_ig_lo: NDArray[np.int64]
    col_counts: NDArray[np.float64]
    # The non-empty rows (index t * K + k) in slot order, the bounds where their
    # counts start (as col_lo and col_ig_lo), their lead and trail slots.
    rows: NDArray[np.int64]
    row_lo: NDArray[np.int64]
    row_ig_lo: NDArray[np.int64]
    row_lead: NDArray[np.int64]
    row_trail: NDArray[np.int64]
    # (first slot, rows, width) of each block of rows padded to one width
    groups: _Groups
    # Slots per image (n + 2 entries, as slot_image) and detections per image: bounds
    # on the sums, to choose integer widths that cannot overflow.
    image_slots: NDArray[np.int64]
    image_dets: NDArray[np.int64]

    def __post_init__(self) -> None:
        for name in WeightedAP.__slots__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                object.__setattr__(self, name, _readonly(value))

    @classmethod
    def from_records(cls, records: MatchRecords, *, area: int = 0) -> WeightedAP:
        """Prepare ``records`` for weighting, in area range ``area`` (default 0, "all")."""
        if not 0 <= area < len(records.area_ranges):
            raise ConfigError(f"area must be in 0..{len(records.area_ranges) - 1}, got {area}")
        n, K, T = len(records), len(records.classes), len(records.iou_thresholds)
        i64 = np.int64
        gt_image = np.repeat(np.arange(n, dtype=i64), np.diff(records.gt_offsets))
        counted = ~records.gt_ignore[area]
        gt_counts = np.zeros((n, K), i64)
        np.add.at(gt_counts, (gt_image[counted], records.gt_class[counted]), 1)

        # accumulate()'s pooled order: class, then descending score, ties in image order
        # then rank (the order the records are stored in; lexsort is stable).
        order = np.lexsort((-records.det_score, records.det_class))
        klass = records.det_class[order]
        det_image = np.repeat(np.arange(n, dtype=i64), np.diff(records.det_offsets))[order]
        D = max(len(order), 1)
        class_start = np.searchsorted(klass, np.arange(K + 1)).astype(i64)
        tp = records.det_tp[area][:, order].reshape(-1)
        ig_key = np.flatnonzero(records.det_ignore[area][:, order].reshape(-1))
        ig_image = det_image[ig_key % D]

        # True positives by threshold, class, then pooled position: rows t * K + k.
        t_of, pos = np.divmod(np.flatnonzero(tp), D)
        k_of = klass[pos]
        lo = class_start[k_of]
        row_len = np.bincount(t_of * K + k_of, minlength=T * K).astype(i64)
        rows, groups, src, kind, lead, trail = _layout(row_len)
        # Ignored detections are neither true nor false positives: their weight up to
        # each position comes off the count of detections.
        ig_hi = np.searchsorted(ig_key, t_of * D + pos, side="right").astype(i64)
        ig_lo = np.searchsorted(ig_key, t_of * D + lo, side="left").astype(i64)
        entry = kind < 2
        # Pads copy their row's last entry on the weightless image n: same counts, same
        # precision, so the running maximum is unchanged. The other slots count nothing.
        slot_image = np.full(len(src), n + 1, i64)
        slot_image[entry] = np.where(kind[entry] == 0, det_image[pos][src[entry]], n)
        # Leads and trails count from their row's start to itself, nothing: the counts
        # before the row are the same for all its slots (see _counted).
        row_t, row_k = np.divmod(rows, K)
        row_lo = class_start[row_k]
        row_ig_lo = np.searchsorted(ig_key, row_t * D + row_lo, side="left").astype(i64)
        bounds = np.zeros((4, len(src)), i64)
        for b, v, r in zip(
            bounds, (pos + 1, lo, ig_hi, ig_lo), (row_lo, row_lo, row_ig_lo, row_ig_lo), strict=True
        ):
            b[entry] = v[src[entry]]
            b[lead], b[trail] = r, r
        cols, slot_col = _distinct_columns(bounds)
        image_dets = np.bincount(det_image, minlength=n).astype(i64)
        col_counts = np.zeros((0, 0))
        if n * len(cols[0]) <= _DENSE * max(len(order), 1) and n * len(cols[0]) <= _DENSE_MAX:
            col_counts = _column_counts(cols, det_image, ig_image, n)
        else:  # counted slot by slot: a column per slot saves a pass
            cols, slot_col = bounds, np.zeros(0, i64)
        return cls(
            n_images=n,
            classes=records.classes,
            iou_thresholds=records.iou_thresholds,
            gt_counts=gt_counts,
            det_image=det_image,
            ig_image=ig_image,
            slot_image=slot_image,
            slot_col=slot_col,
            col_hi=cols[0],
            col_lo=cols[1],
            col_ig_hi=cols[2],
            col_ig_lo=cols[3],
            col_counts=col_counts,
            rows=rows,
            row_lo=row_lo,
            row_ig_lo=row_ig_lo,
            row_lead=lead,
            row_trail=trail,
            groups=groups,
            image_slots=np.bincount(slot_image, minlength=n + 2).astype(i64),
            image_dets=image_dets,
        )

    def precision(self, weights: ArrayLike) -> NDArray[np.float64]:
        """Precision at the recall thresholds: (T, R, K), or (B, T, R, K) for (B, n) weights.

        Equals ``accumulate()``'s ``precision[:, :, :, area, -1]`` on the images listed
        as often as their weight; -1 for classes without ground truth in them.
        """
        W = np.asarray(weights)
        single = W.ndim == 1
        W = _check_weights(W.reshape(1, -1) if single else W, self.n_images)
        T, K, R = len(self.iou_thresholds), len(self.classes), len(COCO_RECALL_THRESHOLDS)
        out = np.empty((len(W), T, R, K))
        npig = W @ self.gt_counts  # (B, K)
        # J(r) per resample and class, (B, K, R), from the few distinct counts; int32
        # unless a count is beyond it.
        counts, inverse = np.unique(npig, return_inverse=True)
        J = _recall_counts(counts)[inverse.reshape(-1)]
        J = J.astype(np.int32) if not J.size or J.max() <= _I32_MAX else J
        J = J.reshape(len(W), K, R)
        sums = 0 if self.col_counts.size else len(self.det_image)  # see _counted
        size = max(len(self.slot_image) + sums, T * R * K, 1)
        step = max(1, _CHUNK // size)
        for i in range(0, len(W), step):
            c = slice(i, i + step)
            self._chunk(W[c], npig[c], J[c], out[c])
        return out[0] if single else out

    def ap(self, weights: ArrayLike, iou_threshold: float | None = None) -> NDArray[np.float64]:
        """Mean precision over IoU and recall thresholds and classes with ground truth.

        ``iou_threshold=None`` averages every threshold (mAP@[.5:.95]); a threshold such
        as 0.5 averages that one (looked up by exact equality, as ``summarize``). -1
        where no class has ground truth. Shape () for 1-D weights, else (B,).
        """
        p = self.precision(weights)
        if iou_threshold is not None:
            t = np.flatnonzero(self.iou_thresholds == iou_threshold)
            if not t.size:
                raise ConfigError(f"{iou_threshold} is not one of the IoU thresholds")
            p = p[..., t, :, :]
        flat = p.reshape(-1, *p.shape[-3:])
        # One mean per resample, over the same (T, R, K) layout as summarize(), so the
        # sum runs in the same order and the result is bit-identical.
        return np.array([_mean_defined(x) for x in flat], np.float64).reshape(p.shape[:-3])

    def _counted(self, W: NDArray[np.int64]) -> NDArray[np.float64]:
        """(B, slots): the weight of the detections counted up to each slot, exact, + eps."""
        B, take = len(W), np.take
        load = W @ self.image_dets  # the largest count any slot can reach
        big = int(load.max()) if load.size else 0
        if self.col_counts.size and big < _FLOAT_EXACT:
            # Integers below 2**53 add exactly in float64 in any order, so BLAS gives
            # the same counts as the integer sums.
            den = W.astype(np.float64) @ self.col_counts
            den += _EPS
            return take(den, self.slot_col, axis=1)
        it: type[np.signedinteger[Any]] = np.int32 if big <= _I32_MAX else np.int64
        hi, ig_hi = self.col_hi, self.col_ig_hi
        if len(self.slot_col):
            hi, ig_hi = hi[self.slot_col], ig_hi[self.slot_col]
        Wi = W.astype(it, copy=False)
        cs = np.zeros((B, len(self.det_image) + 1), it)
        np.cumsum(take(Wi, self.det_image, axis=1), axis=1, dtype=it, out=cs[:, 1:])
        counted = take(cs, hi, axis=1)
        before = take(cs, self.row_lo, axis=1)
        if len(self.ig_image):
            cig = np.zeros((B, len(self.ig_image) + 1), it)
            np.cumsum(take(Wi, self.ig_image, axis=1), axis=1, dtype=it, out=cig[:, 1:])
            counted -= take(cig, ig_hi, axis=1)
            before -= take(cig, self.row_ig_lo, axis=1)
        # What precedes a row is the same for all its slots: taken off block by block
        # rather than read per slot.
        first = 0
        for lo, n_rows, width in self.groups:
            block = counted[:, lo : lo + n_rows * width].reshape(B, n_rows, width)
            block -= before[:, first : first + n_rows, None]
            first += n_rows
        den = counted.astype(np.float64)
        den += _EPS
        return den

    def _chunk(
        self,
        W: NDArray[np.int64],
        npig: NDArray[np.int64],
        J: NDArray[np.int64],
        out: NDArray[np.float64],
    ) -> None:
        """Fill ``out`` (B, T, R, K) with the precision tables of the resamples ``W``."""
        B, n, K = len(W), self.n_images, len(self.classes)
        T, take = len(self.iou_thresholds), np.take
        # Every count below is at most the number of units (slots times weights) in the
        # chunk: int32 when that fits, halving the memory traffic.
        units = W @ self.image_slots[:n] + int(self.image_slots[n + 1])
        it: type[np.signedinteger[Any]] = np.int32 if int(units.sum()) <= _I32_MAX else np.int64
        # np.repeat wants intp counts: w_slot is made so rather than converted.
        Wx = np.empty((B, n + 2), np.intp)
        Wx[:, :n], Wx[:, n], Wx[:, n + 1] = W, 0, 1
        w_slot = take(Wx, self.slot_image, axis=1)
        ce = np.cumsum(w_slot, axis=1, dtype=it)
        prec = self._counted(W)
        # The weight of true positives up to each slot, within its row, over the count
        # of detections; its running maximum from the right. The lead weighs 1, so the
        # count is 0 there; the trail is set to 0, read when J exceeds the row's weight.
        lead = take(ce, self.row_lead, axis=1)
        first = 0
        for lo, n_rows, width in self.groups:
            p = prec[:, lo : lo + n_rows * width].reshape(B, n_rows, width)
            rows_lead = lead[:, first : first + n_rows, None]
            tp = ce[:, lo : lo + n_rows * width].reshape(B, n_rows, width) - rows_lead
            np.divide(tp, p, out=p)
            p[:, :, -1] = 0.0
            np.maximum.accumulate(p[:, :, ::-1], axis=2, out=p[:, :, ::-1])
            first += n_rows
        prec[:, 0], prec[:, 1] = 0.0, -1.0
        # Unit u of resample b (slot s repeated w_slot[b, s] times, resamples one after
        # the other): recall reaches J(r) at unit lead + J, or the trail past the row's
        # weight; unit 0 is a 0 (empty rows), unit 1 a -1 (classes without ground truth).
        total = ce[:, -1]
        before = np.cumsum(total, dtype=it) - total
        start = np.zeros((B, T, K, 1), it)
        cap = np.zeros((B, T, K, 1), it)
        start.reshape(B, -1)[:, self.rows] = lead + (before[:, None] - 1)
        cap.reshape(B, -1)[:, self.rows] = take(ce, self.row_trail, axis=1) - lead
        none = np.broadcast_to((npig == 0)[:, None, :, None], start.shape)
        start[none], cap[none] = 1, 0
        if J.dtype != it:  # only J > cap matters, and cap fits in it
            J = np.minimum(J, _I32_MAX).astype(it) if it is np.int32 else J.astype(it)
        # (B, T, K, R): inner loops run over R, not over the few classes; the lookups
        # below write it in the output's (B, T, R, K) order.
        unit = np.minimum(J[:, None], cap)
        np.add(unit, start, out=unit)
        unit_t = unit.transpose(0, 1, 3, 2)
        if _search(len(self.rows), len(self.slot_image), int(total.sum()), B):
            # The first slot whose running weight exceeds the unit, found by binary search.
            ce += before[:, None]
            found = np.searchsorted(ce.reshape(-1), unit_t, side="right")
            take(prec.reshape(-1), found, out=out, mode="clip")
        else:
            vals = np.repeat(prec.reshape(-1), w_slot.reshape(-1))
            take(vals, unit_t, out=out, mode="clip")


_CHUNK = 1 << 18
# Column counts by a matrix product when images x columns is at most _DENSE times the
# detections (BLAS is that much faster than a cumulative sum per element) and small.
_DENSE = 16
_DENSE_MAX = 1 << 22
_I32_MAX = np.iinfo(np.int32).max
_FLOAT_EXACT = 1 << 53


def _search(n_rows: int, n_slots: int, units: int, B: int) -> bool:
    """Whether to look units up by binary search rather than in a table of units: few,
    long rows touch fewer elements that way, and heavy weights make the table long."""
    return 3 * n_rows * len(COCO_RECALL_THRESHOLDS) < n_slots or units > 8 * B * n_slots


def _recall_counts(npig: NDArray[np.int64]) -> NDArray[np.int64]:
    """J(r) for every count n and recall threshold r: the least j with ``j / n >= r``,
    divided in floating point as pycocotools does (the ceiling of r * n, corrected)."""
    r = COCO_RECALL_THRESHOLDS
    c = npig[..., None].astype(np.float64)
    j = np.minimum(np.ceil(r * c), c)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(2):
            j = np.where((j > 0) & ((j - 1) / c >= r), j - 1, j)
        for _ in range(2):
            j = np.where((j < c) & (j / c < r), j + 1, j)
    return j.astype(np.int64)


def _check_weights(W: NDArray[Any], n_images: int) -> NDArray[np.int64]:
    if W.ndim != 2 or W.shape[1] != n_images:
        raise ConfigError(f"weights: expected ({n_images},) or (B, {n_images}), got {W.shape}")
    whole = np.issubdtype(W.dtype, np.integer) or (
        np.issubdtype(W.dtype, np.floating) and bool(np.all(np.round(W) == W))
    )
    if not whole:
        raise ConfigError("weights must be whole numbers (how often each image is drawn)")
    Wi = W.astype(np.int64)
    if Wi.size and Wi.min() < 0:
        raise ConfigError("weights must be >= 0")
    return Wi


def _mean_defined(x: NDArray[np.float64]) -> float:
    v = x[x > -1]
    return float(np.mean(v)) if v.size else -1.0
