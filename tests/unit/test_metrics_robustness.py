"""mPC / rPC (Michaelis et al. 2019) on hand-computed examples, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brittle.errors import ConfigError, ShapeError
from brittle.metrics.robustness import (
    clean_undefined_reason,
    mean_performance,
    perturbation_performance,
    relative_performance,
    relative_performance_arrays,
    relative_perturbation_performance,
    robustness,
)

# Two corruptions, five severities. By hand:
#   fog:  (0.36 + 0.30 + 0.24 + 0.18 + 0.12) / 5 = 1.20 / 5 = 0.24
#   snow: (0.30 + 0.20 + 0.15 + 0.10 + 0.05) / 5 = 0.80 / 5 = 0.16
#   mPC = (0.24 + 0.16) / 2 = 0.20;  rPC = 0.20 / 0.40 = 0.5
#   rpc(fog) = 0.24 / 0.40 = 0.6;    rpc(snow) = 0.16 / 0.40 = 0.4
SCORES = {
    "fog": {1: 0.36, 2: 0.30, 3: 0.24, 4: 0.18, 5: 0.12},
    "snow": {5: 0.05, 4: 0.10, 3: 0.15, 2: 0.20, 1: 0.30},  # order must not matter
}
CLEAN = 0.40


def test_hand_computed_mpc_and_rpc() -> None:
    assert mean_performance(SCORES) == pytest.approx(0.20, abs=1e-15)
    assert relative_performance(SCORES, CLEAN) == pytest.approx(0.5, abs=1e-15)
    per = perturbation_performance(SCORES)
    assert per == pytest.approx({"fog": 0.24, "snow": 0.16}, abs=1e-15)
    rel = relative_perturbation_performance(SCORES, CLEAN)
    assert rel == pytest.approx({"fog": 0.6, "snow": 0.4}, abs=1e-15)


def test_severities_argument_selects_what_is_averaged() -> None:
    # Severities outside the requested ones are left out, not averaged in.
    scores = {"a": {1: 1.0, 2: 0.0, 3: 0.0}, "b": {1: 1.0, 2: 1.0, 3: 1.0}}
    assert mean_performance(scores) == pytest.approx((1 / 3 + 1) / 2)
    assert mean_performance(scores, severities=[1]) == 1.0


def test_summary_agrees_with_the_functions() -> None:
    r = robustness(SCORES, CLEAN)
    assert r.mpc == mean_performance(SCORES)
    assert r.rpc == relative_performance(SCORES, CLEAN)
    assert r.perturbations == ("fog", "snow")
    assert r.severities == (1, 2, 3, 4, 5)
    assert r.scores.shape == (2, 5)
    assert r.scores[1].tolist() == [0.30, 0.20, 0.15, 0.10, 0.05]
    assert r.reason is None
    # The mean of the per-perturbation rpc is rPC.
    assert float(r.relative.mean()) == pytest.approx(r.rpc, abs=1e-15)
    assert r.per_perturbation()["fog"] == pytest.approx((0.24, 0.6))
    with pytest.raises(ValueError, match="read-only"):
        r.scores[0, 0] = 1.0


@pytest.mark.parametrize(
    ("clean", "reason"),
    [
        (0.0, "clean performance is 0: the model fails on clean data"),
        (-1.0, "-1 is COCO's 'no ground truth' marker"),
        (float("nan"), "clean performance is nan"),
        (float("inf"), "not a finite number"),
    ],
)
def test_undefined_clean_gives_nan_with_a_reason(clean: float, reason: str) -> None:
    assert math.isnan(relative_performance(SCORES, clean))
    assert all(math.isnan(v) for v in relative_perturbation_performance(SCORES, clean).values())
    r = robustness(SCORES, clean)
    assert math.isnan(r.rpc)
    assert np.isnan(r.relative).all()
    assert r.mpc == pytest.approx(0.20)  # mPC needs no clean number
    assert r.reason is not None
    assert reason in r.reason
    assert clean_undefined_reason(clean) == r.reason


def test_missing_severities_are_named() -> None:
    scores = {"fog": {1: 0.3, 2: 0.2, 3: 0.1}, "snow": {1: 0.3}, "rain": {1: 0.1, 3: 0.1}}
    with pytest.raises(ConfigError) as info:
        mean_performance(scores)
    msg = str(info.value)
    assert "'snow' lacks severity 2, 3" in msg
    assert "'rain' lacks severity 2" in msg
    assert "'fog'" not in msg
    assert "1, 2, 3" in msg


def test_explicit_severities_insist_on_completeness() -> None:
    four = {"fog": dict.fromkeys((1, 2, 3, 4), 0.1), "snow": dict.fromkeys((1, 2, 3, 4), 0.2)}
    assert mean_performance(four) == pytest.approx(0.15)  # consistent, so accepted
    with pytest.raises(ConfigError, match="'fog' lacks severity 5; 'snow' lacks severity 5"):
        mean_performance(four, severities=(1, 2, 3, 4, 5))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_perturbed_scores_are_refused(bad: float) -> None:
    scores = {"fog": {1: 0.3, 2: bad}}
    with pytest.raises(ConfigError, match="'fog' at severity 2"):
        mean_performance(scores)


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least one perturbation"):
        mean_performance({})
    with pytest.raises(ConfigError, match="no severities"):
        mean_performance({"fog": {}})
    with pytest.raises(ConfigError, match="perturbation -> "):
        mean_performance({"fog": [0.1, 0.2]})  # type: ignore[dict-item]


def test_arrays_match_the_mapping_version() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(7, 3, 5))
    clean = rng.uniform(0.1, 1, size=7)
    clean[2] = 0.0
    mpc, rpc = relative_performance_arrays(clean, p)
    for b in range(7):
        scores = {f"c{c}": {s + 1: float(p[b, c, s]) for s in range(5)} for c in range(3)}
        assert mpc[b] == pytest.approx(mean_performance(scores), abs=1e-15)
        if b == 2:
            assert math.isnan(rpc[b])
        else:
            assert rpc[b] == pytest.approx(relative_performance(scores, clean[b]), abs=1e-15)


def test_arrays_check_shapes_and_values() -> None:
    with pytest.raises(ShapeError, match=r"clean\.shape \+ \(C, S\)"):
        relative_performance_arrays([0.5, 0.5], np.ones((3, 2, 5)))
    with pytest.raises(ShapeError):
        relative_performance_arrays(0.5, np.ones(5))
    with pytest.raises(ConfigError, match="finite numbers >= 0"):
        relative_performance_arrays(0.5, [[0.1, -1.0]])
    mpc, rpc = relative_performance_arrays(0.5, [[0.1, 0.3]])
    assert mpc.shape == ()
    assert float(rpc) == pytest.approx(0.4)
