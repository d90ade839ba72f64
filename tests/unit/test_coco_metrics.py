"""brittle's COCO engine against pycocotools, array for array.

Every comparison runs pycocotools' COCOeval(iouType="bbox") on the COCO dicts written
by brittle.coco_format and requires the same precision, recall and score arrays, the
same 12 stats and the same per-image matches. On x86-64 equality is exact; elsewhere
the C compiler may fuse multiply-adds in pycocotools' IoU, so 1e-9 is allowed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from brittle.coco_format import dets_to_coco, gt_to_coco, xyxy_to_xywh
from brittle.errors import ConfigError, DatasetError, ModelError, ShapeError, UnknownNameError
from brittle.metrics.coco import (
    COCO_STAT_NAMES,
    CocoEvaluation,
    accumulate,
    evaluate,
    evaluate_coco,
    evaluate_records,
)
from brittle.metrics.matching import MatchRecords, bbox_iou, match_image, match_images
from brittle.types import Detections, GroundTruth

EXACT = platform.machine().lower() in {"x86_64", "amd64"}


def assert_same(ours: NDArray[Any], theirs: NDArray[Any], what: str) -> None:
    theirs = np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, what
    if EXACT:
        bad = np.argwhere(ours != theirs)
        assert not len(bad), f"{what}: {len(bad)} entries differ, first at {bad[0].tolist()}"
    else:
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9, err_msg=what)


# ---------------------------------------------------------------------------- reference


def run_pycocotools(
    gts: Sequence[GroundTruth],
    dets: Sequence[Detections],
    num_classes: int,
    *,
    classes: Sequence[int] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    iou_thresholds: Sequence[float] | None = None,
) -> COCOeval:
    cls = list(range(num_classes)) if classes is None else sorted(classes)
    names = [f"c{i}" for i in range(num_classes)]
    gt_dict = gt_to_coco(gts, names, classes=cls)
    results = dets_to_coco(dets, classes=cls)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": gt_dict["images"],
                "categories": gt_dict["categories"],
                "annotations": [],
            }
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.catIds = [c + 1 for c in cls]
        ev.params.maxDets = list(max_dets)
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, np.float64)
        ev.evaluate()
        ev.accumulate()
        if list(max_dets) == [1, 10, 100]:
            ev.summarize()
    return ev


def expected_stats(ref: COCOeval) -> NDArray[np.float64]:
    """The 12 stats from pycocotools' arrays, AP always at the largest maxDets."""
    p, r = ref.eval["precision"], ref.eval["recall"]
    thr = ref.params.iouThrs

    def mean(s: NDArray[np.float64]) -> float:
        v = s[s > -1]
        return float(np.mean(v)) if v.size else -1.0

    def at(t: float) -> NDArray[np.float64]:
        return p[np.flatnonzero(thr == t)]

    return np.array(
        [mean(p[:, :, :, 0, 2]), mean(at(0.5)[:, :, :, 0, 2]), mean(at(0.75)[:, :, :, 0, 2])]
        + [mean(p[:, :, :, a, 2]) for a in (1, 2, 3)]
        + [mean(r[:, :, 0, m]) for m in (0, 1, 2)]
        + [mean(r[:, :, a, 2]) for a in (1, 2, 3)]
    )


def compare(
    gts: Sequence[GroundTruth],
    dets: Sequence[Detections],
    num_classes: int,
    **kwargs: Any,
) -> tuple[CocoEvaluation, COCOeval]:
    ours = evaluate(gts, dets, num_classes, **kwargs)
    ref_kwargs = dict(kwargs)
    if "iou_thresholds" in ref_kwargs:
        ref_kwargs["iou_thresholds"] = list(ref_kwargs["iou_thresholds"])
    ref = run_pycocotools(gts, dets, num_classes, **ref_kwargs)
    assert_same(ours.precision, ref.eval["precision"], "precision")
    assert_same(ours.recall, ref.eval["recall"], "recall")
    assert_same(ours.scores, ref.eval["scores"], "scores")
    if tuple(kwargs.get("max_dets", (1, 10, 100))) == (1, 10, 100):
        assert_same(ours.stats, np.asarray(ref.stats), "stats")
    assert_same(ours.stats, expected_stats(ref), "stats from arrays")
    return ours, ref


