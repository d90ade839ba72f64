"""From cell scores to a run's numbers: intervals, the risk score, comparisons, verdicts.

Everything here is arithmetic on bootstrap replicates. Every cell of every model was
bootstrapped over the same resamples of the same images (see
:mod:`brittle.run.scoring`), so a statistic built from cells (an rPC, a family mean, the
risk score) is computed on each resample the same way as on the data, and the
difference of two models' replicates is a paired-bootstrap replicate of their
difference. Intervals are percentile intervals of the replicates where the statistic is
defined. docs/robustness.md gives the formulas.

**Risk score** (0..100, higher = riskier). Per perturbation a degradation
``d = clip(1 - rPC, 0, 1)`` (or ``1 - consistency`` when rPC is undefined: unlabeled
images, or a clean mAP of 0); per family the mean of its perturbations' ``d``; then
``risk = 100 * sqrt(mean over families of d_family**2)``. Bounded by 0 (no perturbation
costs anything) and 100 (every one costs everything), non-decreasing in every ``d``,
each family weighs the same however many perturbations it has, and the quadratic mean
weighs a collapse on one family more than the same total loss spread thin.

>>> import numpy as np
>>> risk_score({"blur": 0.1, "geometric": 0.5}).round(2)
np.float64(36.06)
>>> float(risk_score({"blur": 0.0})), float(risk_score({"blur": 1.0, "noise": 1.0}))
(0.0, 100.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from brittle.augmentations import protects
from brittle.perturbations.base import FAMILIES
from brittle.results import (
    CI,
    CellResult,
    Comparison,
    Difference,
    FamilyResult,
    PerturbationResult,
    RiskResult,
    Verdict,
)
from brittle.run.scoring import CellScore

__all__ = [
    "REPLICATES_FILE",
    "UNRATED",
    "ModelScores",
    "Stat",
    "compare",
    "interval",
    "load_replicates",
    "model_scores",
    "model_tables",
    "ranking",
    "risk_score",
    "save_replicates",
    "verdicts",
]

Metric = Literal["rpc", "consistency"]


@dataclass(frozen=True, slots=True)
class Stat:
    """A statistic on the data and on each bootstrap resample (NaN: undefined there)."""

    value: float
    reps: NDArray[np.float64]

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.value))

    def ci(self, level: float) -> CI:
        return interval(self.reps, level)

    def __sub__(self, other: Stat) -> Stat:
        return Stat(self.value - other.value, self.reps - other.reps)


def interval(reps: NDArray[np.float64], level: float) -> CI:
    """Percentile interval of the finite replicates; None when there are none."""
    ok = reps[np.isfinite(reps)]
    if not ok.size:
        return None
    alpha = 1.0 - level
    low, high = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def _mean(stats: Sequence[Stat]) -> Stat:
    return Stat(float(np.mean([s.value for s in stats])), np.mean([s.reps for s in stats], axis=0))


def listing(names: Sequence[str]) -> str:
    """Names as a sentence lists them (verdicts in the terminal and the report).

    >>> listing(["plain"]), listing(["flipped", "plain"]), listing(["a", "b", "c"])
    ('plain', 'flipped and plain', 'a, b and c')
    """
    items = list(names)
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


#: Why a model with robustness results has no risk score (see model_scores).
UNRATED = (
    "no risk score: its clean mAP is not above 0 and it made no detection at the operating "
    "confidence on any clean image, so a perturbation has nothing to change (consistency "
    "would be a perfect 1.0 for predicting nothing)"
)


def risk_score(degradation: Mapping[str, float | NDArray[np.float64]]) -> NDArray[np.float64]:
    """``100 * sqrt(mean(d_f ** 2))`` over families (values or arrays of replicates)."""
    d = np.array([np.asarray(v, np.float64) for v in degradation.values()])
    return np.asarray(100.0 * np.sqrt(np.mean(d**2, axis=0)), np.float64)


@dataclass
class ModelScores:
    """One model's statistics, each with its replicates, ready for tables and pairs."""

    basis: Metric
    clean_map: Stat | None
    clean_map50: Stat | None
    cells: dict[tuple[str, int], dict[str, Stat]] = field(default_factory=dict)
    perturbations: dict[str, dict[str, Stat]] = field(default_factory=dict)
    families: dict[str, dict[str, Stat]] = field(default_factory=dict)
    family_members: dict[str, list[str]] = field(default_factory=dict)
    risk: Stat | None = None


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else float("nan")


