"""Label-free consistency and per-image behaviour change.

The vectorised engine is checked against a plain per-detection reference on random
data, and on hand-built cases whose answers are worked out in the comments. The
flip test uses a synthetic predictor that is exactly flip-equivariant by construction.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from brittle.errors import ConfigError, ShapeError
from brittle.metrics.consistency import (
    BehaviourChange,
    Consistency,
    align_detections,
    behaviour_change,
    consistency,
    detection_f1,
)
from brittle.metrics.matching import bbox_iou
from brittle.perturbations import get_perturbation, rng_for, transform_boxes
from brittle.types import Detections, GroundTruth

# ------------------------------------------------------------------------ reference


def _iou(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.float64]:
    """IoU of xyxy boxes, through the same xywh numbers the engine uses."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    aw = np.concatenate([a64[:, :2], a64[:, 2:] - a64[:, :2]], axis=1)
    bw = np.concatenate([b64[:, :2], b64[:, 2:] - b64[:, :2]], axis=1)
    return bbox_iou(aw, bw)


def _greedy(
    ref_boxes: NDArray[Any],
    ref_labels: NDArray[Any],
    boxes: NDArray[Any],
    scores: NDArray[Any],
    labels: NDArray[Any],
    thr: float,
    class_aware: bool,
) -> tuple[list[bool], list[bool]]:
    """One detection at a time, in descending score (stable), COCO's tie rule (later wins)."""
    ref_taken = [False] * len(ref_boxes)
    det_taken = [False] * len(boxes)
    ious = _iou(boxes, ref_boxes) if len(boxes) and len(ref_boxes) else None
    for j in np.argsort(-np.asarray(scores, np.float64), kind="stable").tolist():
        best, m = thr, -1
        for i in range(len(ref_boxes)):
            if ref_taken[i] or (class_aware and ref_labels[i] != labels[j]):
                continue
            assert ious is not None
            if ious[j, i] < best:
                continue
            best, m = ious[j, i], i
        if m >= 0:
            ref_taken[m] = det_taken[j] = True
    return ref_taken, det_taken


def reference(
    clean: Sequence[Detections], pert: Sequence[Detections], conf: float, thr: float
) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {k: [] for k in ("nc", "np", "matched", "changed")}
    for c, p in zip(clean, pert, strict=True):
        c = c.select(c.scores >= conf)
        p = p.select(p.scores >= conf)
        cm, pm = _greedy(c.boxes, c.labels, p.boxes, p.scores, p.labels, thr, True)
        lc = c.select(~np.array(cm, bool))
        lp = p.select(~np.array(pm, bool))
        _, ch = _greedy(lc.boxes, lc.labels, lp.boxes, lp.scores, lp.labels, thr, False)
        out["nc"].append(len(c))
        out["np"].append(len(p))
        out["matched"].append(sum(pm))
        out["changed"].append(sum(ch))
    return out


