"""NMS and candidate selection: identical to a plain per-class reference, on every path."""

from __future__ import annotations

import numpy as np
import pytest

from brittle.models.nms import (
    SPLIT_ABOVE,
    batched_nms,
    box_iou,
    nms_numpy,
    postprocess,
    select_candidates,
)


def reference_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, thr: float) -> list:
    """The textbook algorithm, one class at a time, with plain Python loops."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep = []
    for c in np.unique(labels):
        idx = sorted(np.flatnonzero(labels == c), key=lambda i: (-scores[i], i))
        kept: list[int] = []
        for i in idx:
            if all(iou(boxes[i], boxes[k]) <= thr for k in kept):
                kept.append(i)
        keep += kept
    return sorted(keep, key=lambda i: (-scores[i], i))


def random_boxes(n: int, classes: int, seed: int, clustered: bool = False) -> tuple:
    rng = np.random.default_rng(seed)
    if clustered:
        # Like a detector's output: many jittered copies around a few objects.
        centres = rng.uniform(50, 550, (max(n // 40, 1), 2))
        xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 8, (n, 2))
        wh = rng.uniform(30, 120, (n, 2))
    else:
        xy = rng.uniform(-20, 600, (n, 2))
        wh = rng.uniform(1, 150, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    labels = rng.integers(0, classes, n)
    return boxes, scores, labels


@pytest.mark.parametrize(("backend", "split"), [("cv2", None), ("cv2", True), ("numpy", None)])
@pytest.mark.parametrize(
    ("n", "classes", "clustered"),
    [(1, 1, False), (50, 1, True), (300, 5, True), (800, 80, False), (SPLIT_ABOVE + 500, 20, True)],
)
@pytest.mark.parametrize("thr", [0.45, 0.65])
def test_batched_nms_equals_the_reference(
    backend: str, split: bool | None, n: int, classes: int, clustered: bool, thr: float
) -> None:
    boxes, scores, labels = random_boxes(n, classes, seed=n + classes, clustered=clustered)
    got = batched_nms(boxes, scores, labels, thr, backend=backend, split=split)
    assert got.tolist() == reference_nms(boxes, scores, labels, thr)


@pytest.mark.parametrize("backend", ["cv2", "numpy"])
def test_ties_zero_scores_and_degenerate_boxes(backend: str) -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 9], [20, 20, 30, 30]], float
    )
    scores = np.array([0.5, 0.5, 0.0, 0.5, -1.0])
    labels = np.array([0, 0, 1, 0, 0])
    got = batched_nms(boxes, scores, labels, 0.5, backend=backend)
    # Equal scores keep the lower index; a zero-area box overlaps nothing; 0 and negative
    # scores are kept (filtering by score is postprocess's job, not NMS's).
    assert got.tolist() == [0, 3, 2, 4]


def test_large_tied_inputs_take_the_per_class_path_and_agree() -> None:
    boxes, _, labels = random_boxes(SPLIT_ABOVE * 2, 7, seed=3, clustered=True)
    scores = np.round(np.random.default_rng(1).uniform(0, 1, len(boxes)), 2)  # many ties
    expected = reference_nms(boxes, scores, labels, 0.6)
    assert batched_nms(boxes, scores, labels, 0.6).tolist() == expected
    assert batched_nms(boxes, scores, labels, 0.6, backend="numpy").tolist() == expected


def test_empty_input_and_unknown_backend() -> None:
    assert batched_nms(np.zeros((0, 4)), [], [], 0.5).tolist() == []
    with pytest.raises(ValueError, match="unknown NMS backend 'torch'"):
        batched_nms([[0, 0, 1, 1]], [1.0], [0], 0.5, backend="torch")


def test_box_iou_and_nms_numpy_max_keep() -> None:
    assert box_iou([[0, 0, 2, 2]], [[0, 0, 2, 2], [2, 2, 3, 3]]).tolist() == [[1.0, 0.0]]
    boxes, scores, _ = random_boxes(100, 1, seed=9)
    full = nms_numpy(boxes, scores, 0.5)
    assert nms_numpy(boxes, scores, 0.5, max_keep=5).tolist() == full[:5].tolist()


def test_postprocess_filters_by_conf_nms_and_max_det() -> None:
    boxes, scores, labels = random_boxes(2000, 10, seed=5, clustered=True)
    keep = postprocess(boxes, scores, labels, conf=0.3, iou=0.6, max_det=40)
    strict = np.flatnonzero(scores > 0.3)
    expected = strict[reference_nms(boxes[strict], scores[strict], labels[strict], 0.6)][:40]
    assert keep.tolist() == expected.tolist()
    assert (np.diff(scores[keep]) <= 0).all()


def _duplicates(n: int, objects: int, classes: int, seed: int) -> tuple:
    """Near-copies of a few boxes, as a detector gives around each object: most suppress
    each other, so few survive NMS."""
    rng = np.random.default_rng(seed)
    base = np.concatenate([rng.uniform(0, 500, (objects, 2)), rng.uniform(40, 90, (objects, 2))], 1)
    base[:, 2:] += base[:, :2]
    boxes = base[rng.integers(0, objects, n)] + rng.normal(0, 1.5, (n, 4))
    return boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize("max_det", [1, 7, 100, 300, 5000])
@pytest.mark.parametrize("kind", ["spread", "clustered", "tied", "duplicates"])
def test_postprocess_stops_suppressing_once_max_det_is_kept_and_agrees(
    max_det: int, kind: str
) -> None:
    """Above SPLIT_ABOVE candidates, postprocess runs NMS on the best-ranked candidates
    only, growing them until max_det boxes survive: the same boxes in the same order as
    NMS over every candidate (near-duplicates keep few, so the first slice must grow;
    rounded scores tie across the slice's edge)."""
    if kind == "duplicates":
        boxes, scores, labels = _duplicates(6000, 60, 5, seed=max_det)
    else:
        boxes, scores, labels = random_boxes(6000, 5, seed=max_det, clustered=kind != "spread")
    if kind == "tied":
        scores = np.round(scores, 2).astype(np.float32)
    keep = postprocess(boxes, scores, labels, conf=0.001, iou=0.6, max_det=max_det)
    strict = np.flatnonzero(scores > 0.001)
    assert len(strict) > SPLIT_ABOVE
    full = batched_nms(boxes[strict], scores[strict], labels[strict], 0.6, backend="numpy")
    assert keep.tolist() == strict[full][:max_det].tolist()


def test_postprocess_without_nms_and_with_a_candidate_cap() -> None:
    boxes = np.tile([[0.0, 0, 10, 10]], (6, 1))
    scores = np.array([0.1, 0.9, 0.001, 0.5, 0.7, 0.3], np.float32)
    labels = np.zeros(6, np.int64)
    # e2e models already ran NMS: iou=None keeps overlapping boxes, sorted by score.
    assert postprocess(boxes, scores, labels, iou=None).tolist() == [1, 4, 3, 5, 0]
    # conf is strict: a score equal to it is dropped (as in the Ultralytics validator).
    assert 2 not in postprocess(boxes, scores, labels, conf=0.001, iou=None).tolist()
    # Only the best max_candidates enter NMS.
    assert postprocess(boxes, scores, labels, iou=None, max_candidates=2).tolist() == [1, 4]


def test_select_candidates_multi_label_and_best_class() -> None:
    boxes = np.arange(12, dtype=np.float32).reshape(3, 4)
    cls = np.array([[0.9, 0.5, 0.0], [0.2, 0.3, 0.1], [0.6, 0.6, 0.6]], np.float32)
    obj = np.array([0.5, 0.001, 1.0], np.float32)
    b, s, lab = select_candidates(boxes, cls, 0.05, multi_label=True, objectness=obj)
    assert lab.tolist() == [0, 1, 0, 1, 2]
    assert s.tolist() == pytest.approx([0.45, 0.25, 0.6, 0.6, 0.6])
    assert b[:, 0].tolist() == [0, 0, 8, 8, 8]
    b, s, lab = select_candidates(boxes, cls, 0.05, multi_label=False, objectness=obj)
    assert (lab.tolist(), s.tolist()) == ([0, 0], pytest.approx([0.45, 0.6]))
    b, s, lab = select_candidates(boxes, cls, 0.25, multi_label=False)
    assert (lab.tolist(), s.tolist()) == ([0, 1, 0], pytest.approx([0.9, 0.3, 0.6]))
