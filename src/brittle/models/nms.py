"""Candidate selection and per-class non-maximum suppression, vectorised.

Evaluation runs detectors at a very low confidence (0.001) so that the
precision-recall curve reaches high recall; a YOLO model then yields thousands
of candidate boxes per image, and a slow NMS would cost more than the network.
:func:`batched_nms` therefore hands the greedy loop to OpenCV's C++
``cv2.dnn.NMSBoxes`` after the coordinate-offset trick (boxes of different
classes are moved apart so they never overlap, making one class-agnostic pass
equal to per-class NMS). A pure numpy version, :func:`nms_numpy`, is kept as the
readable reference and as a fallback; both give identical results (see
``tests/unit/test_models_nms.py`` and ``bench/postprocess.py``).

>>> import numpy as np
>>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
>>> scores = np.array([0.9, 0.8, 0.7, 0.6])
>>> labels = np.array([0, 0, 1, 0])
>>> batched_nms(boxes, scores, labels, 0.5).tolist()  # box 1 overlaps box 0 (same class)
[0, 2, 3]
"""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_CANDIDATES",
    "SPLIT_ABOVE",
    "batched_nms",
    "box_iou",
    "nms_numpy",
    "postprocess",
    "select_candidates",
]

#: At most this many candidates enter NMS (the highest-scoring ones), as in the
#: Ultralytics/YOLOv5 validators (``max_nms=30000``): it bounds the cost of a
#: pathological image without changing results on real ones.
MAX_CANDIDATES = 30_000