# ---------------------------------------------------------------------------- data


def synthetic(
    seed: int,
    *,
    n_images: int = 40,
    num_classes: int = 7,
    max_gt: int = 12,
    max_fp: int = 10,
    score_levels: int | None = None,
    crowd_rate: float = 0.05,
) -> tuple[list[GroundTruth], list[Detections]]:
    """Boxes from 4 to 400 px a side (all three COCO size ranges), detections jittered
    from ground truth (some relabelled, some duplicated) plus false positives."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n_images):
        ng = int(rng.integers(0, max_gt + 1))
        size = np.exp(rng.uniform(np.log(4), np.log(400), (ng, 2)))
        xy = rng.uniform(0, 600, (ng, 2))
        boxes = np.concatenate([xy, xy + size], 1)
        labels = rng.integers(0, num_classes, ng)
        crowd = rng.random(ng) < crowd_rate
        # COCO areas are polygon areas: smaller than the box, and sometimes not.
        areas = size.prod(1) * np.where(rng.random(ng) < 0.4, rng.uniform(0.4, 1.3, ng), 1.0)
        gts.append(GroundTruth(boxes, labels, crowd, areas))

        hit = rng.random(ng) < 0.8
        noise = rng.normal(0, 0.1, (int(hit.sum()), 4)) * size[hit][:, [0, 1, 0, 1]]
        jb = boxes[hit] + noise
        jl = np.where(rng.random(len(jb)) < 0.9, labels[hit], rng.integers(0, num_classes, len(jb)))
        dup = rng.random(len(jb)) < 0.25
        jb = np.concatenate([jb, jb[dup] + rng.normal(0, 1.5, (int(dup.sum()), 4))])
        jl = np.concatenate([jl, jl[dup]])
        nf = int(rng.integers(0, max_fp + 1))
        fs = np.exp(rng.uniform(np.log(4), np.log(400), (nf, 2)))
        fxy = rng.uniform(0, 600, (nf, 2))
        b = np.concatenate([jb, np.concatenate([fxy, fxy + fs], 1)])
        lab = np.concatenate([jl, rng.integers(0, num_classes, nf)])
        s = rng.random(len(b))
        if score_levels:
            s = np.round(s * score_levels) / score_levels
        perm = rng.permutation(len(b))
        dets.append(Detections(b[perm], s[perm], lab[perm]))
    return gts, dets


def grid(
    seed: int, n_images: int = 30, num_classes: int = 5
) -> tuple[list[GroundTruth], list[Detections]]:
    """Integer boxes on a coarse grid: IoU ties, IoUs exactly on thresholds, score ties,
    up to 150 detections per image and labels outside the evaluated classes."""
    rng = np.random.default_rng(seed)
    sides = np.array([8, 10, 20, 32, 40, 96, 100, 200])
    gts, dets = [], []
    for _ in range(n_images):
        ng = int(rng.integers(0, 14))
        xy = rng.integers(0, 8, (ng, 2)) * 10
        b = np.concatenate([xy, xy + rng.choice(sides, (ng, 2))], 1)
        gts.append(GroundTruth(b, rng.integers(0, 3, ng), rng.random(ng) < 0.15))
        nd = int(rng.integers(0, 150))
        xy = rng.integers(0, 8, (nd, 2)) * 10
        db = np.concatenate([xy, xy + rng.choice(sides, (nd, 2))], 1)
        dets.append(Detections(db, rng.integers(0, 5, nd) / 4, rng.integers(0, num_classes, nd)))
    return gts, dets


# ---------------------------------------------------------------------------- equality


@pytest.mark.parametrize("seed", range(5))
def test_random_data_matches_pycocotools(seed: int) -> None:
    gts, dets = synthetic(seed)
    ours, _ = compare(gts, dets, 7)
    assert ours.stat("map50") > 0.2  # the data is not degenerate


@pytest.mark.parametrize("seed", range(3))
def test_tied_scores_match_pycocotools(seed: int) -> None:
    gts, dets = synthetic(100 + seed, score_levels=3, max_fp=20)
    compare(gts, dets, 7)


@pytest.mark.parametrize("seed", range(4))
def test_integer_grid_matches_pycocotools(seed: int) -> None:
    gts, dets = grid(seed)
    # labels 3 and 4 are not evaluated; class 2 has ground truth, so does 0, not 4
    compare(gts, dets, 5, classes=[0, 2])
    compare(gts, dets, 5, classes=[4, 1, 0])


def test_many_classes() -> None:
    gts, dets = synthetic(7, n_images=60, num_classes=40, max_gt=20, max_fp=30)
    ours, _ = compare(gts, dets, 40)
    assert len(ours.classes) == 40


def test_more_than_100_detections_per_image_and_class() -> None:
    rng = np.random.default_rng(3)
    gt_boxes = np.array([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(30)])
    gts = [GroundTruth(gt_boxes, np.zeros(30, np.int64))]
    jitter = rng.normal(0, 1, (250, 4))
    boxes = gt_boxes[rng.integers(0, 30, 250)] + jitter
    dets = [Detections(boxes, rng.random(250), np.zeros(250, np.int64))]
    ours, _ = compare(gts, dets, 1)
    records = match_images(gts, dets, 1)
    assert len(records.det_index) == 100  # top 100 by score
    assert ours.stat("ar1") < ours.stat("ar10") < ours.stat("ar100")


def test_duplicate_detections_and_crowd_regions() -> None:
    gt = GroundTruth(
        boxes=[[0, 0, 50, 50], [100, 100, 300, 300], [0, 100, 40, 140]],
        labels=[0, 0, 0],
        iscrowd=[False, True, False],
    )
    same = [0, 0, 50, 50]
    det = Detections(
        boxes=[same, same, same, [110, 110, 200, 200], [120, 120, 250, 250], [0, 100, 40, 140]],
        scores=[0.9, 0.9, 0.8, 0.7, 0.95, 0.1],
        labels=[0] * 6,
    )
    compare([gt], [det], 1)
    rec = match_image(gt, det, classes=[0])
    order = rec.det_index.tolist()
    assert order == [4, 0, 1, 2, 3, 5]  # by score, ties in input order
    at_50 = dict(zip(order, rec.det_match[0, 0].tolist(), strict=True))
    assert [at_50[0], at_50[1], at_50[2]] == [0, -1, -1]  # duplicates are FPs
    assert [at_50[4], at_50[3]] == [1, 1]  # the crowd region absorbs both
    assert rec.det_ignore[0, 0, [order.index(3), order.index(4)]].all()
    assert rec.gt_match[0, 0, 1] == 3  # a crowd region keeps its last match


def test_gt_area_overrides_box_area() -> None:
    # A 40x40 box whose annotated area (say, a thin polygon) is small.
    gt = GroundTruth([[0, 0, 40, 40], [100, 0, 140, 40]], [0, 0], areas=[200.0, 1600.0])
    det = Detections([[0, 0, 40, 40], [100, 0, 140, 40]], [0.9, 0.8], [0, 0])
    ours, _ = compare([gt], [det], 1)
    # The first is small by annotation; its detection (box area 1600, medium) matches it
    # and so is ignored in "medium", not counted as a false positive there.
    assert ours.stat("map_small") == pytest.approx(1.0)
    assert ours.stat("map_medium") == pytest.approx(1.0)


@pytest.mark.parametrize(
    "case",
    [
        "images_without_gt",
        "images_without_dets",
        "no_detections_at_all",
        "no_gt_at_all",
        "no_images",
        "class_without_gt",
        "crowd_only_class",
    ],
)
def test_edge_cases_match_pycocotools(case: str) -> None:
    gts, dets = synthetic(11, n_images=20, num_classes=4)
    empty_gt, empty_det = GroundTruth.empty(), Detections.empty()
    if case == "images_without_gt":
        gts = [empty_gt if i % 3 == 0 else g for i, g in enumerate(gts)]
    elif case == "images_without_dets":
        dets = [empty_det if i % 2 == 0 else d for i, d in enumerate(dets)]
    elif case == "no_detections_at_all":
        dets = [empty_det] * len(gts)
    elif case == "no_gt_at_all":
        gts = [empty_gt] * len(dets)
    elif case == "no_images":
        gts, dets = [], []
    elif case == "class_without_gt":
        gts = [GroundTruth(g.boxes, np.minimum(g.labels, 2), g.iscrowd, g.areas) for g in gts]
    elif case == "crowd_only_class":
        gts = [GroundTruth(g.boxes, g.labels, g.iscrowd | (g.labels == 1), g.areas) for g in gts]
    if case in {"no_gt_at_all", "no_images"}:
        # pycocotools cannot take results on images it does not know; brittle's answer
        # is the one pycocotools gives whenever no class has ground truth: all -1.
        ev = evaluate(gts, dets, 4)
        assert (ev.precision == -1).all()
        assert (ev.recall == -1).all()
        assert (ev.stats == -1).all()
        assert ev.per_class_ap() == dict.fromkeys(range(4))
        return
    ours, _ = compare(gts, dets, 4)
    if case in {"class_without_gt", "crowd_only_class"}:
        missing = 3 if case == "class_without_gt" else 1
        assert ours.per_class_ap()[missing] is None
        assert ours.per_class_ap50()[missing] is None
        assert (ours.precision[:, :, missing] == -1).all()


def test_score_ties_are_broken_by_input_order() -> None:
    gt = GroundTruth([[0, 0, 10, 10]], [0])
    tp, fp = [0, 0, 10, 10], [50, 50, 60, 60]
    first = Detections([tp, fp], [0.5, 0.5], [0, 0])
    second = Detections([fp, tp], [0.5, 0.5], [0, 0])
    a, _ = compare([gt], [first], 1)
    b, _ = compare([gt], [second], 1)
    assert a.stat("map50") == pytest.approx(1.0)
    assert b.stat("map50") == pytest.approx(0.5)


def test_custom_max_dets_against_corrected_summary() -> None:
    gts, dets = synthetic(5, max_fp=30)
    ours, ref = compare(gts, dets, 7, max_dets=(1, 5, 20))
    assert ours.max_dets == (1, 5, 20)
    assert ours.stat("map50_95") > 0
    # pycocotools' summarize() looks AP@[.5:.95] up at maxDets=100, which is missing
    # here, and reports -1 (docs/metrics.md). If this changes, update the docs.
    with contextlib.redirect_stdout(io.StringIO()):
        ref.summarize()
    assert ref.stats[0] == -1
    assert_same(ours.stats[1:], np.asarray(ref.stats[1:]), "stats other than AP")


def test_max_dets_with_100_not_largest() -> None:
    # 300 detections on one image and class: maxDets 100 and 300 give different AP.
    rng = np.random.default_rng(4)
    gt_boxes = np.array([[12.0 * i, 0, 12.0 * i + 10, 10] for i in range(200)])
    boxes = gt_boxes[rng.permutation(200)[:150]] + rng.normal(0, 0.5, (150, 4))
    boxes = np.concatenate([boxes, rng.uniform(0, 2400, (150, 4))])
    gts = [GroundTruth(gt_boxes, np.zeros(200, np.int64))]
    dets = [Detections(boxes, rng.random(300), np.zeros(300, np.int64))]
    ours, ref = compare(gts, dets, 1, max_dets=(1, 100, 300))
    with contextlib.redirect_stdout(io.StringIO()):
        ref.summarize()
    p = ref.eval["precision"]
    # pycocotools' AP@[.5:.95] reads the maxDets=100 column, its AP50 the 300 one.
    assert ref.stats[0] == np.mean(p[:, :, :, 0, 1])
    assert ref.stats[1] == np.mean(p[0, :, :, 0, 2])
    assert ours.stats[0] == np.mean(p[:, :, :, 0, 2]) != ref.stats[0]


def test_custom_max_dets_are_sorted_like_pycocotools() -> None:
    gts, dets = synthetic(6)
    a = evaluate(gts, dets, 7, max_dets=(30, 3, 8))
    b = evaluate(gts, dets, 7, max_dets=(3, 8, 30))
    assert a.max_dets == (3, 8, 30)
    assert np.array_equal(a.precision, b.precision)
    compare(gts, dets, 7, max_dets=(3, 8, 30))


def test_custom_iou_thresholds() -> None:
    gts, dets = synthetic(8)
    ours, _ = compare(gts, dets, 7, iou_thresholds=[0.5, 0.75, 0.9, 1.0])
    assert ours.precision.shape[0] == 4
    only = evaluate(gts, dets, 7, iou_thresholds=[0.3])
    assert only.stat("map50") == -1  # looked up by exact value, as pycocotools does
    with pytest.raises(ConfigError, match=r"0\.5 is not one of"):
        only.per_class_ap50()


def test_threshold_one_matches_nearly_identical_boxes() -> None:
    # pycocotools caps a threshold of 1 at 1 - 1e-10: an IoU of 1 - 1e-11 still matches.
    gt = GroundTruth([[0, 0, 1000, 1000]], [0])
    det = Detections([[0, 0, 1000, 1000]], [0.9], [0])
    near = GroundTruth([[0, 0, 1000, 1000 + 1e-8]], [0])
    ours, _ = compare([gt, near], [det, det], 1, iou_thresholds=[0.5, 1.0])
    assert 0 < bbox_iou(xyxy_to_xywh(det.boxes), xyxy_to_xywh(near.boxes))[0, 0] < 1
    assert ours.recall[1, 0, 0, 2] == 1.0


def test_custom_area_ranges_and_recall_thresholds_via_accumulate() -> None:
    gts, dets = synthetic(16)
    areas = [[0.0, 1e10], [0.0, 500.0], [500.0, 5000.0]]
    rthr = np.linspace(0.0, 1.0, 11)
    records = match_images(gts, dets, 7, area_ranges=areas, max_dets=(2, 50))
    precision, recall, scores = accumulate(records, rec_thresholds=rthr)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = run_pycocotools(gts, dets, 7, max_dets=(2, 50))  # default areas: re-run below
        ref.params.areaRng = areas
        ref.params.areaRngLbl = ["all", "a", "b"]
        ref.params.recThrs = rthr
        ref.evaluate()
        ref.accumulate()
    assert_same(precision, ref.eval["precision"], "precision")
    assert_same(recall, ref.eval["recall"], "recall")
    assert_same(scores, ref.eval["scores"], "scores")
    with pytest.raises(ConfigError, match="12 COCO stats"):
        evaluate_records(records)


def test_per_class_ap_matches_pycocotools_arrays() -> None:
    gts, dets = synthetic(9)
    ours, ref = compare(gts, dets, 7)
    p = ref.eval["precision"]
    for k, c in enumerate(ours.classes):
        v = p[:, :, k, 0, 2]
        v50 = p[0, :, k, 0, 2]
        assert ours.per_class_ap()[c] == float(np.mean(v[v > -1]))
        assert ours.per_class_ap50()[c] == float(np.mean(v50[v50 > -1]))


def test_per_image_records_match_pycocotools_eval_imgs() -> None:
    gts, dets = grid(21, n_images=15)
    classes = [0, 1, 2]
    ref = run_pycocotools(gts, dets, 5, classes=classes)
    records = match_images(gts, dets, 5, classes=classes)
    # Map COCO ids back to (image, index) as gt_to_coco / loadRes number them.
    ann_of = [(i, j) for i, g in enumerate(gts) for j, c in enumerate(g.labels) if c in classes]
    det_of = [(i, j) for i, d in enumerate(dets) for j, c in enumerate(d.labels) if c in classes]
    n_img, n_area = len(gts), 4
    checked = 0
    for k, _ in enumerate(classes):
        for a in range(n_area):
            for i in range(n_img):
                e = ref.evalImgs[(k * n_area + a) * n_img + i]
                rec = records.image(i)
                mine = np.flatnonzero(rec.det_class == k)
                gmine = np.flatnonzero(rec.gt_class == k)
                if e is None:
                    assert not mine.size
                    assert not gmine.size
                    continue
                assert [det_of[x - 1][1] for x in e["dtIds"]] == rec.det_index[mine].tolist()
                want = [[ann_of[int(x) - 1][1] if x else -1 for x in row] for row in e["dtMatches"]]
                assert rec.det_match[a][:, mine].tolist() == want
                assert rec.det_ignore[a][:, mine].tolist() == e["dtIgnore"].astype(bool).tolist()
                gt_ids = [ann_of[x - 1][1] for x in e["gtIds"]]
                gi = rec.gt_index[gmine].tolist()
                by_gt = dict(zip(gi, rec.gt_match[a][:, gmine].T.tolist(), strict=True))
                ign = dict(zip(gi, rec.gt_ignore[a, gmine].tolist(), strict=True))
                for col, g in enumerate(gt_ids):
                    theirs = [det_of[int(x) - 1][1] if x else -1 for x in e["gtMatches"][:, col]]
                    assert by_gt[g] == theirs
                    assert ign[g] == bool(e["gtIgnore"][col])
                checked += 1
    assert checked > 50


def test_resample_with_repeats_equals_duplicated_images() -> None:
    gts, dets = synthetic(12, n_images=25)
    records = match_images(gts, dets, 7)
    idx = np.random.default_rng(0).integers(0, 25, 40)
    ours = evaluate_records(records, idx)
    # pycocotools sees each repeat as a new image, in resample order.
    ref = run_pycocotools([gts[i] for i in idx], [dets[i] for i in idx], 7)
    assert_same(ours.precision, ref.eval["precision"], "precision")
    assert_same(ours.recall, ref.eval["recall"], "recall")
    assert_same(ours.stats, np.asarray(ref.stats), "stats")
    sub = evaluate_records(records.subset(idx))
    assert np.array_equal(sub.precision, ours.precision)
    assert np.array_equal(sub.stats, ours.stats)


def test_records_concat_and_per_image_matching_agree() -> None:
    gts, dets = synthetic(13, n_images=12)
    whole = match_images(gts, dets, 7)
    parts = MatchRecords.concat(
        [match_image(g, d, classes=range(7)) for g, d in zip(gts, dets, strict=True)]
    )
    for name in ("det_index", "det_match", "det_ignore", "gt_match", "gt_ignore", "det_offsets"):
        assert np.array_equal(getattr(whole, name), getattr(parts, name)), name
    assert np.array_equal(accumulate(whole)[0], accumulate(parts)[0])
    assert len(whole) == 12
    three = whole.subset([2, 0, 2])
    assert len(three) == 3
    assert np.array_equal(three.image(1).det_index, whole.image(0).det_index)


def test_bbox_iou_equals_pycocotools_mask_iou() -> None:
    rng = np.random.default_rng(1)
    xyxy = rng.uniform(0, 100, (60, 4))
    xyxy[:, 2:] = xyxy[:, :2] + rng.uniform(0.1, 60, (60, 2))
    xywh = xyxy_to_xywh(xyxy)
    dt, gt = xywh[:35], xywh[35:]
    crowd = rng.random(25) < 0.3
    theirs = mask_utils.iou(dt.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
    assert_same(bbox_iou(dt, gt, crowd), theirs, "iou")


def foreign_coco(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO files as other tools write them: decimal xywh (2 places), shuffled sparse
    image ids, category ids with gaps, annotations and results in no particular order."""
    rng = np.random.default_rng(seed)
    image_ids = rng.permutation(np.arange(1, 400))[:30].tolist()
    cat_ids = [1, 3, 17, 90]
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in image_ids:
        for _ in range(int(rng.integers(0, 10))):
            wh = np.exp(rng.uniform(np.log(3), np.log(300), 2))
            box = np.round([*rng.uniform(0, 500, 2), *wh], 2).tolist()
            cat = int(rng.choice(cat_ids))
            area = round(float(wh.prod() * rng.uniform(0.5, 1.0)), 2)
            crowd = int(rng.random() < 0.05)
            anns.append(
                {
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": box,
                    "area": area,
                    "iscrowd": crowd,
                }
            )
            for _ in range(int(rng.integers(0, 3))):
                jit = np.round(np.array(box) + rng.normal(0, 0.08, 4) * wh[[0, 1, 0, 1]], 2)
                score = round(float(rng.random()), 3)
                results.append(
                    {"image_id": image_id, "category_id": cat, "bbox": jit.tolist(), "score": score}
                )
        for _ in range(int(rng.integers(0, 5))):
            box = np.round([*rng.uniform(0, 500, 2), *rng.uniform(3, 200, 2)], 2).tolist()
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.choice([*cat_ids, 55])),  # 55: not a category
                    "bbox": box,
                    "score": round(float(rng.random()), 3),
                }
            )
    order = rng.permutation(len(anns))
    anns = [{**anns[i], "id": n + 1} for n, i in enumerate(order)]
    results = [results[i] for i in rng.permutation(len(results))]
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in image_ids]
    cats = [{"id": c, "name": str(c)} for c in rng.permutation(cat_ids).tolist()]
    return {"images": images, "annotations": anns, "categories": cats}, results


