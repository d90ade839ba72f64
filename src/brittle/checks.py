"""Quality gates: evaluate a suite file's ``checks`` on a run, for CI.

Each :class:`~brittle.suitefile.Check` gives one :class:`CheckOutcome`: ``pass``, ``warn``
or ``fail``, a one-line message with the numbers and, in ``details``, every problem found.
:func:`exit_code` turns outcomes into the build's verdict, :func:`junit_xml` and
:func:`github_annotations` into what CI systems display.

**Bounds** (``min`` / ``max``) read ``results.json``, per model (``models``, default every
model of the run) and per target: the ``perturbation``, the ``family``, or, for rpc /
consistency / affected_fraction with neither, every perturbation of the model;
clean_map50_95, clean_map50 and risk are one number per model. A value outside a bound is
a violation, and any violation gives the check its ``on_fail`` status.

**Baseline checks** (``no_regression: t`` / ``better_than_baseline``) need a baseline run,
and ``replicates.npz`` in both runs (only ``brittle run`` with a suite writes it), made over
the same images and ground truth with the same bootstrap (resamples, seed); consistency,
affected_fraction and risk also need the same operating confidence, affected_fraction the
same strictness. Then ``d = current - baseline`` is paired resample by resample, with its
percentile interval at ``level`` (default: the current run's ``suite.bootstrap.level``, else
0.95). rpc, consistency and clean mAP are better higher; affected_fraction and risk lower.
``no_regression`` fails (``on_fail``) only when the whole interval shows a loss larger than
``t`` (``ci.high < -t``, or ``ci.low > t`` for lower-is-better; ``t`` is in the metric's own
units, risk points for risk), warns when only the point estimate does ("possible
regression, not significant"), and passes otherwise. ``better_than_baseline`` passes only
when the interval excludes 0 on the better side. A model absent from the baseline, or a
perturbation / family absent from its suite, warns: nothing to compare.

**A gate that cannot be evaluated fails**, whatever ``on_fail`` says: a model not in the
run, a perturbation or family not in its suite, an undefined metric (rpc on unlabeled
images or with a clean mAP of 0, clean mAP of unlabeled images, risk of a run without a
suite), a missing baseline or replicates, runs that are not comparable. Models and targets
are taken in sorted order, so outcomes are deterministic.

>>> from brittle.suitefile import Check
>>> model = {"spec": "m.onnx", "kind": "onnx", "fingerprint": "f", "class_names": [],
...          "class_map": None, "evaluated_classes": [], "unevaluated_classes": [],
...          "dropped_detections": 0, "clean": None,
...          "risk": {"value": 42.5, "basis": "consistency"}}
>>> results = Results.model_validate({"schema_version": "1.2", "brittle_version": "0",
...     "dataset": {"name": "d", "path": "d", "format": "folder", "image_count": 1,
...                 "class_names": []}, "settings": {}, "models": {"yolox": model}})
>>> checks = [Check(metric="risk", max=40), Check(metric="risk", max=50)]
>>> [(o.status, o.message) for o in run_checks(checks, RunData(results))]
[('fail', 'yolox: risk = 42.5 > max 40'), ('pass', 'yolox: risk = 42.5 (max 50)')]
>>> exit_code(run_checks(checks, RunData(results)))
1
>>> print(*github_annotations(run_checks(checks, RunData(results))))
::error title=brittle check::risk max 40: yolox: risk = 42.5 > max 40
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from brittle.errors import ConfigError
from brittle.results import ModelResult, Results
from brittle.run import aggregate
from brittle.run.aggregate import ModelScores, Stat
from brittle.suitefile import Check

__all__ = [
    "CheckOutcome",
    "RunData",
    "Status",
    "exit_code",
    "github_annotations",
    "junit_xml",
    "load_run",
    "run_checks",
]

Status = Literal["pass", "warn", "fail"]
_Kind = Literal["ok", "warn", "violation", "error"]


@dataclass(frozen=True)
class CheckOutcome:
    """The outcome of ``checks[index]``; ``details`` lists every problem found."""

    index: int
    label: str
    status: Status
    message: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunData:
    """A run's ``results.json`` and, for ``brittle run``, its replicates (else None)."""

    results: Results
    meta: dict[str, Any] | None = None
    scores: dict[str, ModelScores] | None = None


@dataclass(frozen=True)
class _Finding:
    kind: _Kind
    text: str
    badness: float = 0.0  # how far on the wrong side: the worst is named in the message


