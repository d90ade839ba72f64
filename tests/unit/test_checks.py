"""Quality gates: bounds, baseline checks on paired replicates, JUnit XML, annotations."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brittle.checks import (
    CheckOutcome,
    RunData,
    exit_code,
    github_annotations,
    junit_xml,
    load_run,
    run_checks,
)
from brittle.errors import ConfigError
from brittle.results import Results, dump_json
from brittle.run import aggregate
from brittle.run.aggregate import ModelScores, Stat
from brittle.suitefile import Check

B = 201  # replicates
FAMILY = {"motion_blur": "blur", "defocus_blur": "blur", "gaussian_noise": "noise"}
META = {"images": "digest-a", "resamples": B, "bootstrap_seed": 0, "conf": 0.3, "strictness": 0.75}


# ---------------------------------------------------------------- results.json, by hand


def _clean(map50_95: float) -> dict[str, Any]:
    stats = ["map75", "map_small", "map_medium", "map_large", "ar1", "ar10", "ar100"]
    stats += ["ar_small", "ar_medium", "ar_large"]
    return {"map50_95": map50_95, "map50": map50_95 + 0.2, **dict.fromkeys(stats, 0.0),
            "per_class": {}}  # fmt: skip


def _pert(rpc: float | None, consistency: float = 0.9, affected: float = 0.1) -> dict[str, Any]:
    return {"rpc": rpc, "consistency": consistency, "affected_fraction": affected,
            "degradation": 0.0, "severities": {}}  # fmt: skip


def _model(
    perts: dict[str, dict[str, Any]] | None = None,
    clean: float | None = 0.5,
    risk: float | None = 20.0,
) -> dict[str, Any]:
    perts = perts or {}
    fams: dict[str, dict[str, Any]] = {}
    for p, r in sorted(perts.items()):
        f = fams.setdefault(FAMILY[p], {**r, "perturbations": []})
        f["perturbations"].append(p)
        if r["rpc"] is not None and f["rpc"] is not None:
            n = len(f["perturbations"])
            f["rpc"] = (f["rpc"] * (n - 1) + r["rpc"]) / n
    return {
        "spec": "m.onnx", "kind": "onnx", "fingerprint": "f", "class_names": [],
        "class_map": None, "evaluated_classes": [], "unevaluated_classes": [],
        "dropped_detections": 0, "clean": None if clean is None else _clean(clean),
        "perturbations": {p: {**r, "family": FAMILY[p]} for p, r in perts.items()},
        "families": {f: {k: v for k, v in r.items() if k not in ("severities", "family")}
                     for f, r in fams.items()},
        "risk": None if risk is None else {"value": risk, "basis": "rpc"},
    }  # fmt: skip


def _results(models: dict[str, dict[str, Any]], level: float | None = 0.95) -> Results:
    suite = None
    if level is not None:
        suite = {"name": "quick", "seed": 0, "operating_conf": 0.3, "strictness": 0.75,
                 "perturbations": {}, "versions": {},
                 "bootstrap": {"resamples": B, "seed": 0, "level": level}}  # fmt: skip
    dataset = {"name": "d", "path": "d", "format": "yolo", "image_count": 10,
               "class_names": ["a"]}  # fmt: skip
    doc = {"schema_version": "1.2", "brittle_version": "0", "settings": {}, "suite": suite,
           "dataset": dataset, "models": models}  # fmt: skip
    return Results.model_validate(doc)


def _run(**models: dict[str, Any]) -> RunData:
    return RunData(_results(models))


def _one(check: Check, current: RunData, baseline: RunData | None = None) -> CheckOutcome:
    [outcome] = run_checks([check], current, baseline)
    return outcome


# ---------------------------------------------------------------- bounds


def test_a_minimum_passes_and_fails_with_the_numbers() -> None:
    run = _run(
        yolox=_model({"motion_blur": _pert(0.412)}), detr=_model({"motion_blur": _pert(0.7)})
    )
    check = Check(metric="rpc", perturbation="motion_blur", min=0.5)
    out = _one(check, run)
    assert out.status == "fail"
    assert out.message == "yolox: rpc on motion_blur = 0.412 < min 0.5"
    assert out.details == ("yolox: rpc on motion_blur = 0.412 < min 0.5",)
    assert out.label == "rpc motion_blur min 0.5"
    passing = _one(Check(metric="rpc", perturbation="motion_blur", min=0.4), run)
    assert passing.status == "pass"
    assert passing.message == "all 2 pass; closest: yolox: rpc on motion_blur = 0.412 (min 0.4)"
    assert passing.details == ()
    only_detr = _one(Check(metric="rpc", perturbation="motion_blur", min=0.5, models=["detr"]), run)
    assert only_detr.status == "pass"
    assert only_detr.message == "detr: rpc on motion_blur = 0.7 (min 0.5)"


def test_model_level_metrics_and_both_bounds() -> None:
    run = _run(yolox=_model(clean=0.31, risk=42.13))
    assert _one(Check(metric="risk", max=40), run).message == "yolox: risk = 42.1 > max 40"
    assert _one(Check(metric="risk", min=10, max=50), run).status == "pass"
    low = _one(Check(metric="clean_map50_95", min=0.35, max=0.9), run)
    assert (low.status, low.message) == ("fail", "yolox: clean_map50_95 = 0.31 < min 0.35")
    assert _one(Check(metric="clean_map50", min=0.5), run).status == "pass"  # 0.51


def test_values_near_a_bound_get_enough_digits_to_tell_them_apart() -> None:
    run = _run(m=_model({"motion_blur": _pert(0.49996)}))
    out = _one(Check(metric="rpc", perturbation="motion_blur", min=0.5), run)
    assert out.message == "m: rpc on motion_blur = 0.49996 < min 0.5"


def test_every_perturbation_and_families_in_sorted_order() -> None:
    perts = {
        "motion_blur": _pert(0.8, affected=0.6),
        "gaussian_noise": _pert(0.5, affected=0.9),
        "defocus_blur": _pert(0.6, affected=0.2),
    }
    run = _run(b=_model(perts), a=_model({"motion_blur": _pert(0.9, affected=0.55)}))
    out = _one(Check(metric="affected_fraction", max=0.5), run)
    assert out.status == "fail"
    assert out.message == (
        "3 violations; worst: b: affected_fraction on gaussian_noise = 0.9 > max 0.5"
    )
    assert out.details == (
        "a: affected_fraction on motion_blur = 0.55 > max 0.5",
        "b: affected_fraction on gaussian_noise = 0.9 > max 0.5",
        "b: affected_fraction on motion_blur = 0.6 > max 0.5",
    )
    fam = _one(Check(metric="rpc", family="blur", min=0.75, models=["b"]), run)
    assert fam.message == "b: rpc on family blur = 0.7 < min 0.75"


def test_on_fail_warn_warns_and_does_not_fail_the_build() -> None:
    run = _run(m=_model({"motion_blur": _pert(0.9, consistency=0.8)}))
    out = _one(Check(metric="consistency", min=0.85, on_fail="warn"), run)
    assert (out.status, out.message) == ("warn", "m: consistency on motion_blur = 0.8 < min 0.85")
    assert exit_code([out]) == 0


@pytest.mark.parametrize(
    ("check", "model", "why"),
    [
        (Check(metric="rpc", min=0.5), _model({"motion_blur": _pert(None)}), "is undefined"),
        (Check(metric="clean_map50_95", min=0.1), _model(clean=None), "unlabeled images"),
        (Check(metric="risk", max=50), _model(risk=None), "no perturbation suite"),
        (Check(metric="rpc", min=0.1), _model(), "the run has no perturbations"),
        (
            Check(metric="rpc", perturbation="defocus_blur", min=0.1),
            _model({"motion_blur": _pert(0.9)}),
            "m: rpc on defocus_blur is not in the run's suite",
        ),
        (
            Check(metric="rpc", family="weather", min=0.1),
            _model({"motion_blur": _pert(0.9)}),
            "m: rpc on family weather is not in the run's suite",
        ),
    ],
)
def test_a_gate_that_cannot_be_evaluated_fails_even_when_it_would_only_warn(
    check: Check, model: dict[str, Any], why: str
) -> None:
    warn_only = check.model_copy(update={"on_fail": "warn"})
    for c in (check, warn_only):
        out = _one(c, _run(m=model))
        assert out.status == "fail"
        assert why in out.message
        assert why in out.details[0]


def test_an_unknown_model_fails_by_name() -> None:
    out = _one(Check(metric="risk", max=50, models=["yolo", "m"]), _run(m=_model()))
    assert out.status == "fail"
    assert out.message == "yolo: no such model in the run (models: m)"


# ---------------------------------------------------------------- baseline checks


def _pair(base: float, delta: float, spread: float) -> tuple[Stat, Stat]:
    """A baseline and a current statistic whose paired difference is ``delta`` with
    replicates spread evenly over ``delta +- spread`` (the 95% CI is about +- 0.95 spread)."""
    rng = np.random.default_rng(0)
    base_reps = base + rng.normal(0, 5 * max(spread, 0.01), B)  # large, but cancels in pairs
    d_reps = delta + np.linspace(-spread, spread, B)
    return Stat(base, base_reps), Stat(base + delta, base_reps + d_reps)


def _scores(rpc: Stat | None = None, risk: Stat | None = None, **stats: Stat) -> ModelScores:
    pert = {"consistency": Stat(0.9, np.full(B, 0.9)), **stats}
    if rpc is not None:
        pert["rpc"] = rpc
    s = ModelScores("rpc", Stat(0.5, np.full(B, 0.5)), Stat(0.7, np.full(B, 0.7)), risk=risk)
    s.cells[("motion_blur", 3)] = dict(pert)
    s.perturbations["motion_blur"] = pert
    s.families["blur"] = pert
    s.family_members["blur"] = ["motion_blur"]
    return s


def _runs(
    base: dict[str, ModelScores], cur: dict[str, ModelScores], **meta: Any
) -> tuple[RunData, RunData]:
    results = _results({m: _model({"motion_blur": _pert(0.9)}) for m in cur})
    baseline = RunData(_results({m: _model() for m in base}), dict(META), base)
    return RunData(results, {**META, **meta}, cur), baseline


REGRESSION = Check(metric="rpc", perturbation="motion_blur", no_regression=0.02)


def test_no_regression_fails_only_when_the_paired_interval_excludes_the_tolerance() -> None:
    base, cur = _pair(0.8, -0.1, 0.02)  # a real drop: CI about [-0.119, -0.081]
    out = _one(REGRESSION, *_runs({"m": _scores(base)}, {"m": _scores(cur)}))
    assert out.status == "fail"
    assert out.message.startswith(
        "m: rpc on motion_blur regressed: 0.8 -> 0.7 (change -0.1, 95% CI"
    )
    assert out.message.endswith("a loss beyond the tolerance 0.02")

    base, cur = _pair(0.8, -0.05, 0.1)  # the point drops, but within noise
    out = _one(REGRESSION, *_runs({"m": _scores(base)}, {"m": _scores(cur)}))
    assert out.status == "warn"
    assert "possible regression, not significant: 0.8 -> 0.75 (change -0.05" in out.message

    for delta, spread in ((0.05, 0.02), (-0.01, 0.005)):  # better; or worse within tolerance
        base, cur = _pair(0.8, delta, spread)
        out = _one(REGRESSION, *_runs({"m": _scores(base)}, {"m": _scores(cur)}))
        assert out.status == "pass", out.message
        assert out.details == ()


@pytest.mark.parametrize(
    ("delta", "spread", "status"),
    [(10.0, 2.0, "fail"), (5.0, 10.0, "warn"), (-5.0, 2.0, "pass"), (1.0, 0.5, "pass")],
)
def test_no_regression_is_mirrored_for_lower_is_better(
    delta: float, spread: float, status: str
) -> None:
    base, cur = _pair(30.0, delta, spread)
    check = Check(metric="risk", no_regression=2)
    out = _one(check, *_runs({"m": _scores(risk=base)}, {"m": _scores(risk=cur)}))
    assert out.status == status, out.message
    assert f"30 -> {30 + delta:g}" in out.message
    warn_only = _one(
        check.model_copy(update={"on_fail": "warn"}),
        *_runs({"m": _scores(risk=base)}, {"m": _scores(risk=cur)}),
    )
    assert warn_only.status == ("warn" if status == "fail" else status)


def test_affected_fraction_regression_over_every_perturbation() -> None:
    base, cur = _pair(0.2, 0.1, 0.01)  # more images affected: worse
    current, baseline = _runs(
        {"m": _scores(affected_fraction=base)}, {"m": _scores(affected_fraction=cur)}
    )
    out = _one(Check(metric="affected_fraction", no_regression=0.05), current, baseline)
    assert out.status == "fail"
    assert out.message.startswith("m: affected_fraction on motion_blur regressed: 0.2 -> 0.3")


def test_better_than_baseline_needs_the_interval_to_exclude_zero() -> None:
    check = Check(metric="rpc", family="blur", better_than_baseline=True)
    for delta, spread, status in ((0.05, 0.02, "pass"), (0.05, 0.1, "fail"), (-0.05, 0.01, "fail")):
        base, cur = _pair(0.6, delta, spread)
        out = _one(check, *_runs({"m": _scores(base)}, {"m": _scores(cur)}))
        assert out.status == status, out.message
        word = "is better" if status == "pass" else "is not significantly better"
        assert out.message.startswith(f"m: rpc on family blur {word} than the baseline: 0.6 ->")
    base, cur = _pair(30.0, -5.0, 2.0)  # lower risk is better
    risk = Check(metric="risk", better_than_baseline=True)
    assert _one(risk, *_runs({"m": _scores(risk=base)}, {"m": _scores(risk=cur)})).status == "pass"
    base, cur = _pair(30.0, 5.0, 2.0)
    assert _one(risk, *_runs({"m": _scores(risk=base)}, {"m": _scores(risk=cur)})).status == "fail"


def test_the_level_comes_from_the_run_unless_given() -> None:
    base, cur = _pair(0.8, -0.05, 0.0305)  # 95% CI high about -0.021; 50% CI high -0.035
    current, baseline = _runs({"m": _scores(base)}, {"m": _scores(cur)})
    assert _one(REGRESSION, current, baseline).status == "fail"
    [wide] = run_checks([REGRESSION], current, baseline, level=0.999)
    assert wide.status == "warn"
    assert "99.9% CI" in wide.message


def test_a_new_model_warns_and_a_model_without_replicates_fails() -> None:
    base, cur = _pair(0.8, 0.0, 0.01)
    current, baseline = _runs({"old": _scores(base)}, {"old": _scores(cur), "new": _scores(cur)})
    out = _one(REGRESSION, current, baseline)
    assert out.status == "warn"
    assert out.details == ("new: new model, nothing to compare (not in the baseline)",)
    missing = _one(REGRESSION.model_copy(update={"models": ["ghost"]}), current, baseline)
    assert (missing.status, missing.message) == (
        "fail",
        "ghost: no such model in the run (models: new, old)",
    )


def test_an_undefined_rpc_in_either_run_fails() -> None:
    _, cur = _pair(0.8, 0.0, 0.01)
    out = _one(REGRESSION, *_runs({"m": _scores()}, {"m": _scores(cur)}))
    assert out.status == "fail"
    assert out.message == (
        "m: rpc on motion_blur is undefined (unlabeled images, or a clean mAP of 0) in the baseline"
    )


@pytest.mark.parametrize(
    ("meta", "why"),
    [
        ({"images": "digest-b"}, "different images or ground truth ('digest-b' vs baseline"),
        ({"resamples": 500}, "a different number of bootstrap resamples (500 vs baseline 201)"),
        ({"bootstrap_seed": 1}, "a different bootstrap seed"),
    ],
)
def test_runs_that_cannot_be_paired_fail_with_the_reason(meta: dict[str, Any], why: str) -> None:
    base, cur = _pair(0.8, 0.1, 0.01)
    out = _one(REGRESSION, *_runs({"m": _scores(base)}, {"m": _scores(cur)}, **meta))
    assert out.status == "fail"
    assert out.message.startswith("the runs cannot be compared: ")
    assert why in out.message


def test_strictness_matters_only_for_affected_fraction() -> None:
    base, cur = _pair(0.2, 0.0, 0.01)
    runs = _runs(
        {"m": _scores(base, affected_fraction=base)},
        {"m": _scores(cur, affected_fraction=cur)},
        strictness=0.5,
    )
    assert _one(REGRESSION, *runs).status == "pass"
    out = _one(Check(metric="affected_fraction", no_regression=0.01), *runs)
    assert "a different strictness (0.5 vs baseline 0.75)" in out.message


def test_baseline_checks_need_a_baseline_with_replicates() -> None:
    base, cur = _pair(0.8, 0.1, 0.01)
    current, baseline = _runs({"m": _scores(base)}, {"m": _scores(cur)})
    out = _one(REGRESSION, current)
    assert (out.status, out.message) == ("fail", "needs a baseline run: pass --baseline RUN_DIR")
    out = _one(REGRESSION, current, RunData(baseline.results))
    assert out.status == "fail"
    assert out.message.startswith("the baseline run has no replicates.npz")
    out = _one(REGRESSION, RunData(current.results), baseline)
    assert out.message.startswith("the current run has no replicates.npz")


# ---------------------------------------------------------------- run directories


def _write_run(path: Path, scores: dict[str, ModelScores], images: str) -> Path:
    from brittle.evaluate import RunOptions
    from brittle.run.scoring import ScoreOptions

    path.mkdir()
    results = _results({m: _model({"motion_blur": _pert(0.9)}) for m in scores})
    dump_json(results.model_dump(mode="json"), path / "results.json")
    opts = RunOptions(scoring=ScoreOptions(resamples=B))
    aggregate.save_replicates(path / aggregate.REPLICATES_FILE, scores, images, opts)
    return path


def test_load_run_reads_both_files_and_checks_pair_across_runs(tmp_path: Path) -> None:
    base, cur = _pair(0.8, -0.1, 0.02)
    baseline = load_run(_write_run(tmp_path / "base", {"m": _scores(base)}, "digest-a"))
    current = load_run(_write_run(tmp_path / "cur", {"m": _scores(cur)}, "digest-a"))
    assert current.meta is not None
    assert current.meta["images"] == "digest-a"
    assert _one(REGRESSION, current, baseline).status == "fail"
    other = load_run(_write_run(tmp_path / "other", {"m": _scores(cur)}, "digest-b"))
    out = _one(REGRESSION, other, baseline)
    assert out.status == "fail"
    assert "different images or ground truth" in out.message
    (tmp_path / "cur" / aggregate.REPLICATES_FILE).unlink()
    eval_run = load_run(tmp_path / "cur")
    assert eval_run.scores is None
    assert eval_run.meta is None


def test_load_run_names_the_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"results\.json: no such file"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"results\.json: not a results\.json"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match=str(tmp_path / "results.json")):
        load_run(tmp_path)


# ---------------------------------------------------------------- reports


def _outcomes() -> list[CheckOutcome]:
    run = _run(
        yolox=_model({"motion_blur": _pert(0.412, consistency=0.8)}, risk=30),
        detr=_model({"motion_blur": _pert(0.3)}, risk=45),
    )
    checks = [
        Check(metric="risk", max=40),
        Check(metric="rpc", perturbation="motion_blur", min=0.2),
        Check(metric="consistency", min=0.85, on_fail="warn", name='weird <&> "name"\x01'),
        Check(metric="rpc", min=0.5),
    ]
    return run_checks(checks, run)


def test_exit_code() -> None:
    outcomes = _outcomes()
    assert [o.status for o in outcomes] == ["fail", "pass", "warn", "fail"]
    assert exit_code(outcomes) == 1
    assert exit_code(outcomes[1:3]) == 0
    assert exit_code([]) == 0


def test_junit_xml_has_one_case_per_check_and_the_failure_with_its_numbers() -> None:
    outcomes = _outcomes()
    text = junit_xml(outcomes, suite_name="ci & co")
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    [suite] = root
    assert suite.get("name") == "ci & co"
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "risk max 40",
        "rpc motion_blur min 0.2",
        'weird <&> "name"\ufffd',
        "rpc min 0.5",
    ]
    assert {c.get("classname") for c in cases} == {"brittle.checks"}
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "detr: risk = 45 > max 40"
    assert failure.text == "detr: risk = 45 > max 40"
    assert cases[1].find("failure") is None
    warn = cases[2].find("system-out")
    assert warn is not None
    assert warn.text is not None
    assert warn.text.startswith("WARNING: ")
    assert "0.8 < min 0.85" in warn.text
    several = cases[3].find("failure")
    assert several is not None
    assert several.get("message") == "2 violations; worst: detr: rpc on motion_blur = 0.3 < min 0.5"
    assert several.text == "\n".join(
        [
            "2 violations; worst: detr: rpc on motion_blur = 0.3 < min 0.5",
            "detr: rpc on motion_blur = 0.3 < min 0.5",
            "yolox: rpc on motion_blur = 0.412 < min 0.5",
        ]
    )


def test_junit_test_names_stay_unique_and_attributes_keep_newlines() -> None:
    outcomes = [CheckOutcome(i, "same", "fail", "a\nb\t%") for i in range(2)]
    text = junit_xml(outcomes)
    assert text == junit_xml(outcomes)
    root = ET.fromstring(text)
    assert [c.get("name") for c in root.iter("testcase")] == ["same (check 0)", "same (check 1)"]
    assert [f.get("message") for f in root.iter("failure")] == ["a\nb\t%"] * 2


def test_junit_xml_parses_with_junitparser(tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    path = tmp_path / "brittle.xml"
    path.write_text(junit_xml(_outcomes()))
    xml = junitparser.JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    assert suite.tests == 4
    assert suite.failures == 2
    cases = list(suite)
    assert cases[0].name == "risk max 40"
    assert not cases[0].is_passed
    assert cases[1].is_passed


def test_github_annotations_escape_percent_signs_and_newlines() -> None:
    outcomes = [
        CheckOutcome(0, "rpc 50%", "fail", "a\nb\r\nc: d, e"),
        CheckOutcome(1, "ok", "pass", "fine"),
        CheckOutcome(2, "soft", "warn", "drop of 5%"),
    ]
    assert github_annotations(outcomes) == [
        "::error title=brittle check::rpc 50%25: a%0Ab%0D%0Ac: d, e",
        "::warning title=brittle check::soft: drop of 5%25",
    ]
    for line in github_annotations(_outcomes()):
        assert "\n" not in line