def random_pairs(
    rng: np.random.Generator, n_images: int, spread: float = 200
) -> tuple[list[Detections], list[Detections], list[GroundTruth]]:
    """Clean detections and a perturbed version: jitter, class flips, drops, additions.

    A small ``spread`` crowds the boxes, so that boxes of one class overlap and the
    order of the greedy matching decides the counts.
    """
    clean, pert, gts = [], [], []
    for _ in range(n_images):
        n = int(rng.integers(0, 12))
        xy = rng.uniform(0, spread, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        if n > 2:  # exact duplicates exercise the tie rules
            boxes[1] = boxes[0]
        labels = rng.integers(0, 3, n)
        scores = np.round(rng.uniform(0.1, 1, n), 1)  # equal scores: stable order matters
        clean.append(Detections(boxes, scores, labels))
        jitter = rng.normal(0, 0.15, (n, 4)) * np.concatenate([wh, wh], axis=1)
        pl = np.where(rng.uniform(size=n) < 0.15, rng.integers(0, 3, n), labels)
        keep = rng.uniform(size=n) > 0.15
        extra = int(rng.integers(0, 4))
        exy = rng.uniform(0, spread, (extra, 2))
        eb = np.concatenate([exy, exy + rng.uniform(5, 60, (extra, 2))], axis=1)
        pert.append(
            Detections(
                np.concatenate([(boxes + jitter)[keep], eb]),
                np.concatenate(
                    [np.round(rng.uniform(0.1, 1, n), 1)[keep], rng.uniform(0, 1, extra)]
                ),
                np.concatenate([pl[keep], rng.integers(0, 3, extra)]),
            )
        )
        g = rng.uniform(size=n) < 0.7
        gts.append(GroundTruth(boxes[g] + rng.normal(0, 2, (int(g.sum()), 4)), labels[g]))
    return clean, pert, gts


@pytest.mark.parametrize("spread", [200, 15])
def test_engine_equals_the_per_detection_reference(spread: float) -> None:
    rng = np.random.default_rng(7)
    clean, pert, _ = random_pairs(rng, 300, spread)
    for conf, thr in [(0.3, 0.5), (0.0, 0.5), (0.5, 0.3), (0.3, 0.75)]:
        ref = reference(clean, pert, conf, thr)
        b = behaviour_change(clean, pert, conf=conf, iou=thr)
        c = consistency(clean, pert, conf=conf, iou=thr)
        assert c.n_clean.tolist() == ref["nc"]
        assert c.n_perturbed.tolist() == ref["np"]
        assert c.n_matched.tolist() == ref["matched"]
        assert b.changed.tolist() == ref["changed"]
        assert b.consistency.n_matched.tolist() == ref["matched"]
        assert b.lost.tolist() == [
            a - m - ch for a, m, ch in zip(ref["nc"], ref["matched"], ref["changed"], strict=True)
        ]
        assert b.gained.tolist() == [
            a - m - ch for a, m, ch in zip(ref["np"], ref["matched"], ref["changed"], strict=True)
        ]
        # The random data must actually exercise every bucket.
        assert min(c.n_matched.sum(), b.changed.sum(), b.lost.sum(), b.gained.sum()) > 0


@pytest.mark.parametrize("spread", [200, 15])
def test_detection_f1_equals_the_reference(spread: float) -> None:
    rng = np.random.default_rng(3)
    clean, _, gts = random_pairs(rng, 200, spread)
    f1 = detection_f1(clean, gts, conf=0.3)
    for i, (d, g) in enumerate(zip(clean, gts, strict=True)):
        d = d.select(d.scores >= 0.3)
        _, tp = _greedy(g.boxes, g.labels, d.boxes, d.scores, d.labels, 0.5, True)
        total = len(d) + len(g)
        assert f1[i] == (2 * sum(tp) / total if total else 1.0)


# ------------------------------------------------------------------- consistency


def test_identical_predictions_are_exactly_consistent() -> None:
    rng = np.random.default_rng(1)
    clean, _, _ = random_pairs(rng, 100)
    c = consistency(clean, clean)
    assert c.per_image.tolist() == [1.0] * 100
    assert c.mean == 1.0
    assert c.affected_fraction == 0.0
    assert c.n_clean.sum() > 100  # not a vacuous pass on empty images


def bright_rectangles(image: NDArray[np.uint8]) -> Detections:
    """A synthetic detector: each connected patch of one saturated channel is an object.

    Class = the channel, score = the patch's mean intensity; box = its pixel extent as
    xyxy edges. Everything is computed from per-pixel tests and patch statistics, so
    the detector is exactly equivariant under flips and 90-degree rotations.
    """
    boxes, scores, labels = [], [], []
    for k in range(3):
        mask = (image[..., k] >= 128).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        for j in range(1, n):
            x, y, w, h, _ = stats[j]
            boxes.append([x, y, x + w, y + h])
            scores.append(float(image[..., k][comp == j].mean()) / 255)
            labels.append(k)
    return Detections(np.reshape(boxes, (-1, 4)), scores, labels)


def scene(rng: np.random.Generator, height: int, width: int) -> NDArray[np.uint8]:
    """Dim noise with a few saturated rectangles, placed off-centre (so a flip moves them)."""
    img = rng.integers(0, 100, (height, width, 3)).astype(np.uint8)
    for _ in range(6):
        h, w = int(rng.integers(6, 30)), int(rng.integers(6, 40))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width // 2))
        k = int(rng.integers(0, 3))
        img[y : y + h, x : x + w] = 0
        img[y : y + h, x : x + w, k] = rng.integers(90, 256)  # some below 128: not objects
    return img


@pytest.mark.parametrize("name", ["hflip", "vflip", "rotate90"])
def test_flip_equivariant_model_is_exactly_consistent(name: str) -> None:
    p = get_perturbation(name)
    rng = np.random.default_rng(5)
    images = [scene(rng, 96, 128) for _ in range(8)]
    clean, pert, params = [], [], []
    for i, img in enumerate(images):
        r = rng_for(0, name, 1, str(i))
        prm = p.params(1, *img.shape[:2], r)
        pert.append(bright_rectangles(p.apply(img, prm, r)))
        clean.append(bright_rectangles(img))
        params.append(prm)
    assert sum(len(d) for d in clean) >= 16

    c = consistency(clean, pert, perturbation=name, params=params, sizes=(96, 128))
    assert c.per_image.tolist() == [1.0] * len(images)
    # The same through transform_boxes by hand, passing aligned predictions.
    aligned = []
    for d, prm in zip(clean, params, strict=True):
        boxes, kept = transform_boxes(p, d.boxes, prm, 96, 128)
        assert kept.all()
        aligned.append(Detections(boxes, d.scores[kept], d.labels[kept]))
        assert np.array_equal(align_detections(d, p, prm, 96, 128).boxes, boxes)
    assert consistency(aligned, pert).per_image.tolist() == [1.0] * len(images)
    # Without moving the clean boxes the comparison is meaningless: far from 1.
    assert consistency(clean, pert).mean < 0.5


def test_objects_moved_out_of_the_image_are_dropped_not_lost() -> None:
    img = np.zeros((60, 100, 3), np.uint8)
    img[10:30, 5:20, 0] = 200  # leaves the image entirely with a 30 px shift left
    img[10:30, 50:80, 1] = 250  # stays
    img[40:50, 32:52, 2] = 220  # 2 px stay: under a quarter visible, so dropped
    p = get_perturbation("translate")
    prm = {"shift": [-50, 0]}
    clean = [bright_rectangles(img)]
    pert = [bright_rectangles(p.apply(img, prm, np.random.default_rng(0)))]
    assert len(clean[0]) == 3
    assert len(pert[0]) == 2  # the sliver is still seen: a gained detection
    b = behaviour_change(clean, pert, perturbation=p, params=prm, sizes=(60, 100))
    assert b.consistency.n_clean.tolist() == [1]
    assert b.lost.tolist() == [0]
    assert b.gained.tolist() == [1]
    assert b.consistency.n_matched.tolist() == [1]


@pytest.mark.parametrize("name", ["rotate", "translate", "hflip"])
def test_each_image_moves_with_its_own_params_and_size(name: str) -> None:
    p = get_perturbation(name)
    rng = np.random.default_rng(11)
    clean, pert, _ = random_pairs(rng, 40, spread=60)
    sizes = [(100, 120) if i % 3 else (80, 90) for i in range(40)]
    params = [p.params(4, h, w, rng_for(0, name, 4, str(i))) for i, (h, w) in enumerate(sizes)]
    aligned = [
        align_detections(d.select(d.scores >= 0.3), p, prm, h, w)
        for d, prm, (h, w) in zip(clean, params, sizes, strict=True)
    ]
    ours = consistency(clean, pert, perturbation=p, params=params, sizes=sizes)
    by_hand = consistency(aligned, pert)
    assert ours.n_clean.tolist() == by_hand.n_clean.tolist()
    assert ours.n_matched.tolist() == by_hand.n_matched.tolist()
    # Each image's own parameters matter: shifted by one image, the answer changes.
    wrong = consistency(
        clean, pert, perturbation=p, params=params[1:] + params[:1], sizes=sizes[1:] + sizes[:1]
    )
    assert wrong.per_image.tolist() != ours.per_image.tolist()


def test_geometric_perturbation_needs_params() -> None:
    d = [Detections([[0, 0, 5, 5]], [0.9], [0])]
    with pytest.raises(ConfigError, match="hflip is geometric: pass params="):
        consistency(d, d, perturbation="hflip")
    with pytest.raises(ShapeError, match="one entry per image"):
        consistency(d, d, perturbation="hflip", params=[{}, {}], sizes=(10, 10))
    # A photometric perturbation moves nothing and needs nothing.
    assert consistency(d, d, perturbation="gaussian_noise").mean == 1.0


def test_consistency_falls_as_boxes_drift() -> None:
    # Boxes far apart, each shifted right by f * u_j of its width. A pure horizontal
    # shift by a fraction a of the width has IoU (1 - a) / (1 + a), which is >= 0.5 iff
    # a <= 1/3: so exactly the boxes with f * u_j <= 1/3 still match.
    rng = np.random.default_rng(2)
    n = 40
    wh = rng.uniform(10, 50, (n, 2))
    xy = np.stack([np.arange(n) * 200.0, np.zeros(n)], axis=1)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    u = rng.uniform(0.5, 1.5, n)
    clean = [Detections(boxes, np.full(n, 0.9), np.zeros(n))]
    values = []
    for f in np.linspace(0, 0.7, 15):
        dx = (f * u * wh[:, 0])[:, None] * np.array([[1, 0, 1, 0]])
        c = consistency(clean, [Detections(boxes + dx, np.full(n, 0.9), np.zeros(n))])
        expected = 2 * int(np.sum(f * u <= 1 / 3)) / (2 * n)
        assert c.per_image[0] == pytest.approx(expected)
        values.append(float(c.per_image[0]))
    assert values[0] == 1.0
    assert values[-1] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert len(set(values)) >= 6  # a gradual fall, not a single step


def test_iou_threshold_is_inclusive() -> None:
    clean = [Detections([[0, 0, 10, 10]], [0.9], [0])]
    half = [Detections([[0, 0, 20, 10]], [0.9], [0])]  # IoU 100 / 200 = 0.5 exactly
    assert consistency(clean, half).per_image.tolist() == [1.0]
    less = [Detections([[0, 0, 20.01, 10]], [0.9], [0])]
    assert consistency(clean, less).per_image.tolist() == [0.0]


def test_class_flip_is_a_mismatch() -> None:
    clean = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 1])]
    flipped = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 2])]
    assert consistency(clean, flipped).per_image.tolist() == [0.5]  # 2 * 1 / (2 + 2)
    all_flipped = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [1, 0])]
    assert consistency(clean, all_flipped).per_image.tolist() == [0.0]


