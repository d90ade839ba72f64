"""Risk score, intervals, comparisons, verdicts and replicate files, on hand-made cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from brittle.augmentations import AUGMENTATIONS, parse_augmentations, protects
from brittle.errors import UnknownNameError
from brittle.metrics.bootstrap import resample_weights
from brittle.perturbations import catalogue
from brittle.run import aggregate
from brittle.run.aggregate import Stat, interval, risk_score
from brittle.run.mining import select
from brittle.run.scoring import CellScore

N = 60
B = 400
W = resample_weights(N, B, seed=0)


def _cell(consistency: np.ndarray, map_value: float | None = None) -> CellScore:
    """A cell whose per-image consistency is exactly ``consistency`` (n_matched / n)."""
    n_clean = np.full(len(consistency), 100, np.int64)
    matched = np.round(consistency * 100).astype(np.int64)
    zeros = np.zeros(len(consistency), np.int64)
    empty = np.zeros(0)
    labeled = map_value is not None
    stats = np.full(12, map_value) if labeled else empty
    # AP replicates: the value plus per-resample noise proportional to the weights' spread.
    reps = (map_value + (W[:, 0] - 1) * 0.01) if labeled else empty
    return CellScore(
        n_images=len(consistency), stats=stats, classes=np.zeros(0, np.int64),
        class_ap=empty, class_ap50=empty, map50_95_reps=reps, map50_reps=reps,
        n_clean=n_clean, n_perturbed=n_clean, n_matched=matched, changed=zeros,
        lost=n_clean - matched, gained=n_clean - matched,
        f1_clean=np.full(len(consistency), np.nan), f1_perturbed=np.full(len(consistency), np.nan),
    )  # fmt: skip


def _clean(map_value: float | None) -> CellScore:
    return _cell(np.ones(0), map_value) if map_value is None else _clean_labeled(map_value)


def _clean_labeled(map_value: float) -> CellScore:
    empty = np.zeros(0)
    ints = np.zeros(0, np.int64)
    reps = map_value + (W[:, 0] - 1) * 0.01
    return CellScore(
        n_images=N, stats=np.full(12, map_value), classes=ints, class_ap=empty,
        class_ap50=empty, map50_95_reps=reps, map50_reps=reps, n_clean=ints,
        n_perturbed=ints, n_matched=ints, changed=ints, lost=ints, gained=ints,
        f1_clean=empty, f1_perturbed=empty,
    )  # fmt: skip


FAMILIES = {"hflip": "geometric", "gaussian_noise": "noise", "motion_blur": "blur"}


def _model(cons: dict[str, float], maps: dict[str, float] | None = None) -> aggregate.ModelScores:
    cells = {}
    for p, c in cons.items():
        rng = np.random.default_rng(len(p))
        per_image = np.clip(c + rng.normal(0, 0.05, N), 0, 1) if c < 1 else np.ones(N)
        cells[(p, 3)] = _cell(per_image, None if maps is None else maps[p])
    clean = _clean_labeled(0.5) if maps is not None else _clean(None)
    return aggregate.model_scores(clean, cells, FAMILIES, W, strictness=0.75)


def test_risk_score_is_bounded_and_monotonic() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.uniform(0, 1, 5)
        base = float(risk_score(dict(enumerate(d))))
        assert 0.0 <= base <= 100.0
        i = int(rng.integers(5))
        worse = d.copy()
        worse[i] = min(1.0, d[i] + rng.uniform(0, 0.5))
        assert float(risk_score(dict(enumerate(worse)))) >= base
        if worse[i] > d[i] and d[i] >= 0:
            assert float(risk_score(dict(enumerate(worse)))) > base
    assert float(risk_score({"a": 0.0, "b": 0.0})) == 0.0
    assert float(risk_score({"a": 1.0, "b": 1.0})) == 100.0


def test_risk_weighs_a_collapse_more_than_the_same_loss_spread_thin() -> None:
    assert float(risk_score({"a": 0.6, "b": 0.0})) > float(risk_score({"a": 0.3, "b": 0.3}))


def test_interval_ignores_undefined_replicates_and_is_none_without_any() -> None:
    reps = np.array([np.nan, 1.0, 2.0, 3.0, np.inf])
    low, high = interval(reps, 0.5)  # type: ignore[misc]
    assert (low, high) == (1.5, 2.5)
    assert interval(np.full(3, np.nan), 0.95) is None


def test_an_invariant_perturbation_scores_one_with_a_degenerate_interval() -> None:
    m = _model({"hflip": 1.0, "gaussian_noise": 0.4}, maps={"hflip": 0.5, "gaussian_noise": 0.2})
    hflip = m.perturbations["hflip"]
    assert hflip["consistency"].value == 1.0
    assert hflip["consistency"].ci(0.95) == (1.0, 1.0)
    assert hflip["rpc"].value == pytest.approx(1.0)
    assert hflip["degradation"].value == 0.0
    noise = m.perturbations["gaussian_noise"]
    ci = noise["consistency"].ci(0.95)
    assert ci is not None
    assert ci[1] < 0.5
    assert noise["rpc"].value == pytest.approx(0.4)
    assert m.basis == "rpc"
    assert m.risk is not None
    # risk = 100 * sqrt(mean(geometric 0, noise 0.6) ** 2 ...) over two families
    assert m.risk.value == pytest.approx(100 * np.sqrt((0.0**2 + 0.6**2) / 2))
    ci = m.risk.ci(0.95)
    assert ci is not None
    assert ci[0] <= m.risk.value <= ci[1]


def test_unlabeled_models_fall_back_to_consistency() -> None:
    m = _model({"hflip": 1.0, "gaussian_noise": 0.4})
    assert m.basis == "consistency"
    assert "rpc" not in m.perturbations["gaussian_noise"]
    d = m.perturbations["gaussian_noise"]["degradation"]
    assert d.value == pytest.approx(1 - m.perturbations["gaussian_noise"]["consistency"].value)
    perts, fams, risk = aggregate.model_tables(m, FAMILIES, 0.95)
    assert perts["gaussian_noise"].rpc is None
    assert perts["gaussian_noise"].rpc_ci is None
    assert risk is not None
    assert risk.basis == "consistency"
    assert list(fams) == ["noise", "geometric"]  # catalogue order


def test_comparisons_call_a_difference_only_when_the_interval_excludes_zero() -> None:
    a = _model({"hflip": 1.0, "gaussian_noise": 0.9, "motion_blur": 0.7})
    b = _model({"hflip": 0.5, "gaussian_noise": 0.9, "motion_blur": 0.7})
    c = aggregate.compare("a", a, "b", b, 0.95)
    assert c.perturbations["hflip"].better == "a"
    ci = c.perturbations["hflip"].ci
    assert ci is not None
    assert ci[0] > 0
    # Same per-image values: the paired difference is exactly 0 on every resample.
    assert c.perturbations["gaussian_noise"].difference == 0.0
    assert c.perturbations["gaussian_noise"].ci == (0.0, 0.0)
    assert c.perturbations["gaussian_noise"].better is None
    assert c.risk is not None
    assert c.risk.better == "a"
    assert c.risk.difference < 0
    assert aggregate.ranking({"b": b, "a": a}) == ["a", "b"]


def test_verdicts_intended_backfired_no_effect_and_not_tested() -> None:
    ref = _model({"hflip": 0.9, "gaussian_noise": 0.5, "motion_blur": 0.7})
    model = _model({"hflip": 0.6, "gaussian_noise": 0.8, "motion_blur": 0.7})
    out = aggregate.verdicts(
        {"m": model, "r": ref},
        {"m": ["hflip", "noise", "blur", "fog", "mosaic"]},
        {"m": "r"},
        0.95,
    )
    outcome = {v.augmentation: v.outcome for v in out}
    assert outcome == {
        "hflip": "backfired",
        "noise": "intended effect",
        "blur": "no measurable effect",
        "fog": "not tested",
        "mosaic": "not tested",
    }
    noise = next(v for v in out if v.augmentation == "noise")
    assert noise.perturbations == ["gaussian_noise"]
    assert noise.difference is not None
    assert noise.difference.metric == "consistency"
    assert set(noise.details) == {"gaussian_noise"}


def test_replicates_round_trip(tmp_path: Path) -> None:
    from brittle.evaluate import RunOptions

    m = _model({"hflip": 1.0, "gaussian_noise": 0.4}, maps={"hflip": 0.5, "gaussian_noise": 0.2})
    path = tmp_path / "replicates.npz"
    aggregate.save_replicates(path, {"m": m}, "digest", RunOptions())
    meta, scores = aggregate.load_replicates(path)
    assert meta["images"] == "digest"
    back = scores["m"]
    assert back.basis == m.basis
    assert back.risk is not None
    assert m.risk is not None
    assert back.risk.value == m.risk.value
    np.testing.assert_array_equal(back.risk.reps, m.risk.reps)
    np.testing.assert_array_equal(
        back.perturbations["hflip"]["rpc"].reps, m.perturbations["hflip"]["rpc"].reps
    )
    assert list(back.family_members) == list(m.family_members)


def test_cell_scores_round_trip_through_bytes() -> None:
    c = _cell(np.linspace(0, 1, 7), 0.25)
    back = CellScore.from_bytes(c.to_bytes())
    np.testing.assert_array_equal(back.consistency, c.consistency)
    np.testing.assert_array_equal(back.map50_95_reps, c.map50_95_reps)
    assert back.n_images == c.n_images
    assert back.failed == c.failed


def test_stat_subtraction_pairs_replicates() -> None:
    a = Stat(1.0, np.array([1.0, 2.0]))
    b = Stat(0.5, np.array([0.5, 0.5]))
    d = a - b
    assert d.value == 0.5
    assert d.reps.tolist() == [0.5, 1.5]


def test_every_augmentation_maps_to_catalogue_perturbations() -> None:
    names = {c.name for group in catalogue().values() for c in group}
    for aug in AUGMENTATIONS:
        assert set(protects(aug)) <= names, aug
    assert protects("blur") == tuple(sorted(c.name for c in catalogue()["blur"]))
    assert protects("mosaic") == ()


def test_unknown_augmentations_are_named_with_a_suggestion() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'hflip'"):
        parse_augmentations("hflp")
    assert parse_augmentations("HFLIP, blur, hflip") == ["hflip", "blur"]


def test_failure_mining_ranks_images_by_their_worst_severity() -> None:
    base = np.ones(5)
    sev1 = _cell(np.array([1.0, 0.5, 1.0, 0.9, 1.0]))
    sev5 = _cell(np.array([1.0, 0.2, 0.7, 0.9, 1.0]))
    assert select({1: sev1, 5: sev5}, k=10) == [(1, 5), (2, 5), (3, 1)]
    assert select({1: sev1, 5: sev5}, k=1) == [(1, 5)]
    assert select({3: _cell(base)}, k=3) == []  # nothing changed: nothing to show


def test_a_model_that_predicts_nothing_is_not_rated_perfectly_robust() -> None:
    def silent(n_clean: int) -> CellScore:
        ones = np.ones(N)
        cell = _cell(ones)
        counts = np.full(N, n_clean, np.int64)
        return CellScore(
            **{f.name: getattr(cell, f.name) for f in dataclasses.fields(cell) if f.init
               and f.name not in ("n_clean", "n_perturbed", "n_matched", "lost", "gained")},
            n_clean=counts, n_perturbed=counts, n_matched=counts,
            lost=np.zeros(N, np.int64), gained=np.zeros(N, np.int64),
        )  # fmt: skip

    cells = {(p, 3): silent(0) for p in FAMILIES}
    # Labeled with clean mAP 0: rPC is undefined, consistency is 1.0 for predicting nothing.
    blind = aggregate.model_scores(_clean_labeled(0.0), cells, FAMILIES, W, strictness=0.75)
    assert blind.basis == "consistency"
    assert blind.families["noise"]["consistency"].value == 1.0
    assert blind.risk is None
    # The same with one clean detection somewhere is measurable (and here unchanged).
    cells[("hflip", 3)] = silent(1)
    seen = aggregate.model_scores(_clean_labeled(0.0), cells, FAMILIES, W, strictness=0.75)
    assert seen.risk is not None
    assert seen.risk.value == 0.0
