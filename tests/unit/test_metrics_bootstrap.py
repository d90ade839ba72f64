"""Bootstrap intervals and the weighted-image AP behind them.

WeightedAP is checked against evaluate() / evaluate_records() (themselves equal to
pycocotools, see test_coco_metrics.py): exactly with unit weights, and against the
images listed as often as their weight otherwise. The intervals are checked by
simulation: drawn from a known population, they must cover its value at about the
nominal rate.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from brittle.errors import ConfigError, ShapeError
from brittle.metrics import coco
from brittle.metrics.bootstrap import (
    Interval,
    bootstrap,
    bootstrap_map,
    bootstrap_mean,
    bootstrap_ratio,
    paired_difference,
    resample_weights,
)
from brittle.metrics.coco import (
    COCO_RECALL_THRESHOLDS,
    WeightedAP,
    evaluate,
    evaluate_records,
)
from brittle.metrics.matching import MatchRecords, match_images
from brittle.types import Detections, GroundTruth

# ---------------------------------------------------------------------------- data


def synthetic(
    seed: int,
    *,
    n_images: int = 40,
    num_classes: int = 4,
    max_gt: int = 8,
    crowd_rate: float = 0.05,
    **detector: float,
) -> tuple[list[GroundTruth], list[Detections]]:
    """Objects of all three COCO sizes (some crowd regions, some images without any)
    and :func:`detect`'s detections of them."""
    rng = np.random.default_rng(seed)
    gts = []
    for _ in range(n_images):
        ng = int(rng.integers(0, max_gt + 1))
        size = np.exp(rng.uniform(np.log(6), np.log(300), (ng, 2)))
        xy = rng.uniform(0, 500, (ng, 2))
        labels = rng.integers(0, num_classes, ng)
        gts.append(
            GroundTruth(np.concatenate([xy, xy + size], 1), labels, rng.random(ng) < crowd_rate)
        )
    return gts, detect(gts, seed, num_classes=num_classes, **detector)  # type: ignore[arg-type]


def detect(
    gts: list[GroundTruth],
    seed: int,
    *,
    num_classes: int = 4,
    hit_rate: float = 0.8,
    max_fp: int = 6,
    score_levels: int | None = None,
) -> list[Detections]:
    """A synthetic detector: finds each object with probability ``hit_rate`` (box
    jittered, 10% relabelled, 20% duplicated), adds up to ``max_fp`` false positives."""
    rng = np.random.default_rng(seed + 1000)
    dets = []
    for gt in gts:
        boxes, labels = gt.boxes, gt.labels
        size = boxes[:, 2:] - boxes[:, :2]
        hit = rng.random(len(gt)) < hit_rate
        jb = boxes[hit] + rng.normal(0, 0.08, (int(hit.sum()), 4)) * size[hit][:, [0, 1, 0, 1]]
        jl = np.where(rng.random(len(jb)) < 0.9, labels[hit], rng.integers(0, num_classes, len(jb)))
        dup = rng.random(len(jb)) < 0.2
        jb = np.concatenate([jb, jb[dup] + rng.normal(0, 2.0, (int(dup.sum()), 4))])
        jl = np.concatenate([jl, jl[dup]])
        nf = int(rng.integers(0, max_fp + 1))
        fxy = rng.uniform(0, 500, (nf, 2))
        fb = np.concatenate([fxy, fxy + np.exp(rng.uniform(np.log(6), np.log(300), (nf, 2)))], 1)
        b = np.concatenate([jb, fb])
        lab = np.concatenate([jl, rng.integers(0, num_classes, nf)])
        s = np.concatenate([rng.beta(4, 2, len(jb)), rng.beta(2, 4, nf)])
        if score_levels:
            s = np.round(s * score_levels) / score_levels
        perm = rng.permutation(len(b))
        dets.append(Detections(b[perm], s[perm], lab[perm]))
    return dets


def records_of(seed: int, **kwargs: object) -> MatchRecords:
    gts, dets = synthetic(seed, **kwargs)  # type: ignore[arg-type]
    return match_images(gts, dets, int(kwargs.get("num_classes", 4)))  # type: ignore[call-overload]


def duplicated(weights: NDArray[np.int64]) -> NDArray[np.int64]:
    """The image list a weight vector stands for, copies side by side."""
    return np.repeat(np.arange(len(weights)), weights)