def test_empty_and_one_sided_images() -> None:
    e = Detections.empty()
    one = Detections([[0, 0, 10, 10]], [0.9], [0])
    low = Detections([[0, 0, 10, 10]], [0.1], [0])  # below the operating confidence
    c = consistency([e, e, one, e, low], [e, low, e, one, e])
    assert c.per_image.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert c.n_clean.tolist() == [0, 0, 1, 0, 0]
    empty = consistency([], [])
    assert len(empty) == 0
    assert np.isnan(empty.mean)
    assert np.isnan(empty.affected_fraction)


def test_operating_confidence() -> None:
    clean = [Detections([[0, 0, 10, 10], [20, 0, 30, 10]], [0.3, 0.29], [0, 0])]
    pert = [Detections([[0, 0, 10, 10]], [0.3], [0])]
    c = consistency(clean, pert)  # 0.3 is kept (>=), 0.29 is not
    assert c.n_clean.tolist() == [1]
    assert c.per_image.tolist() == [1.0]
    assert consistency(clean, pert, conf=0.2).per_image.tolist() == [2 * 1 / 3]
    assert consistency(clean, pert, conf=0.5).n_perturbed.tolist() == [0]


def test_matching_is_one_to_one_and_greedy_by_perturbed_score() -> None:
    # Clean A = [0,0,10,10], B = [4,0,14,10]. Perturbed p1 (0.9) = [2,0,12,10] has IoU
    # 80/120 = 0.667 with both (the later, B, wins the tie); p2 (0.8) = [0,0,10,10] has
    # IoU 1 with A, 60/140 = 0.43 with B. Greedy: p1 takes B, p2 takes A: 2 matches.
    clean = [Detections([[0, 0, 10, 10], [4, 0, 14, 10]], [0.9, 0.9], [0, 0])]
    pert = [Detections([[2, 0, 12, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert consistency(clean, pert).n_matched.tolist() == [2]
    # Now p1 = [1,0,11,10]: IoU 90/110 = 0.82 with A, 70/130 = 0.54 with B, so p1 takes
    # A and p2 (IoU 1 with A, 0.43 with B) finds nothing left: greedy gives 1 match where
    # an optimal assignment (p1-B, p2-A) would give 2. Documented behaviour.
    pert = [Detections([[1, 0, 11, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert consistency(clean, pert).n_matched.tolist() == [1]
    # Swap the scores and p2 goes first: it takes A, p1 takes B.
    pert = [Detections([[1, 0, 11, 10], [0, 0, 10, 10]], [0.7, 0.8], [0, 0])]
    assert consistency(clean, pert).n_matched.tolist() == [2]
    # Two perturbed boxes on one clean box: one match only.
    dup = [Detections([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    c = consistency([Detections([[0, 0, 10, 10]], [0.9], [0])], dup)
    assert c.n_matched.tolist() == [1]
    assert c.per_image.tolist() == [2 / 3]


def test_affected_fraction_on_a_hand_built_case() -> None:
    # Consistencies: 1.0, 2*3/(4+4) = 0.75 (not below 0.75), 2*2/(3+3) = 0.667, 0.0.
    c = Consistency(n_clean=[2, 4, 3, 1], n_perturbed=[2, 4, 3, 0], n_matched=[2, 3, 2, 0])
    assert c.per_image.tolist() == [1.0, 0.75, 2 / 3, 0.0]
    assert c.affected.tolist() == [False, False, True, True]
    assert c.affected_fraction == 0.5
    strict = Consistency(c.n_clean, c.n_perturbed, c.n_matched, strictness=0.8)
    assert strict.affected_fraction == 0.75
    # The same from predictions.
    box = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]]
    far = [[0, 100, 10, 110]]
    clean = [
        Detections(box[:2], [0.9] * 2, [0] * 2),
        Detections(box, [0.9] * 4, [0] * 4),
        Detections(box[:3], [0.9] * 3, [0] * 3),
        Detections(box[:1], [0.9], [0]),
    ]
    pert = [
        clean[0],
        Detections(box[:3] + far, [0.9] * 4, [0] * 4),
        Detections(box[:2] + far, [0.9] * 3, [0] * 3),
        Detections.empty(),
    ]
    got = consistency(clean, pert)
    assert got.per_image.tolist() == c.per_image.tolist()
    assert got.affected_fraction == 0.5
    assert got.subset([2, 2, 0]).per_image.tolist() == [2 / 3, 2 / 3, 1.0]


def test_options_and_inputs_are_checked() -> None:
    d = [Detections.empty()]
    with pytest.raises(ConfigError, match="conf must be in"):
        consistency(d, d, conf=1.5)
    with pytest.raises(ConfigError, match=r"iou must be in \(0, 1\]"):
        consistency(d, d, iou=0.0)
    with pytest.raises(ConfigError, match="strictness"):
        consistency(d, d, strictness=-0.1)
    with pytest.raises(ShapeError, match="clean=1, perturbed=2"):
        consistency(d, d + d)
    with pytest.raises(ConfigError, match=r"perturbed\[0\]: negative label -1"):
        consistency(d, [Detections([[0, 0, 1, 1]], [0.9], [-1])])
    with pytest.raises(ShapeError, match="n_matched exceeds"):
        Consistency([1], [1], [2])


# -------------------------------------------------------------- behaviour change


def hand_case() -> tuple[list[Detections], list[Detections], list[GroundTruth | None]]:
    # Clean: car A, person B, dog C (C has no object). Perturbed: car near A (IoU
    # 90/110 = 0.82), a cat on B (class flip), something new at D, and a low-score
    # box below the operating confidence.
    clean = [
        Detections([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.9, 0.8, 0.7], [0, 1, 2])
    ]
    pert = [
        Detections(
            [[1, 0, 11, 10], [20, 0, 30, 10], [60, 0, 70, 10], [80, 0, 90, 10]],
            [0.9, 0.8, 0.6, 0.2],
            [0, 3, 2, 1],
        )
    ]
    gts: list[GroundTruth | None] = [GroundTruth([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1])]
    return clean, pert, gts


def test_behaviour_change_counts_on_a_hand_built_case() -> None:
    clean, pert, gts = hand_case()
    b = behaviour_change(clean, pert, gts)
    assert b.consistency.n_clean.tolist() == [3]
    assert b.consistency.n_perturbed.tolist() == [3]
    assert b.consistency.n_matched.tolist() == [1]
    assert b.changed.tolist() == [1]
    assert b.lost.tolist() == [1]
    assert b.gained.tolist() == [1]
    assert b.consistency.per_image.tolist() == [2 / 6]
    assert b.score.tolist() == [1 - 2 / 6]
    # F1 vs ground truth. Clean: TP car, person; FP dog -> 2*2 / (3 + 2) = 0.8.
    # Perturbed: TP car (IoU 0.82); FP cat, new -> 2*1 / (3 + 2) = 0.4.
    assert b.f1_clean.tolist() == [0.8]
    assert b.f1_perturbed.tolist() == [0.4]
    assert b.f1_drop.tolist() == pytest.approx([0.4])


def test_changed_needs_the_iou_too() -> None:
    # A class flip that also moves the box away is a loss and a gain, not a change.
    clean = [Detections([[0, 0, 10, 10]], [0.9], [0])]
    moved = [Detections([[6, 0, 16, 10]], [0.9], [1])]  # IoU 40/160 = 0.25
    b = behaviour_change(clean, moved)
    assert (b.changed.tolist(), b.lost.tolist(), b.gained.tolist()) == ([0], [1], [1])
    near = [Detections([[1, 0, 11, 10]], [0.9], [1])]
    b = behaviour_change(clean, near)
    assert (b.changed.tolist(), b.lost.tolist(), b.gained.tolist()) == ([1], [0], [0])


def test_f1_without_ground_truth_is_nan() -> None:
    clean, pert, gts = hand_case()
    b = behaviour_change(clean * 2, pert * 2, [gts[0], None])
    assert b.f1_clean[0] == 0.8
    assert np.isnan(b.f1_clean[1])
    assert np.isnan(b.f1_drop[1])
    b = behaviour_change(clean, pert)
    assert np.isnan(b.f1_drop).all()
    assert b.lost.tolist() == [1]


def test_f1_is_measured_in_the_perturbed_frame() -> None:
    # The model finds both objects on both images, so neither F1 drops; the ground truth
    # has to move with the flip for the perturbed F1 to be 1.
    img = np.zeros((40, 80, 3), np.uint8)
    img[5:15, 5:25, 0] = 200
    img[20:35, 10:20, 1] = 200
    gt = GroundTruth([[5, 5, 25, 15], [10, 20, 20, 35]], [0, 1])
    p = get_perturbation("hflip")
    clean = [bright_rectangles(img)]
    pert = [bright_rectangles(p.apply(img, {}, np.random.default_rng(0)))]
    b = behaviour_change(clean, pert, [gt], perturbation=p, params={}, sizes=(40, 80))
    assert b.f1_clean.tolist() == [1.0]
    assert b.f1_perturbed.tolist() == [1.0]
    assert b.consistency.per_image.tolist() == [1.0]


def test_detection_f1_crowd_regions_absorb_but_do_not_count() -> None:
    gt = GroundTruth([[0, 0, 10, 10], [50, 0, 100, 50]], [0, 0], iscrowd=[False, True])
    preds = Detections(
        [[0, 0, 10, 10], [60, 10, 70, 20], [70, 10, 80, 20], [200, 0, 210, 10]],
        [0.9, 0.8, 0.7, 0.6],
        [0, 0, 0, 0],
    )
    # TP the first; two inside the crowd region: ignored; the last: FP.
    # F1 = 2 * 1 / (2 counted predictions + 1 object) = 2/3.
    assert detection_f1([preds], [gt]).tolist() == [2 / 3]
    assert detection_f1([Detections.empty()], [GroundTruth.empty()]).tolist() == [1.0]


def test_rank_orders_by_score_then_f1_drop_then_events() -> None:
    c = Consistency(
        n_clean=[2, 2, 2, 2, 2, 0], n_perturbed=[2, 2, 2, 2, 2, 0], n_matched=[2, 1, 1, 0, 1, 0]
    )
    b = BehaviourChange(
        c,
        changed=[0, 1, 0, 0, 0, 0],
        lost=[0, 0, 1, 2, 1, 0],
        gained=[0, 0, 1, 2, 1, 0],
        f1_clean=[1.0, 1.0, 1.0, 1.0, np.nan, 1.0],
        f1_perturbed=[1.0, 0.5, 0.8, 0.0, np.nan, 1.0],
    )
    # Scores: 0, .5, .5, 1, .5, 0. Among the .5s: F1 drops .5, .2, nan (last).
    # Among the 0s: the same events (0), so image order.
    assert b.rank().tolist() == [3, 1, 2, 4, 0, 5]
    tie = BehaviourChange(
        Consistency([2, 2], [2, 2], [1, 1]),
        changed=[0, 1],
        lost=[1, 0],
        gained=[1, 0],
        f1_clean=[np.nan] * 2,
        f1_perturbed=[np.nan] * 2,
    )
    assert tie.rank().tolist() == [0, 1]  # 2 events beat 1
    sub = b.subset([3, 0])
    assert sub.lost.tolist() == [2, 0]
    assert sub.rank().tolist() == [0, 1]


def test_behaviour_change_checks_its_bookkeeping() -> None:
    c = Consistency([3], [3], [1])
    with pytest.raises(ShapeError, match="matched \\+ changed \\+ lost"):
        BehaviourChange(c, changed=[1], lost=[0], gained=[1], f1_clean=[1.0], f1_perturbed=[1.0])
    with pytest.raises(ShapeError, match="one row per image"):
        BehaviourChange(c, changed=[1, 0], lost=[1], gained=[1], f1_clean=[1.0], f1_perturbed=[1.0])