@pytest.mark.parametrize("seed", range(3))
def test_evaluate_coco_matches_pycocotools_on_foreign_files(seed: int) -> None:
    gt, results = foreign_coco(seed)
    ours = evaluate_coco(gt, results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ref = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        ref.evaluate()
        ref.accumulate()
        ref.summarize()
    assert ours.classes == (0, 1, 2, 3)
    assert ours.stat("map50") > 0.3
    assert_same(ours.precision, ref.eval["precision"], "precision")
    assert_same(ours.recall, ref.eval["recall"], "recall")
    assert_same(ours.scores, ref.eval["scores"], "scores")
    assert_same(ours.stats, np.asarray(ref.stats), "stats")


def test_evaluate_coco_rejects_results_on_unknown_images() -> None:
    gt, results = foreign_coco(0)
    bad = [{**results[0], "image_id": 10_000}]
    with pytest.raises(DatasetError, match="10000"):
        evaluate_coco(gt, bad)


# ---------------------------------------------------------------------------- API


def test_evaluation_accessors() -> None:
    gts, dets = synthetic(14)
    ev = evaluate(gts, dets, 7)
    assert list(ev.as_dict()) == list(COCO_STAT_NAMES)
    assert ev.stat("ar100") == ev.stats[8]
    assert ev.precision.shape == (10, 101, 7, 4, 3)
    assert ev.recall.shape == (10, 7, 4, 3)
    with pytest.raises(UnknownNameError, match="did you mean 'map50'"):
        ev.stat("map_50")
    with pytest.raises(ValueError, match="read-only"):
        ev.stats[0] = 1.0


def test_classes_restrict_the_k_axis_and_are_sorted() -> None:
    gts, dets = synthetic(15)
    ev = evaluate(gts, dets, 7, classes=[5, 1])
    assert ev.classes == (1, 5)
    assert set(ev.per_class_ap()) == {1, 5}
    full = evaluate(gts, dets, 7)
    # classes are evaluated independently: the same curve either way
    assert np.array_equal(ev.precision[:, :, 1], full.precision[:, :, 5])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: evaluate([GroundTruth.empty()], [], 1), ShapeError, "one entry per image"),
        (
            lambda: evaluate([GroundTruth([[0, 0, 1, 1]], [3])], [Detections.empty()], 2),
            ConfigError,
            r"gts\[0\]: label 3 is outside 0..1",
        ),
        (
            lambda: evaluate([GroundTruth.empty()], [Detections([[0, 0, 1, 1]], [1], [-1])], 2),
            ConfigError,
            r"dets\[0\]: label -1",
        ),
        (lambda: evaluate([], [], 2, classes=[0, 2]), ConfigError, "classes must be in 0..1"),
        (lambda: evaluate([], [], 2, classes=[1, 1]), ConfigError, "distinct"),
        (lambda: evaluate([], [], 2, max_dets=(0, 1, 2)), ConfigError, "positive"),
        (lambda: evaluate([], [], 2, max_dets=(1, 2)), ConfigError, "three"),  # type: ignore[arg-type]
        (lambda: evaluate([], [], 2, iou_thresholds=[1.5]), ConfigError, r"\[0, 1\]"),
        (
            lambda: evaluate([GroundTruth.empty()], [Detections([[0, 0, np.nan, 1]], [1], [0])], 1),
            ModelError,
            "non-finite",
        ),
        (
            lambda: evaluate([GroundTruth([[0, 0, np.inf, 1]], [0])], [Detections.empty()], 1),
            DatasetError,
            "non-finite",
        ),
    ],
)
def test_bad_input_is_reported(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()