# ---------------------------------------------------------------------------- WeightedAP


@pytest.mark.parametrize("seed", range(4))
def test_unit_weights_equal_evaluate_exactly(seed: int) -> None:
    # Crowd regions (ignored detections), duplicates, a class that never occurs in the
    # ground truth (K=6 with labels up to 5 but objects of 0..3 only via num_classes).
    gts, dets = synthetic(seed, n_images=60, num_classes=5, crowd_rate=0.1)
    ev = evaluate(gts, dets, 6)
    wap = WeightedAP.from_records(match_images(gts, dets, 6))
    p = wap.precision(np.ones(60, np.int64))
    assert np.array_equal(p, ev.precision[:, :, :, 0, -1])
    assert (p[:, :, 5] == -1).all()  # class 5 has no ground truth
    assert float(wap.ap(np.ones(60))) == ev.stat("map50_95")
    assert float(wap.ap(np.ones(60), 0.5)) == ev.stat("map50")
    assert float(wap.ap(np.ones(60), 0.75)) == ev.stat("map75")


@pytest.mark.parametrize("seed", range(4))
def test_integer_weights_equal_duplicated_images(seed: int) -> None:
    records = records_of(seed, n_images=50, crowd_rate=0.1)
    wap = WeightedAP.from_records(records)
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, 50, 50), minlength=50) for _ in range(8)])
    W[0, :25] = 0  # half the images dropped: classes may lose all their objects
    W[1] = rng.integers(0, 4, 50)  # heavier weights, total not n
    batch = wap.precision(W)
    for w, p in zip(W, batch, strict=True):
        ref = evaluate_records(records, duplicated(w))
        # Scores are continuous: no ties, so equal bit for bit.
        assert np.array_equal(p, ref.precision[:, :, :, 0, -1])
        assert float(wap.ap(w)) == ref.stat("map50_95")
        assert float(wap.ap(w, 0.5)) == ref.stat("map50")


def test_both_ways_of_finding_the_recall_position_agree() -> None:
    # Many short rows use the unit table, few long rows the binary search
    # (see _first_reaching); both must give evaluate_records' tables.
    searched = []
    for kwargs in ({"n_images": 30, "num_classes": 8}, {"n_images": 400, "num_classes": 1}):
        records = records_of(3, **kwargs)
        wap = WeightedAP.from_records(records)
        n = len(records)
        w = np.bincount(np.random.default_rng(0).integers(0, n, n), minlength=n)
        ref = evaluate_records(records, duplicated(w))
        assert np.array_equal(wap.precision(w), ref.precision[:, :, :, 0, -1])
        searched.append(3 * len(wap.rows) * len(COCO_RECALL_THRESHOLDS) < len(wap.slot_image))
    assert searched == [False, True]


def test_score_ties_change_the_weighted_curve_less_than_image_order_does() -> None:
    # Scores on 5 levels: copies of an image interleave their tied detections when
    # listed, but stay grouped by detection when weighted. Listing the same images in
    # another order moves AP more: with ties, the order of a list is already arbitrary.
    records = records_of(5, n_images=120, score_levels=4, max_fp=10)
    wap = WeightedAP.from_records(records)
    W = resample_weights(120, 20, seed=1)
    rng = np.random.default_rng(0)
    got = wap.ap(W)
    listed = np.array([evaluate_records(records, duplicated(w)).stat("map50_95") for w in W])
    shuffled = [evaluate_records(records, rng.permutation(duplicated(w))) for w in W]
    by_order = np.abs(listed - [ev.stat("map50_95") for ev in shuffled]).max()
    by_weight = np.abs(got - listed).max()
    assert 0 < by_weight < 5e-3  # > 0: the ties are real, the comparison is not vacuous
    assert by_weight < by_order


def test_recall_counts_match_pycocotools_division() -> None:
    counts = np.arange(0, 3001)
    J = coco._recall_counts(counts)
    for c in range(1, 3001):
        expected = np.searchsorted(np.arange(c + 1) / c, COCO_RECALL_THRESHOLDS)
        assert np.array_equal(J[c], expected), c