def box_iou(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """IoU matrix (len(a), len(b)) of xyxy boxes; degenerate boxes have IoU 0.

    >>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6]]).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.asarray(iou, np.float64)


def _offset(boxes: NDArray[Any], labels: NDArray[Any]) -> NDArray[np.float64]:
    """Shift each class's boxes to its own region so classes never overlap."""
    b = np.asarray(boxes, np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    # Shift relative to the minimum too, so negative coordinates cannot reach the next class.
    lo = float(b.min())
    span = float(b.max()) - lo + 1.0
    return (b - lo) + (np.asarray(labels, np.float64) * span)[:, None]


def nms_numpy(
    boxes: ArrayLike, scores: ArrayLike, iou_threshold: float, max_keep: int | None = None
) -> NDArray[np.int64]:
    """Class-agnostic greedy NMS in numpy: kept indices by descending score.

    A box is suppressed when its IoU with a higher-scoring kept box is greater
    than ``iou_threshold`` (the torchvision / OpenCV convention). Ties in score
    keep the lower index first (stable order).

    >>> nms_numpy([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30]], [0.5, 0.9, 0.1], 0.5).tolist()
    [1, 2]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def _rank_order(scores: NDArray[Any]) -> NDArray[np.intp]:
    """Indices by descending score; ties keep the lower index first."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def _nms_cv2(
    boxes: NDArray[np.float64], scores: NDArray[Any], iou_threshold: float
) -> NDArray[np.int64]:
    """Class-agnostic NMS by OpenCV's C++ loop (same rule and order as :func:`nms_numpy`)."""
    order = _rank_order(scores)
    xywh = boxes[order]
    # Clamped at 0 so inverted boxes have zero area, as in nms_numpy.
    xywh[:, 2:] = np.maximum(xywh[:, 2:] - xywh[:, :2], 0)
    # OpenCV drops scores <= its threshold (which must be >= 0) and its sort order for
    # ties is not ours: give it ranks instead (exact in float32 below 2**24 boxes), so any
    # score, including 0 or negative, survives and ties break by index as in nms_numpy.
    ranks = np.arange(len(order), 0, -1, dtype=np.float32)
    # The stubs ask for sequences; the binding reads numpy arrays directly, without copies.
    idx = cv2.dnn.NMSBoxes(cast(Any, xywh), cast(Any, ranks), 0.0, float(iou_threshold))
    return np.asarray(order[np.asarray(idx, np.int64).reshape(-1)], np.int64)


#: Above this many candidates :func:`batched_nms` runs one OpenCV call per class instead
#: of one call on offset boxes. OpenCV compares every candidate with every kept box, so
#: a single call costs O(candidates x kept) even across classes that can never overlap;
#: splitting costs a Python loop over the classes present (~10 us each) but is ~10-25x
#: faster on thousands of candidates (numbers in bench/postprocess.py --nms).
SPLIT_ABOVE = 1024


def batched_nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    labels: ArrayLike,
    iou_threshold: float,
    *,
    backend: str = "cv2",
    split: bool | None = None,
) -> NDArray[np.int64]:
    """Per-class NMS: indices of the kept boxes, sorted by descending score.

    Boxes of different labels never suppress each other. ``backend`` is
    ``"cv2"`` (OpenCV's C++ loop, the fast default) or ``"numpy"`` (the
    reference). With cv2, ``split`` chooses one call per class (True) or one call
    on class-offset boxes (False); None picks by size (:data:`SPLIT_ABOVE`). All
    give the same indices in the same order.

    >>> batched_nms([[0, 0, 4, 4], [0, 0, 4, 4]], [0.3, 0.9], [1, 1], 0.5).tolist()
    [1]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores).reshape(-1)
    lab = np.asarray(labels, np.int64).reshape(-1)
    if len(s) == 0:
        return np.zeros(0, np.int64)
    if backend == "numpy":
        return nms_numpy(_offset(b, lab), s, iou_threshold)
    if backend != "cv2":
        raise ValueError(f"unknown NMS backend {backend!r}; use 'cv2' or 'numpy'")
    if not (len(s) > SPLIT_ABOVE if split is None else split):
        return _nms_cv2(_offset(b, lab), s, iou_threshold)
    order = _rank_order(s)
    # A stable sort by label of the score-sorted list groups classes, each still by score.
    by_class = order[np.argsort(lab[order], kind="stable")]
    cuts = np.flatnonzero(np.diff(lab[by_class])) + 1
    rank = np.empty(len(s), np.int64)
    rank[order] = np.arange(len(s))
    kept = [
        group[_nms_cv2(b[group], -rank[group].astype(np.float64), iou_threshold)]
        for group in np.split(by_class, cuts)
    ]
    keep = np.concatenate(kept)
    return np.asarray(keep[np.argsort(rank[keep])], np.int64)


def select_candidates(
    boxes: ArrayLike,
    class_scores: ArrayLike,
    conf: float,
    *,
    multi_label: bool,
    objectness: ArrayLike | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
    """Turn dense per-class scores into (boxes, scores, labels) candidates above ``conf``.

    ``class_scores`` is (N, C); with ``objectness`` (N,) the score is
    ``objectness * class_score``. ``multi_label=True`` keeps every (box, class)
    pair above ``conf`` (the YOLOv5 / Ultralytics validators); ``False`` keeps
    only each box's best class (YOLOX). A candidate needs ``score > conf``.

    >>> b = np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32)
    >>> cs = np.array([[0.5, 0.4], [0.0005, 0.002]], np.float32)
    >>> [x.tolist() for x in select_candidates(b, cs, 0.001, multi_label=True)[1:]]
    [[0.5, 0.4000000059604645, 0.0020000000949949026], [0, 1, 1]]
    >>> [x.tolist() for x in select_candidates(b, cs, 0.001, multi_label=False)[1:]]
    [[0.5, 0.0020000000949949026], [0, 1]]
    """
    bx = np.asarray(boxes, np.float32).reshape(-1, 4)
    cs = np.asarray(class_scores, np.float32)
    if cs.ndim != 2:
        cs = cs.reshape(len(bx), -1)
    obj = None if objectness is None else np.asarray(objectness, np.float32).reshape(-1)
    if obj is not None:
        # Class probabilities are at most 1, so obj <= conf rules a row out: skip the
        # multiplication for the (vast majority of) rows that cannot pass.
        rows = np.flatnonzero(obj > conf)
        bx, cs, obj = bx[rows], cs[rows], obj[rows]
    if multi_label:
        score_matrix = cs * obj[:, None] if obj is not None else cs
        i, j = np.nonzero(score_matrix > conf)
        return bx[i], score_matrix[i, j], j.astype(np.int64)
    j = np.argmax(cs, axis=1) if cs.shape[1] else np.zeros(len(cs), np.int64)
    best = cs[np.arange(len(cs)), j] if cs.shape[1] else np.zeros(len(cs), np.float32)
    score = best * obj if obj is not None else best
    ok = score > conf
    return bx[ok], score[ok].astype(np.float32), j[ok].astype(np.int64)


def postprocess(
    boxes: ArrayLike,
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    conf: float = 0.001,
    iou: float | None = 0.65,
    max_det: int = 300,
    max_candidates: int = MAX_CANDIDATES,
) -> NDArray[np.int64]:
    """Indices of the detections to keep: score > ``conf``, per-class NMS, top ``max_det``.

    ``iou=None`` skips NMS (end-to-end models already did it). The defaults are
    brittle's evaluation defaults; the NMS IoU default of each model family is
    in :data:`brittle.models.decoders.FAMILIES` (YOLOX 0.65, YOLOv5 0.6,
    YOLOv8/11 0.7). The result is sorted by descending score.

    >>> b = [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    >>> postprocess(b, [0.9, 0.8, 0.0005, 0.7], [0, 0, 0, 1], iou=0.5, max_det=5).tolist()
    [0, 3]
    """
    s = np.asarray(scores, np.float32).reshape(-1)
    cand = np.flatnonzero(s > conf)
    if len(cand) > max_candidates:
        cand = np.sort(cand[np.argpartition(-s[cand], max_candidates - 1)[:max_candidates]])
    if len(cand) == 0:
        return np.zeros(0, np.int64)
    if iou is None:
        keep = cand[_rank_order(s[cand])]
    else:
        b = np.asarray(boxes, np.float64).reshape(-1, 4)[cand]
        lab = np.asarray(labels, np.int64).reshape(-1)[cand]
        if len(cand) > SPLIT_ABOVE and 0 < max_det < len(cand):
            keep = cand[_first_kept(b, s[cand], lab, iou, max_det)]
        else:
            keep = cand[batched_nms(b, s[cand], lab, iou)]
    return np.asarray(keep[:max_det], np.int64)


def _first_kept(
    boxes: NDArray[np.float64],
    scores: NDArray[Any],
    labels: NDArray[np.int64],
    iou: float,
    max_det: int,
) -> NDArray[np.int64]:
    """``batched_nms(..., split=True)``'s first ``max_det`` kept boxes (or all, if fewer),
    without suppressing among every candidate.

    Greedy NMS decides each box from the higher-ranked boxes of its class alone, so NMS
    on the ``m`` best-ranked candidates keeps exactly the full run's kept boxes among
    them; once those number ``max_det``, no lower-ranked box can be among the first
    ``max_det``. At confidence 0.001 most low-scoring candidates are kept (they lie
    apart), so a YOLOv8-layout model's full NMS compares ~1,500 candidates with ~1,300
    kept boxes and took 4 ms per 160 px image, 5x its inference (measured on the demo
    models), to keep 300.
    """
    order = _rank_order(scores)
    m = 2 * max_det
    while True:
        top = order[:m]
        kept = top[batched_nms(boxes[top], scores[top], labels[top], iou, split=True)]
        if len(kept) >= max_det or m >= len(order):
            return np.asarray(kept, np.int64)
        m *= 4