def model_scores(
    clean: CellScore,
    cells: Mapping[tuple[str, int], CellScore],
    families: Mapping[str, str],
    weights: NDArray[np.int64],
    strictness: float,
) -> ModelScores:
    """Replicate every statistic of one model. ``families`` maps perturbation -> family."""
    n = weights.shape[1]
    wf = weights.astype(np.float64)
    clean_map = clean_map50 = None
    if clean.labeled:
        clean_map = Stat(float(clean.stats[0]), clean.map50_95_reps)
        clean_map50 = Stat(float(clean.stats[1]), clean.map50_reps)
    basis: Metric = "rpc" if clean_map is not None and clean_map.value > 0 else "consistency"
    out = ModelScores(basis, clean_map, clean_map50)
    nan = np.full(weights.shape[0], np.nan)
    for key, cell in cells.items():
        cons = cell.consistency
        affected = (cons < strictness).astype(np.float64)
        # Divide after the sum, so that an image set with every value 1 gives exactly 1.
        stats = {
            "consistency": Stat(float(cons.mean()), (wf @ cons) / n),
            "affected_fraction": Stat(float(affected.mean()), (wf @ affected) / n),
        }
        if cell.labeled:
            stats["map50_95"] = Stat(float(cell.stats[0]), cell.map50_95_reps)
            stats["map50"] = Stat(float(cell.stats[1]), cell.map50_reps)
        out.cells[key] = stats
    by_pert: dict[str, list[dict[str, Stat]]] = {}
    for (p, _), stats in out.cells.items():
        by_pert.setdefault(p, []).append(stats)
    for p, sev_stats in by_pert.items():
        stats = {k: _mean([s[k] for s in sev_stats]) for k in ("consistency", "affected_fraction")}
        if out.basis == "rpc" and clean_map is not None:
            m = _mean([s["map50_95"] for s in sev_stats])
            with np.errstate(divide="ignore", invalid="ignore"):
                reps = np.where(clean_map.reps > 0, m.reps / clean_map.reps, np.nan)
            stats["rpc"] = Stat(m.value / clean_map.value, reps)
            d = stats["rpc"]
            stats["degradation"] = Stat(
                float(np.clip(1 - d.value, 0, 1)), np.clip(1 - d.reps, 0, 1)
            )
        else:
            c = stats["consistency"]
            stats["degradation"] = Stat(1 - c.value, 1 - c.reps)
        out.perturbations[p] = stats
    for family in FAMILIES:
        members = sorted(p for p in out.perturbations if families[p] == family)
        if not members:
            continue
        out.family_members[family] = members
        keys = out.perturbations[members[0]].keys()
        out.families[family] = {k: _mean([out.perturbations[p][k] for p in members]) for k in keys}
    # Without a clean mAP above 0, robustness is measured by consistency, which compares
    # perturbed detections with clean ones: a model with no clean detection at the
    # operating confidence would score a perfect 1.0 (and risk 0) by predicting nothing.
    blind = basis == "consistency" and not any(c.n_clean.sum() for c in cells.values())
    if out.families and not blind:
        deg = {f: s["degradation"] for f, s in out.families.items()}
        value = float(risk_score({f: s.value for f, s in deg.items()}))
        reps = risk_score({f: s.reps for f, s in deg.items()}) if deg else nan
        out.risk = Stat(value, reps)
    return out


def _opt(stat: Stat | None) -> float | None:
    return None if stat is None or not stat.defined else stat.value