def load_run(run_dir: Path) -> RunData:
    """Read ``results.json`` and, when present, ``replicates.npz`` of a run directory."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; is {run_dir} a brittle run directory?")
    try:
        results = Results.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a results.json this brittle can read: {exc}") from None
    reps = run_dir / aggregate.REPLICATES_FILE
    if not reps.is_file():
        return RunData(results)
    try:
        meta, scores = aggregate.load_replicates(reps)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{reps}: cannot read the replicates: {exc}") from None
    return RunData(results, meta, scores)


_LOWER_IS_BETTER = ("affected_fraction", "risk")  # the others: clean_*, rpc, consistency
_CLEAN = ("clean_map50_95", "clean_map50")
_NO_CLEAN = "undefined: no clean mAP (unlabeled images)"
_NO_RISK = "undefined: no risk score (the run had no perturbation suite)"
_NO_RPC = "undefined (unlabeled images, or a clean mAP of 0)"
_SAME = {  # what two runs must share for a paired comparison, and the words for a difference
    "images": "different images or ground truth",
    "resamples": "a different number of bootstrap resamples",
    "bootstrap_seed": "a different bootstrap seed",
    "conf": "a different operating confidence",
    "strictness": "a different strictness",
}
_METRIC_KEYS = {
    "consistency": ("conf",),
    "affected_fraction": ("conf", "strictness"),
    "risk": ("conf",),
}

Target = tuple[str, str]  # ("model", ""), ("perturbation", name) or ("family", name)


def _targets(check: Check, perturbations: Collection[str]) -> list[Target]:
    if check.metric in (*_CLEAN, "risk"):
        return [("model", "")]
    if check.perturbation is not None:
        return [("perturbation", check.perturbation)]
    if check.family is not None:
        return [("family", check.family)]
    return [("perturbation", p) for p in sorted(perturbations)]


def _where(model: str, metric: str, target: Target) -> str:
    kind, name = target
    on = {"model": "", "perturbation": f" on {name}", "family": f" on family {name}"}[kind]
    return f"{model}: {metric}{on}"


def _num(x: float, ref: float | None = None, sign: str = "") -> str:
    """``x`` to 3 significant digits, or more when needed to tell it from ``ref``."""
    for digits in range(3, 13):
        s = f"{x:{sign}.{digits}g}"
        if ref is None or (float(s) < ref, float(s) > ref) == (x < ref, x > ref):
            return s
    return repr(x)


def _value(m: ModelResult, metric: str, target: Target) -> float | str:
    """The value in results.json, or why there is none (completing "<where> is ...")."""
    kind, name = target
    if metric in _CLEAN:
        if m.clean is None:
            return _NO_CLEAN
        v = m.clean.map50_95 if metric == "clean_map50_95" else m.clean.map50
        return v if v >= 0 else "undefined: no ground truth to score"
    if metric == "risk":
        return _NO_RISK if m.risk is None else m.risk.value
    table: Mapping[str, Any] = m.perturbations if kind == "perturbation" else m.families
    if name not in table:
        return "not in the run's suite"
    v = getattr(table[name], metric)
    return _NO_RPC if v is None else float(v)


def _bound(check: Check, where: str, v: float) -> _Finding:
    excess = []
    if check.min is not None:
        excess.append((check.min - v, f"< min {check.min:g}", check.min))
    if check.max is not None:
        excess.append((v - check.max, f"> max {check.max:g}", check.max))
    worst, words, ref = max(excess)
    if worst > 0:
        return _Finding("violation", f"{where} = {_num(v, ref)} {words}", worst)
    bounds = ", ".join(
        f"{k} {b:g}" for k, b in (("min", check.min), ("max", check.max)) if b is not None
    )
    return _Finding("ok", f"{where} = {_num(v, ref)} ({bounds})", worst)


def _unknown_model(model: str, known: Collection[str]) -> _Finding:
    names = ", ".join(sorted(known)) or "none"
    return _Finding("error", f"{model}: no such model in the run (models: {names})")


def _no_perturbations(model: str, metric: str) -> _Finding:
    return _Finding("error", f"{model}: {metric}: the run has no perturbations (no suite was run)")


def _bounds(check: Check, model: str, results: Results) -> list[_Finding]:
    m = results.models.get(model)
    if m is None:
        return [_unknown_model(model, results.models)]
    targets = _targets(check, m.perturbations)
    if not targets:
        return [_no_perturbations(model, check.metric)]
    out = []
    for target in targets:
        where = _where(model, check.metric, target)
        v = _value(m, check.metric, target)
        out.append(
            _Finding("error", f"{where} is {v}") if isinstance(v, str) else _bound(check, where, v)
        )
    return out


def _has(s: ModelScores, target: Target) -> bool:
    kind, name = target
    return kind == "model" or name in (s.perturbations if kind == "perturbation" else s.families)


def _stat(s: ModelScores, metric: str, target: Target) -> Stat | str:
    kind, name = target
    if metric in _CLEAN:
        st, why = (s.clean_map if metric == "clean_map50_95" else s.clean_map50), _NO_CLEAN
    elif metric == "risk":
        st, why = s.risk, _NO_RISK
    else:
        table = s.perturbations if kind == "perturbation" else s.families
        st, why = table.get(name, {}).get(metric), _NO_RPC
    return st if st is not None and st.defined else why


def _paired(check: Check, where: str, cur: Stat, base: Stat, level: float) -> _Finding:
    d = cur - base
    ci = d.ci(level)
    if ci is None or not d.defined:
        return _Finding("error", f"{where}: the difference from the baseline is undefined")
    sign = -1.0 if check.metric in _LOWER_IS_BETTER else 1.0
    gain, gain_low = sign * d.value, min(sign * ci[0], sign * ci[1])
    gain_high = max(sign * ci[0], sign * ci[1])
    t = check.no_regression
    ref = 0.0 if t is None else -sign * t
    change = (
        f"{_num(base.value)} -> {_num(cur.value)} (change {_num(d.value, ref, '+')}, "
        f"{100 * level:g}% CI [{_num(ci[0], ref)}, {_num(ci[1], ref)}])"
    )
    if t is None:  # better_than_baseline
        if gain_low > 0:
            return _Finding("ok", f"{where} is better than the baseline: {change}", -gain_low)
        return _Finding(
            "violation",
            f"{where} is not significantly better than the baseline: {change}",
            -gain_low,
        )
    if gain_high < -t:
        return _Finding(
            "violation", f"{where} regressed: {change}, a loss beyond the tolerance {t:g}", -gain
        )
    if gain < -t:
        return _Finding(
            "warn",
            f"{where}: possible regression, not significant: {change}; tolerance {t:g}",
            -gain,
        )
    return _Finding("ok", f"{where}: {change}", -gain)


def _comparable(check: Check, current: RunData, baseline: RunData | None) -> str | None:
    if baseline is None:
        return "needs a baseline run: pass --baseline RUN_DIR"
    for run, which in ((current, "the current run"), (baseline, "the baseline run")):
        if run.meta is None or run.scores is None:
            return (
                f"{which} has no {aggregate.REPLICATES_FILE} (only `brittle run` with a suite "
                "writes it); a baseline check needs the replicates of both runs"
            )
    assert current.meta is not None
    assert baseline.meta is not None
    for k in ("images", "resamples", "bootstrap_seed", *_METRIC_KEYS.get(check.metric, ())):
        a, b = current.meta.get(k), baseline.meta.get(k)
        if a != b:
            return f"the runs cannot be compared: {_SAME[k]} ({a!r} vs baseline {b!r})"
    return None


def _versus(
    check: Check, model: str, current: RunData, baseline: RunData, level: float
) -> list[_Finding]:
    assert current.scores is not None
    assert baseline.scores is not None
    cur = current.scores.get(model)
    if cur is None:
        if model not in current.results.models:
            return [_unknown_model(model, current.results.models)]
        return [_Finding("error", f"{model}: no replicates of this model in the current run")]
    base = baseline.scores.get(model)
    if base is None:
        return [_Finding("warn", f"{model}: new model, nothing to compare (not in the baseline)")]
    targets = _targets(check, cur.perturbations)
    if not targets:
        return [_no_perturbations(model, check.metric)]
    out = []
    for target in targets:
        where = _where(model, check.metric, target)
        c, b = _stat(cur, check.metric, target), _stat(base, check.metric, target)
        if not _has(cur, target):
            out.append(_Finding("error", f"{where} is not in the run's suite"))
        elif not _has(base, target):
            out.append(
                _Finding("warn", f"{where} is not in the baseline's suite, nothing to compare")
            )
        elif isinstance(c, str):
            out.append(_Finding("error", f"{where} is {c}"))
        elif isinstance(b, str):
            out.append(_Finding("error", f"{where} is {b} in the baseline"))
        else:
            out.append(_paired(check, where, c, b, level))
    return out


def _summary(index: int, check: Check, findings: Sequence[_Finding]) -> CheckOutcome:
    status: Status = "pass"
    if any(f.kind == "error" for f in findings):
        status = "fail"
    elif any(f.kind == "violation" for f in findings):
        status = check.on_fail
    elif any(f.kind == "warn" for f in findings):
        status = "warn"
    message = ""
    for kind, many in (
        ("error", "{n} values cannot be evaluated; first: {text}"),
        ("violation", "{n} violations; worst: {text}"),
        ("warn", "{n} warnings; worst: {text}"),
        ("ok", "all {n} pass; closest: {text}"),
    ):
        group = [f for f in findings if f.kind == kind]
        if group:
            top = max(group, key=lambda f: f.badness)  # the first of equals
            message = top.text if len(group) == 1 else many.format(n=len(group), text=top.text)
            break
    details = tuple(f.text for f in findings if f.kind != "ok")
    return CheckOutcome(index, check.label(), status, message, details)


def run_checks(
    checks: Sequence[Check],
    current: RunData,
    baseline: RunData | None = None,
    *,
    level: float | None = None,
) -> list[CheckOutcome]:
    """Evaluate every check on ``current`` (baseline checks against ``baseline``)."""
    if level is None:
        suite = current.results.suite
        level = suite.bootstrap.level if suite is not None else 0.95
    outcomes = []
    for i, check in enumerate(checks):
        models = sorted(set(check.models if check.models is not None else current.results.models))
        findings: list[_Finding] = []
        if not models:
            findings = [_Finding("error", "the run has no models")]
        elif check.min is not None or check.max is not None:
            findings = [f for m in models for f in _bounds(check, m, current.results)]
        elif (why := _comparable(check, current, baseline)) is not None:
            findings = [_Finding("error", why)]
        else:
            assert baseline is not None
            findings = [f for m in models for f in _versus(check, m, current, baseline, level)]
        outcomes.append(_summary(i, check, findings))
    return outcomes


def exit_code(outcomes: Sequence[CheckOutcome]) -> int:
    """0 when every check passed or warned, 1 when one failed."""
    return 1 if any(o.status == "fail" for o in outcomes) else 0


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(s: str) -> str:
    """Characters XML 1.0 cannot hold (even escaped) become U+FFFD."""
    return _NOT_XML.sub("\ufffd", s)


def _test_names(outcomes: Sequence[CheckOutcome]) -> list[str]:
    labels = [o.label for o in outcomes]
    return [
        f"{o.label} (check {o.index})" if labels.count(o.label) > 1 else o.label for o in outcomes
    ]


def junit_xml(outcomes: Sequence[CheckOutcome], *, suite_name: str = "brittle") -> str:
    """JUnit XML: one test case per check. A failed check is a ``<failure>`` (message and
    every problem); a warning or a pass is reported in ``<system-out>``. Repeated labels
    get ``(check N)`` appended, so test names stay unique. No timings: the same outcomes
    give the same bytes."""
    failures = sum(o.status == "fail" for o in outcomes)
    counts = {"tests": str(len(outcomes)), "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": _xml_text(suite_name), **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _xml_text(suite_name), **counts})
    for o, name in zip(outcomes, _test_names(outcomes), strict=True):
        case = ET.SubElement(
            suite, "testcase", {"classname": "brittle.checks", "name": _xml_text(name)}
        )
        body = "\n".join([o.message, *(d for d in o.details if d != o.message)])
        if o.status == "fail":
            failure = ET.SubElement(
                case, "failure", {"message": _xml_text(o.message), "type": "check"}
            )
            failure.text = _xml_text(body)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(f"WARNING: {body}" if o.status == "warn" else body)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(outcomes: Sequence[CheckOutcome]) -> list[str]:
    """GitHub Actions workflow commands: ``::error`` per failed check, ``::warning`` per
    warning (passes print nothing), escaped so any label or message stays one command."""
    out = []
    for o in outcomes:
        if o.status != "pass":
            command = "error" if o.status == "fail" else "warning"
            title = _escape_property("brittle check")
            out.append(f"::{command} title={title}::{_escape_data(f'{o.label}: {o.message}')}")
    return out
