"""``brittle compare``: put models from several runs side by side.

Runs made separately (one model per CI job, a new model against last month's) can be
compared as if they were one run, provided they evaluated the same images with the same
ground truth and were bootstrapped the same way: then every statistic's replicates,
stored in each run's ``replicates.npz``, are paired across runs, and the differences
get the same paired-bootstrap intervals as within a run. The result is a run-like
directory whose ``results.json`` holds every model, the ranking, the pairwise
comparisons and the augmentation verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brittle.errors import ConfigError
from brittle.results import ModelResult, Results, dump_json
from brittle.run import aggregate
from brittle.run.aggregate import ModelScores

__all__ = ["compare_runs"]


def _load(run_dir: Path) -> tuple[Results, dict[str, Any], dict[str, ModelScores]]:
    results_path = run_dir / "results.json"
    reps_path = run_dir / aggregate.REPLICATES_FILE
    if not results_path.is_file():
        raise ConfigError(f"{run_dir}: no results.json; is this a brittle run directory?")
    if not reps_path.is_file():
        raise ConfigError(
            f"{run_dir}: no {aggregate.REPLICATES_FILE}; only `brittle run` (with a suite) "
            "writes what a comparison needs"
        )
    try:
        results = Results.model_validate(json.loads(results_path.read_text()))
    except ValueError as exc:
        raise ConfigError(
            f"{results_path}: not a results.json this brittle can read: {exc}"
        ) from None
    meta, scores = aggregate.load_replicates(reps_path)
    return results, meta, scores


def compare_runs(
    run_dirs: Sequence[Path],
    *,
    trained_with: Mapping[str, Sequence[str]] | None = None,
    reference: Mapping[str, str] | None = None,
) -> Results:
    """Merge the models of ``run_dirs`` into one :class:`Results` with comparisons.

    Model names must not repeat across runs unless they are the same model (same
    fingerprint), which is then taken once. ``trained_with`` / ``reference`` add to
    (and override) what the runs declared.
    """
    if not run_dirs:
        raise ConfigError("give at least one run directory")
    loaded = [(d, *_load(d)) for d in run_dirs]
    first_dir, first, first_meta, _ = loaded[0]
    keys = ("images", "resamples", "bootstrap_seed", "strictness", "conf")
    models: dict[str, ModelResult] = {}
    scores: dict[str, ModelScores] = {}
    for d, results, meta, run_scores in loaded:
        for k in keys:
            if meta[k] != first_meta[k]:
                what = {
                    "images": "different images or ground truth",
                    "resamples": "a different number of bootstrap resamples",
                    "bootstrap_seed": "a different bootstrap seed",
                    "strictness": "a different --strictness",
                    "conf": "a different --operating-conf",
                }[k]
                raise ConfigError(
                    f"{d} and {first_dir} cannot be compared: {what} ({meta[k]!r} vs "
                    f"{first_meta[k]!r}); run both with the same data and options"
                )
        for name, m in results.models.items():
            if name in models and models[name].fingerprint != m.fingerprint:
                raise ConfigError(
                    f"two different models are called {name!r} ({d} and an earlier run); "
                    "rename one with --model NAME=SPEC"
                )
            if name in run_scores:
                models[name] = m
                scores[name] = run_scores[name]
    declared = {n: list(m.trained_with) for n, m in models.items() if m.trained_with}
    refs = {n: m.reference for n, m in models.items() if m.reference}
    declared.update({k: list(v) for k, v in (trained_with or {}).items()})
    refs.update(reference or {})
    for name, ref in refs.items():
        if name not in models or ref not in models:
            raise ConfigError(f"reference {name}={ref}: both must be models of the runs")
    models = {
        n: m.model_copy(update={"trained_with": declared.get(n, []), "reference": refs.get(n)})
        for n, m in models.items()
    }
    assert first.suite is not None
    level = first.suite.bootstrap.level
    ranking = aggregate.ranking(scores)
    comparisons = [
        aggregate.compare(a, scores[a], b, scores[b], level)
        for i, a in enumerate(ranking)
        for b in ranking[i + 1 :]
    ]
    verdicts = aggregate.verdicts(scores, declared, refs, level)
    return first.model_copy(
        update={
            "models": models,
            "ranking": ranking,
            "comparisons": comparisons,
            "verdicts": verdicts,
        }
    )


def write_comparison(results: Results, out_dir: Path) -> Path:
    """Write the merged ``results.json`` into ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    dump_json(results.model_dump(mode="json"), path)
    return path