def model_tables(
    scores: ModelScores, families: Mapping[str, str], level: float
) -> tuple[dict[str, PerturbationResult], dict[str, FamilyResult], RiskResult | None]:
    """results.json's ``perturbations``, ``families`` and ``risk`` of one model."""

    def ci(stats: Mapping[str, Stat], k: str) -> CI:
        return stats[k].ci(level) if k in stats else None

    def summary(stats: Mapping[str, Stat]) -> dict[str, Any]:
        """The fields a perturbation and a family share: values and their intervals."""
        out: dict[str, Any] = {"rpc": _opt(stats.get("rpc")), "rpc_ci": ci(stats, "rpc")}
        for k in ("consistency", "affected_fraction", "degradation"):
            out[k] = stats[k].value
            out[f"{k}_ci"] = ci(stats, k)
        return out

    perts: dict[str, PerturbationResult] = {}
    for p, stats in scores.perturbations.items():
        sevs = {}
        for (name, sev), cs in scores.cells.items():
            if name != p:
                continue
            sevs[str(sev)] = CellResult(
                map50_95=_opt(cs.get("map50_95")),
                map50=_opt(cs.get("map50")),
                consistency=cs["consistency"].value,
                affected_fraction=cs["affected_fraction"].value,
                map50_95_ci=ci(cs, "map50_95"),
                map50_ci=ci(cs, "map50"),
                consistency_ci=ci(cs, "consistency"),
                affected_fraction_ci=ci(cs, "affected_fraction"),
            )
        perts[p] = PerturbationResult(family=families[p], severities=sevs, **summary(stats))
    fams = {
        f: FamilyResult(perturbations=scores.family_members[f], **summary(stats))
        for f, stats in scores.families.items()
    }
    risk = None
    if scores.risk is not None:
        risk = RiskResult(value=scores.risk.value, ci=scores.risk.ci(level), basis=scores.basis)
    return perts, fams, risk


def _difference(
    metric: Literal["rpc", "consistency", "risk", "map50_95"],
    a_name: str,
    b_name: str,
    a: Stat,
    b: Stat,
    level: float,
) -> Difference:
    d = a - b
    ci = d.ci(level)
    better = None
    if ci is not None and (ci[0] > 0 or ci[1] < 0):
        # Higher rPC / consistency is more robust; a higher risk is less.
        a_better = (ci[0] > 0) != (metric == "risk")
        better = a_name if a_better else b_name
    return Difference(metric=metric, a=a.value, b=b.value, difference=d.value, ci=ci, better=better)


def _common_metric(a: ModelScores, b: ModelScores) -> Metric:
    return "rpc" if a.basis == "rpc" and b.basis == "rpc" else "consistency"


def compare(a_name: str, a: ModelScores, b_name: str, b: ModelScores, level: float) -> Comparison:
    """Paired differences ``a - b`` per perturbation and family, and of the risk score."""
    metric = _common_metric(a, b)
    perts = {
        p: _difference(
            metric, a_name, b_name, a.perturbations[p][metric], b.perturbations[p][metric], level
        )
        for p in a.perturbations
        if p in b.perturbations and metric in a.perturbations[p] and metric in b.perturbations[p]
    }
    fams = {
        f: _difference(metric, a_name, b_name, a.families[f][metric], b.families[f][metric], level)
        for f in a.families
        if f in b.families and metric in a.families[f] and metric in b.families[f]
    }
    risk = clean = None
    if a.risk is not None and b.risk is not None and a.basis == b.basis:
        risk = _difference("risk", a_name, b_name, a.risk, b.risk, level)
    if a.clean_map is not None and b.clean_map is not None:
        clean = _difference("map50_95", a_name, b_name, a.clean_map, b.clean_map, level)
    return Comparison(
        a=a_name, b=b_name, clean=clean, risk=risk, families=fams, perturbations=perts
    )


def ranking(scores: Mapping[str, ModelScores]) -> list[str]:
    """Models by risk score, least risky first (ties and models without one: by name)."""
    return sorted(
        scores,
        key=lambda m: (scores[m].risk is None, scores[m].risk.value if scores[m].risk else 0, m),  # type: ignore[union-attr]
    )