def test_no_detections_and_no_ground_truth() -> None:
    gts = [GroundTruth([[0, 0, 10, 10]], [0]), GroundTruth.empty()]
    empty = WeightedAP.from_records(match_images(gts, [Detections.empty()] * 2, 1))
    assert float(empty.ap([1, 1])) == 0.0 == evaluate(gts, [Detections.empty()] * 2, 1).stats[0]
    dets = [Detections.empty(), Detections([[0, 0, 5, 5]], [0.5], [0])]
    wap = WeightedAP.from_records(match_images(gts, dets, 1))
    assert wap.ap([[0, 3], [1, 1]]).tolist() == [-1.0, 0.0]  # no ground truth: undefined


def test_weights_are_checked() -> None:
    wap = WeightedAP.from_records(records_of(0, n_images=5))
    with pytest.raises(ConfigError, match="expected"):
        wap.ap(np.ones(4))
    with pytest.raises(ConfigError, match=">= 0"):
        wap.ap([1, 1, -1, 1, 1])
    with pytest.raises(ConfigError, match="whole numbers"):
        wap.ap([1, 1, 0.5, 1, 1])
    with pytest.raises(ConfigError, match="IoU thresholds"):
        wap.ap(np.ones(5), 0.55555)
    with pytest.raises(ConfigError, match="area"):
        WeightedAP.from_records(records_of(0, n_images=5), area=4)


# ---------------------------------------------------------------------------- resampling


def test_resample_weights_are_seeded_draws_with_replacement() -> None:
    a = resample_weights(300, 50, seed=3)
    assert a.shape == (50, 300)
    assert (a.sum(axis=1) == 300).all()
    assert np.array_equal(a, resample_weights(300, 50, seed=3))
    assert not np.array_equal(a, resample_weights(300, 50, seed=4))
    # Multinomial(n, 1/n) counts: mean 1, variance (1 - 1/n), about 36.6% zeros.
    assert abs(a.var() - (1 - 1 / 300)) < 0.05
    assert abs((a == 0).mean() - (1 - 1 / 300) ** 300) < 0.02
    # Drawn in blocks whose size depends on the number of images only.
    big = resample_weights(5000, 1000, seed=0)
    assert np.array_equal(big[:3], resample_weights(5000, 3, seed=0))


def test_bootstrap_map_is_deterministic_and_centred_on_the_estimate() -> None:
    records = records_of(7, n_images=80)
    ci = bootstrap_map(records, n=300, seed=11)
    assert ci.estimate == evaluate_records(records).stat("map50_95")
    assert ci.low < ci.estimate < ci.high
    assert ci.n == 300
    assert ci.level == 0.95
    assert ci.method == "percentile"
    again = bootstrap_map(records, n=300, seed=11)
    assert np.array_equal(again.replicates, ci.replicates)
    assert again == ci
    other = bootstrap_map(records, n=300, seed=12)
    assert not np.array_equal(other.replicates, ci.replicates)
    ap50 = bootstrap_map(records, stat="map50", n=300, seed=11)
    assert ap50.estimate == evaluate_records(records).stat("map50") > ci.estimate
    # Same seed and images: the same resamples, whatever the statistic.
    w = resample_weights(80, 300, seed=11)
    assert np.array_equal(ci.replicates, WeightedAP.from_records(records).ap(w))


def test_interval_level_and_method() -> None:
    records = records_of(8, n_images=80)
    wide = bootstrap_map(records, n=400, level=0.95)
    narrow = bootstrap_map(records, n=400, level=0.5)
    assert wide.low < narrow.low < narrow.high < wide.high
    bca = bootstrap_map(records, n=400, method="bca")
    assert bca.method == "bca"
    assert bca.low < bca.estimate < bca.high
    assert np.array_equal(bca.replicates, wide.replicates)
    assert str(wide).startswith(f"{wide.estimate:.4f} [")
    assert "95% percentile" in str(wide)
    assert wide.estimate in wide
    assert (wide.high + 1) not in wide


def test_bca_corrects_for_skew() -> None:
    # Exponential values: the mean's distribution is right-skewed; BCa moves the
    # interval right of the percentile one (Efron & Tibshirani 1993, ch. 14).
    x = np.random.default_rng(0).exponential(1.0, 60)
    pct = bootstrap_mean(x, n=4000)
    bca = bootstrap_mean(x, n=4000, method="bca")
    assert bca.low > pct.low
    assert bca.high > pct.high


def _coverage(intervals: list[Interval], truth: float) -> float:
    return float(np.mean([iv.low <= truth <= iv.high for iv in intervals]))


def _binomial_ok(covered: float, level: float, trials: int) -> bool:
    return abs(covered - level) <= 3 * np.sqrt(level * (1 - level) / trials)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_intervals_cover_the_true_mean(method: str) -> None:
    # Per-image consistency-like values in [0, 1]: Beta(5, 2), true mean 5/7.
    rng = np.random.default_rng(42)
    trials = 300
    intervals = [
        bootstrap_mean(rng.beta(5, 2, 100), n=500, seed=i, method=method)  # type: ignore[arg-type]
        for i in range(trials)
    ]
    covered = _coverage(intervals, 5 / 7)
    assert _binomial_ok(covered, 0.95, trials), covered
    # Not trivially wide: about 4 standard errors of the mean.
    se = np.sqrt(5 * 2 / (7**2 * 8) / 100)
    width = np.mean([iv.high - iv.low for iv in intervals])
    assert 3.5 * se < width < 4.3 * se


def population(seed: int, n: int) -> tuple[list[GroundTruth], list[Detections]]:
    """Two classes, 0-4 objects per image, 70% found, 0-3 false positives."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n):
        ng = int(rng.integers(0, 5))
        size = rng.uniform(20, 120, (ng, 2))
        xy = rng.uniform(0, 500, (ng, 2))
        boxes = np.concatenate([xy, xy + size], 1)
        labels = rng.integers(0, 2, ng)
        gts.append(GroundTruth(boxes, labels))
        hit = rng.random(ng) < 0.7
        jb = boxes[hit] + rng.normal(0, 0.06, (int(hit.sum()), 4)) * size[hit][:, [0, 1, 0, 1]]
        nf = int(rng.integers(0, 4))
        fxy = rng.uniform(0, 500, (nf, 2))
        fb = np.concatenate([fxy, fxy + rng.uniform(20, 120, (nf, 2))], 1)
        b = np.concatenate([jb, fb])
        lab = np.concatenate([labels[hit], rng.integers(0, 2, nf)])
        s = np.concatenate([rng.beta(4, 2, len(jb)), rng.beta(2, 4, nf)])
        dets.append(Detections(b, s, lab))
    return gts, dets


def test_map_intervals_cover_the_population_map() -> None:
    # The population's mAP is the true value; each trial evaluates 200 images drawn
    # from it. mAP of 200 images is biased up by about a third of its standard error
    # here, which costs the percentile interval a few points of coverage (about 87%
    # at nominal 90% over 600 trials); docs/bootstrap.md reports it.
    gts, dets = population(0, 20000)
    records = match_images(gts, dets, 2)
    truth = evaluate_records(records).stat("map50_95")
    rng = np.random.default_rng(1)
    trials = 100
    intervals = [
        bootstrap_map(records.subset(rng.integers(0, 20000, 200)), n=200, seed=i, level=0.9)
        for i in range(trials)
    ]
    covered = _coverage(intervals, truth)
    assert _binomial_ok(covered, 0.9, trials), covered
    widths = np.array([iv.high - iv.low for iv in intervals])
    estimates = np.array([iv.estimate for iv in intervals])
    # The interval's width matches the spread of the estimate across samples.
    assert 0.7 < widths.mean() / (2 * 1.645 * estimates.std()) < 1.3


# ---------------------------------------------------------------------------- paired


def test_ratio_is_paired() -> None:
    clean = records_of(9, n_images=80)
    same = bootstrap_ratio(clean, clean, n=200)
    # Both sides see the same resample, so the ratio is exactly 1 on every one.
    assert same.estimate == 1.0
    assert (same.replicates == 1.0).all()
    gts, dets = synthetic(9, n_images=80)
    worse = [
        Detections(
            d.boxes + np.random.default_rng(i).normal(0, 3, d.boxes.shape), d.scores, d.labels
        )
        for i, d in enumerate(dets)
    ]
    pert = match_images(gts, worse, 4)
    rpc = bootstrap_ratio(pert, clean, n=300)
    expected = evaluate_records(pert).stat("map50_95") / evaluate_records(clean).stat("map50_95")
    assert rpc.estimate == pytest.approx(expected, rel=1e-12)
    assert rpc.low < rpc.estimate < rpc.high < 1.0
    both = bootstrap_ratio([pert, clean], clean, n=300)  # mPC over two conditions
    assert both.estimate == pytest.approx((expected + 1) / 2, rel=1e-12)
    ap50 = bootstrap_ratio(pert, clean, stat="map50", n=50)
    assert ap50.estimate > rpc.estimate  # jitter hurts strict IoU more


def test_paired_difference_detects_a_better_model() -> None:
    gts, good = synthetic(10, n_images=150, hit_rate=0.9)
    bad = detect(gts, 10, hit_rate=0.7)
    a, b = match_images(gts, good, 4), match_images(gts, bad, 4)
    diff = paired_difference(a, b, n=500)
    assert diff.estimate == evaluate_records(a).stat("map50_95") - evaluate_records(b).stat(
        "map50_95"
    )
    assert diff.estimate > 0
    assert diff.excludes_zero
    assert diff.low > 0


def test_paired_difference_includes_zero_for_two_runs_of_one_model() -> None:
    # Two independent draws of the same synthetic detector: equally good models whose
    # detections differ image by image. (Box or score noise added to one model would
    # not do: noise lowers AP on average, a real difference the test should detect.)
    gts, dets = synthetic(11, n_images=150)
    a, b = match_images(gts, dets, 4), match_images(gts, detect(gts, 12), 4)
    diff = paired_difference(a, b, n=500)
    assert diff.estimate != 0
    assert not diff.excludes_zero
    zero = paired_difference(a, a, n=100)
    assert (zero.replicates == 0).all()
    assert not zero.excludes_zero


def test_pairing_cancels_what_two_models_share() -> None:
    # A model and the same model with its boxes jittered by 0.3 px: nearly the same
    # detections, so the difference varies far less across resamples than either mAP.
    gts, dets = synthetic(11, n_images=150)
    rng = np.random.default_rng(0)
    moved = [
        Detections(d.boxes + rng.normal(0, 0.3, d.boxes.shape), d.scores, d.labels) for d in dets
    ]
    a, b = match_images(gts, dets, 4), match_images(gts, moved, 4)
    diff = paired_difference(a, b, n=500)
    alone = bootstrap_map(a, n=500)
    assert diff.high - diff.low < 0.25 * (alone.high - alone.low)
    # Unpaired (independent resamples for each side), the difference would spread as
    # the two mAPs together: about sqrt(2) times one of them.
    other = bootstrap_map(b, n=500, seed=1)
    unpaired = alone.replicates - other.replicates
    assert np.std(unpaired) > 4 * np.std(diff.replicates)


def test_paired_difference_of_per_image_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 300)
    shifted = paired_difference(x + 0.05, x + rng.normal(0, 0.02, 300), n=500)
    assert shifted.excludes_zero
    assert shifted.low > 0
    same = paired_difference(x, x + rng.normal(0, 0.02, 300), n=500)
    assert not same.excludes_zero


def test_undefined_values_are_left_out() -> None:
    x = np.array([1.0, np.nan, 0.0, np.nan] * 25)
    ci = bootstrap_mean(x, n=200)
    assert ci.estimate == 0.5
    assert 0.3 < ci.low < 0.5 < ci.high < 0.7
    with pytest.raises(ConfigError, match="undefined"):
        bootstrap_mean([np.nan, np.nan])


def test_generic_bootstrap_of_a_custom_statistic() -> None:
    x = np.arange(100.0)

    def median(w: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.array([np.median(np.repeat(x, row)) for row in w])

    ci = bootstrap(median, 100, n=200)
    assert ci.estimate == 49.5
    assert ci.low < 49.5 < ci.high


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: bootstrap_mean(np.ones((3, 2))), ShapeError, "n_images"),
        (lambda: bootstrap_mean([1.0, 2.0], level=1.5), ConfigError, "level"),
        (lambda: bootstrap_mean([1.0, 2.0], method="bootstrap-t"), ConfigError, "method"),
        (lambda: bootstrap_mean([1.0, 2.0], n=0), ConfigError, "resamples"),
        (lambda: bootstrap_mean([]), ConfigError, "at least one image"),
        (lambda: paired_difference([1.0, 2.0], [1.0]), ConfigError, "same images"),
        (
            lambda: bootstrap_map(records_of(0, n_images=5), stat="ar100"),
            ConfigError,
            "stat must be",
        ),
        (
            lambda: bootstrap_ratio(
                [records_of(0, n_images=5), records_of(0, n_images=6)], records_of(0, n_images=5)
            ),
            ConfigError,
            "same images",
        ),
    ],
)
def test_bad_input_is_reported(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]