def verdicts(
    scores: Mapping[str, ModelScores],
    trained_with: Mapping[str, Sequence[str]],
    reference: Mapping[str, str],
    level: float,
) -> list[Verdict]:
    """For each model with a reference and declared augmentations: one verdict each."""
    out: list[Verdict] = []
    for model in sorted(trained_with):
        ref = reference.get(model)
        if ref is None or model not in scores or ref not in scores:
            continue
        a, b = scores[model], scores[ref]
        metric = _common_metric(a, b)
        for aug in trained_with[model]:
            targets = [p for p in protects(aug) if p in a.perturbations and p in b.perturbations]
            if not targets:
                out.append(
                    Verdict(model=model, reference=ref, augmentation=aug, perturbations=[],
                            outcome="not tested")
                )  # fmt: skip
                continue
            details = {
                p: _difference(
                    metric,
                    model,
                    ref,
                    a.perturbations[p][metric],
                    b.perturbations[p][metric],
                    level,
                )
                for p in targets
            }
            mean_a = _mean([a.perturbations[p][metric] for p in targets])
            mean_b = _mean([b.perturbations[p][metric] for p in targets])
            diff = _difference(metric, model, ref, mean_a, mean_b, level)
            outcome: Literal["intended effect", "no measurable effect", "backfired"]
            if diff.better == model:
                outcome = "intended effect"
            elif diff.better == ref:
                outcome = "backfired"
            else:
                outcome = "no measurable effect"
            out.append(
                Verdict(model=model, reference=ref, augmentation=aug, perturbations=targets,
                        outcome=outcome, difference=diff, details=details)
            )  # fmt: skip
    return out


REPLICATES_FILE = "replicates.npz"


def save_replicates(
    path: Path, scores: Mapping[str, ModelScores], images: str, options: Any
) -> None:
    """Every statistic's value and replicates, for ``brittle compare`` across runs.

    ``images`` identifies the images and ground truth (two runs are comparable, paired,
    only over the same ones, bootstrapped the same way).
    """
    arrays: dict[str, NDArray[Any]] = {}
    models: dict[str, Any] = {}
    for name, s in scores.items():
        models[name] = {
            "basis": s.basis,
            "cells": [[p, sev] for p, sev in s.cells],
            "family_members": s.family_members,
        }

        def put(prefix: str, stats: Mapping[str, Stat], name: str = name) -> None:
            for k, st in stats.items():
                arrays[f"{name}/{prefix}/{k}"] = np.concatenate([[st.value], st.reps])

        put("clean", {k: v for k, v in (("map50_95", s.clean_map), ("map50", s.clean_map50)) if v})
        for (p, sev), stats in s.cells.items():
            put(f"cell/{p}/{sev}", stats)
        for p, stats in s.perturbations.items():
            put(f"perturbation/{p}", stats)
        for f, stats in s.families.items():
            put(f"family/{f}", stats)
        if s.risk is not None:
            put("risk", {"value": s.risk})
    meta = {
        "images": images,
        "resamples": options.scoring.resamples,
        "bootstrap_seed": options.scoring.bootstrap_seed,
        "seed": options.seed,
        "strictness": options.scoring.strictness,
        "conf": options.scoring.conf,
        "models": models,
    }
    tmp = path.with_suffix(".tmp.npz")
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(tmp, allow_pickle=False, **arrays)
    tmp.replace(path)


def load_replicates(path: Path) -> tuple[dict[str, Any], dict[str, ModelScores]]:
    """Read what :func:`save_replicates` wrote: (meta, model scores)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        data = {k: z[k] for k in z.files if k != "meta"}

    def stats(prefix: str) -> dict[str, Stat]:
        out = {}
        for k, v in data.items():
            head, _, leaf = k.rpartition("/")
            if head == prefix:
                out[leaf] = Stat(float(v[0]), v[1:])
        return out

    scores: dict[str, ModelScores] = {}
    for name, m in meta["models"].items():
        clean = stats(f"{name}/clean")
        s = ModelScores(m["basis"], clean.get("map50_95"), clean.get("map50"))
        for p, sev in m["cells"]:
            s.cells[(p, int(sev))] = stats(f"{name}/cell/{p}/{sev}")
            s.perturbations.setdefault(p, stats(f"{name}/perturbation/{p}"))
        members = m["family_members"]
        s.family_members = {f: list(members[f]) for f in FAMILIES if f in members}
        for f in s.family_members:
            s.families[f] = stats(f"{name}/family/{f}")
        s.risk = stats(f"{name}/risk").get("value")
        scores[name] = s
    return meta, scores
