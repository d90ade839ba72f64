"""A run: every model on every image, clean and under each suite cell; scores; files.

Three phases over one pool of workers (:mod:`brittle.run.worker`):

1. **predict**: the dataset streams by in batches (file bytes only; the worker decodes
   each image once and perturbs it once per cell); only what the cache lacks is
   computed, and each (batch, condition, model) is committed as it arrives, so
   Ctrl-C or kill -9 loses at most the work in flight and the same command resumes;
2. **score**: each (model, condition) cell is scored from the cache, with bootstrap
   replicates (:mod:`brittle.run.scoring`); scores are cached too;
3. **aggregate**: intervals, risk scores, comparisons and augmentation verdicts
   (:mod:`brittle.run.aggregate`), then ``results.json``, ``images.parquet``,
   ``replicates.npz``, the failure gallery and ``run.json``.

Memory stays flat in the dataset size: images are never held beyond their batch, and
what is kept per image is a handful of numbers per cell.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from brittle._version import __version__
from brittle.data.base import Dataset
from brittle.errors import ConfigError
from brittle.metrics.coco import COCO_STAT_NAMES
from brittle.models.base import Predictor
from brittle.models.classmap import LabelMap
from brittle.perturbations import get_perturbation
from brittle.results import (
    BootstrapInfo,
    ClassMetrics,
    CleanMetrics,
    DatasetInfo,
    FamilyResult,
    ModelResult,
    PerturbationResult,
    Results,
    RiskResult,
    Settings,
    SuiteInfo,
    dump_json,
)
from brittle.run import aggregate, mining, records
from brittle.run.aggregate import ModelScores, interval
from brittle.run.cache import CacheKey, PredictionCache, RunImage
from brittle.run.scoring import CellScore, ScoreOptions, images_digest, score_key
from brittle.run.suites import Suite
from brittle.run.worker import (
    Condition,
    ModelRecipe,
    Predicted,
    PredictTask,
    Scored,
    ScoreTask,
    TaskDone,
    Unreadable,
    WorkerPool,
    WorkerSetup,
)
from brittle.types import GroundTruth

__all__ = [
    "CACHE_FILE",
    "RESULTS_FILE",
    "RUN_FILE",
    "LoadedModel",
    "Progress",
    "RunOptions",
    "content_hash",
    "parse_model_arg",
    "run_evaluation",
]

RESULTS_FILE = "results.json"
RUN_FILE = "run.json"
CACHE_FILE = "cache.sqlite"


def parse_model_arg(arg: str) -> tuple[str, str]:
    """Split ``[NAME=]SPEC`` into a name and a spec; the name defaults from the spec.

    >>> parse_model_arg("yolox=models/yolox_nano.onnx")
    ('yolox', 'models/yolox_nano.onnx')
    >>> parse_model_arg("models/yolox_nano.onnx")
    ('yolox_nano', 'models/yolox_nano.onnx')
    >>> parse_model_arg("examples/fastestdet.py:FastestDet")
    ('FastestDet', 'examples/fastestdet.py:FastestDet')
    >>> parse_model_arg("examples/roboflow.http.yaml")
    ('roboflow', 'examples/roboflow.http.yaml')
    >>> parse_model_arg("models/ppe.torchvision.yaml")
    ('ppe', 'models/ppe.torchvision.yaml')
    >>> parse_model_arg("torchvision:fcos_resnet50_fpn")
    ('fcos_resnet50_fpn', 'torchvision:fcos_resnet50_fpn')
    """
    name, sep, spec = arg.partition("=")
    # "NAME=" only when NAME looks like a name: a URL's query may contain '=' too.
    if sep and name and "/" not in name and ":" not in name and "." not in name:
        return name, spec
    spec = arg
    if "://" not in spec and ":" in spec.rsplit("/", 1)[-1]:
        return spec.rsplit(":", 1)[1], spec
    stem = spec.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".http.yaml", ".http.yml", ".torchvision.yaml", ".torchvision.yml"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], spec
    return (stem.rsplit(".", 1)[0] or stem), spec


def content_hash(data: bytes) -> str:
    """A short, collision-safe hash of an image file's bytes (the cache key for an image)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class LoadedModel:
    """A predictor ready to evaluate, with its mapping into the dataset's classes."""

    name: str
    spec: str
    kind: str
    predictor: Predictor
    label_map: LabelMap
    class_map: dict[str, str] | None = None
    #: how to load the model again in a worker process (None: workers=1 only)
    recipe: ModelRecipe | None = None
    trained_with: tuple[str, ...] = ()
    reference: str | None = None
    #: images (clean or perturbed) this run sent to the model; the rest came from the cache
    inferred: int = 0


def _clean_metrics(
    clean: CellScore, gts: Sequence[GroundTruth], class_names: Sequence[str], level: float
) -> CleanMetrics:
    counts = np.zeros(len(class_names), np.int64)
    for gt in gts:
        np.add.at(counts, gt.labels[~gt.iscrowd], 1)

    def opt(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    per_class = {
        class_names[c]: ClassMetrics(ap50_95=opt(ap), ap50=opt(ap50), gt_count=int(counts[c]))
        for c, ap, ap50 in zip(clean.classes, clean.class_ap, clean.class_ap50, strict=True)
    }
    stats = {name: float(v) for name, v in zip(COCO_STAT_NAMES, clean.stats, strict=True)}
    return CleanMetrics(
        **stats,
        map50_95_ci=interval(clean.map50_95_reps, level),
        map50_ci=interval(clean.map50_reps, level),
        per_class=per_class,
    )


class Progress(Protocol):
    """Where a run reports progress: one phase at a time."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass(frozen=True)
class RunOptions:
    """How a run works; only ``seed``, ``scoring`` and ``level`` change its numbers."""

    suite: Suite | None = None
    seed: int = 0
    scoring: ScoreOptions = field(default_factory=ScoreOptions)
    level: float = 0.95
    batch_size: int = 8
    workers: int = 1
    threads: int | None = None
    fail_fast: bool = False
    gallery: int = 2
    settings: Settings = field(default_factory=Settings)


@dataclass
class _Plan:
    """What the predict phase found: the images kept, in order, and the timings."""

    kept: list[RunImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    model_seconds: dict[str, float] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    #: identifies the kept images and their ground truth (score keys, replicates.npz)
    digest: str = ""
    #: conditions that show the models a distinct image (the rest share its predictions)
    distinct: int = 0


def _conditions(suite: Suite | None) -> tuple[Condition, ...]:
    cells = suite.cells() if suite is not None else []
    return (Condition("", 0), *(Condition(p, s) for p, s in cells))


def _cache_condition(cond: Condition, suite: Suite | None, seed: int) -> tuple[str, int, int]:
    """The cache key's (perturbation tag, severity, seed) of a condition."""
    if cond.clean or suite is None:
        return ("", 0, 0)
    return suite.perturbation(cond.name).cache_condition(cond.severity, seed)


def run_evaluation(
    dataset: Dataset,
    models: Sequence[LoadedModel],
    out_dir: Path,
    options: RunOptions | None = None,
    *,
    progress: Progress | None = None,
) -> Results:
    """Evaluate ``models`` on ``dataset``, clean and under ``options.suite``; write the run.

    Writes into ``out_dir``: ``results.json`` (deterministic: the same inputs give the
    same bytes, whatever ``workers`` or interruptions), ``run.json`` (dates, timings),
    ``cache.sqlite`` (predictions and cell scores), and with a suite ``images.parquet``
    (per-image records), ``replicates.npz`` (for ``brittle compare``) and
    ``gallery/`` (the images whose predictions changed most).
    """
    opts = options or RunOptions()
    bar = progress or _NoProgress()
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}; name them with NAME=SPEC")
    for m in models:
        if m.reference is not None and m.reference not in names:
            raise ConfigError(
                f"model {m.name!r}: reference {m.reference!r} is not one of the models "
                f"({', '.join(names)})"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    conditions = _conditions(opts.suite)
    cache_conditions = [_cache_condition(c, opts.suite, opts.seed) for c in conditions]
    setup = WorkerSetup(
        dataset=dataset,
        models=tuple(m.recipe for m in models),
        names=tuple(names),
        label_maps=tuple(m.label_map for m in models),
        fingerprints=tuple(m.predictor.fingerprint for m in models),
        conditions=conditions,
        overrides=opts.suite.overrides if opts.suite is not None else {},
        seed=opts.seed,
        fail_fast=opts.fail_fast,
        cache_path=out_dir / CACHE_FILE,
        scoring=opts.scoring,
        threads=opts.threads,
    )
    predictors = [m.predictor for m in models]
    with (
        PredictionCache(out_dir / CACHE_FILE) as cache,
        WorkerPool(setup, opts.workers, predictors if opts.workers == 1 else None) as pool,
    ):
        plan = _predict(dataset, models, cache, pool, cache_conditions, opts, bar)
        cache.set_run_images(plan.kept)
        plan.digest = images_digest(plan.kept)
        plan.phase_seconds["predict"] = time.perf_counter() - started
        scores = _score(models, cache, pool, plan, conditions, cache_conditions, opts, bar)
        plan.phase_seconds["score"] = time.perf_counter() - started - plan.phase_seconds["predict"]
    return _finish(dataset, models, out_dir, opts, plan, scores, conditions, started, started_at)


def _predict(
    dataset: Dataset,
    models: Sequence[LoadedModel],
    cache: PredictionCache,
    pool: WorkerPool,
    cache_conditions: Sequence[tuple[str, int, int]],
    opts: RunOptions,
    bar: Progress,
) -> _Plan:
    plan = _Plan(model_seconds={m.name: 0.0 for m in models})
    # Conditions that show the models the same image (Perturbation.cache_condition) are
    # predicted once, under the first of them.
    first: dict[tuple[str, int, int], int] = {}
    for c, cond in enumerate(cache_conditions):
        first.setdefault(cond, c)
    distinct = list(first.items())
    plan.distinct = len(distinct)
    n_pairs = len(models) * len(distinct)
    bar.start("predicting", len(dataset) * n_pairs)
    records = dataset.records
    batches = [records[i : i + opts.batch_size] for i in range(0, len(records), opts.batch_size)]
    hashes: dict[str, str] = {}
    unreadable: set[str] = set()
    expected: dict[int, int] = {}
    advanced: dict[int, int] = {}

    def handle(msg: object) -> None:
        if isinstance(msg, Predicted):
            m = models[msg.model]
            keys = [
                CacheKey(m.predictor.fingerprint, hashes[task_ids[msg.task][i]],
                         *cache_conditions[msg.condition])
                for i in msg.images
            ]  # fmt: skip
            cache.put_many(zip(keys, msg.detections, msg.errors, strict=True))
            m.inferred += len(keys)
            plan.model_seconds[m.name] += msg.seconds
            advanced[msg.task] += len(keys)
            bar.advance(len(keys))
        elif isinstance(msg, Unreadable):
            rid = task_ids[msg.task][msg.image]
            unreadable.add(rid)
            # With --strict this raises and stops the run; otherwise it is counted.
            dataset.issues.add(
                "unreadable_image", task_paths[msg.task][msg.image], None, msg.message
            )
        elif isinstance(msg, TaskDone):
            bar.advance(expected.pop(msg.task) - advanced.pop(msg.task))
            task_ids.pop(msg.task)
            task_paths.pop(msg.task)

    task_ids: dict[int, list[str]] = {}
    task_paths: dict[int, list[Path]] = {}
    for index, batch in enumerate(batches):
        good, data = [], []
        for r in batch:
            try:
                blob = r.path.read_bytes()
            except OSError as exc:
                dataset.issues.add("unreadable_image", r.path, None, str(exc))
                unreadable.add(r.id)
                bar.advance(n_pairs)
                continue
            hashes[r.id] = content_hash(blob)
            good.append(r)
            data.append(blob)
        work = []
        todo = 0
        for cond, c in distinct:
            for mi, m in enumerate(models):
                keys = [CacheKey(m.predictor.fingerprint, hashes[r.id], *cond) for r in good]
                have = cache.present(keys)
                missing = tuple(i for i, k in enumerate(keys) if k not in have)
                if missing:
                    work.append((c, mi, missing))
                    todo += len(missing)
        bar.advance(len(good) * n_pairs - todo)
        if work:
            task_ids[index] = [r.id for r in good]
            task_paths[index] = [r.path for r in good]
            expected[index], advanced[index] = todo, 0
            # Only the images some model still needs travel to the workers.
            needed = {i for _, _, idx in work for i in idx}
            pool.submit(
                PredictTask(
                    index,
                    tuple(good),
                    tuple(b if i in needed else b"" for i, b in enumerate(data)),
                    tuple(work),
                )
            )
            for msg in pool.messages(until=pool.capacity - 1):
                handle(msg)
    for msg in pool.messages():
        handle(msg)
    for r in records:
        if r.id in unreadable:
            plan.skipped.append(r.id)
        else:
            plan.kept.append(RunImage(r.id, hashes[r.id], r.width, r.height, r.targets))
    return plan


def _score(
    models: Sequence[LoadedModel],
    cache: PredictionCache,
    pool: WorkerPool,
    plan: _Plan,
    conditions: Sequence[Condition],
    cache_conditions: Sequence[tuple[str, int, int]],
    opts: RunOptions,
    bar: Progress,
) -> dict[tuple[int, int], CellScore]:
    """Every (model, condition) cell's score: from the score cache, else computed."""
    scores: dict[tuple[int, int], CellScore] = {}
    if not plan.kept:
        return scores
    digest = plan.digest
    keys: dict[tuple[int, int], str] = {}
    bar.start("scoring", len(models) * len(conditions))
    index = 0
    run_hashes = {im.hash for im in plan.kept}
    failures = cache.failures()
    # Cells with the same score key (the same predictions, Perturbation.cache_condition)
    # are read or scored once and share the result.
    sharing: dict[str, list[tuple[int, int]]] = {}
    cached: dict[str, CellScore] = {}
    for mi, m in enumerate(models):
        for c in range(len(conditions)):
            fp, cond = m.predictor.fingerprint, cache_conditions[c]
            failed = failures.get((fp, *cond), set()) & run_hashes
            key = score_key(digest, fp, m.label_map, cond, opts.scoring, sorted(failed))
            if key in sharing:
                sharing[key].append((mi, c))
                continue
            if key not in cached:
                blob = cache.get_score(key)
                if blob is not None:
                    cached[key] = CellScore.from_bytes(blob)
            if key in cached:
                scores[mi, c] = cached[key]
                bar.advance(1)
                continue
            keys[mi, c] = key
            sharing[key] = [(mi, c)]
            pool.submit(ScoreTask(index, mi, c))
            index += 1
    for msg in pool.messages():
        if isinstance(msg, Scored):
            key = keys[msg.model, msg.condition]
            cache.put_score(key, msg.score.to_bytes())
            for cell in sharing[key]:
                scores[cell] = msg.score
            bar.advance(len(sharing[key]))
    # In (model, condition) order whatever order the workers finished in: the files
    # written from these (images.parquet, the gallery) must not depend on timing.
    return {k: scores[k] for k in sorted(scores)}


def _finish(
    dataset: Dataset,
    models: Sequence[LoadedModel],
    out_dir: Path,
    opts: RunOptions,
    plan: _Plan,
    scores: dict[tuple[int, int], CellScore],
    conditions: Sequence[Condition],
    started: float,
    started_at: datetime,
) -> Results:
    suite = opts.suite
    level = opts.level
    gts = [im.targets if im.targets is not None else GroundTruth.empty() for im in plan.kept]
    labeled = dataset.labeled
    families = {c.name: get_perturbation(c.name).family for c in conditions if not c.clean}
    weights = None
    if plan.kept:
        from brittle.metrics.bootstrap import resample_weights

        weights = resample_weights(
            len(plan.kept), opts.scoring.resamples, seed=opts.scoring.bootstrap_seed
        )
    model_scores: dict[str, ModelScores] = {}
    model_results: dict[str, ModelResult] = {}
    for mi, m in enumerate(models):
        evaluable = sorted(int(c) for c in m.label_map.evaluable)
        evaluable_set = set(evaluable)
        clean_score = scores.get((mi, 0))
        clean = None
        if clean_score is not None and clean_score.labeled:
            clean = _clean_metrics(clean_score, gts, dataset.class_names, level)
        perts: dict[str, PerturbationResult] = {}
        fams: dict[str, FamilyResult] = {}
        risk: RiskResult | None = None
        failed: set[str] = set()
        for (mj, _), sc in scores.items():
            if mj == mi:
                failed.update(sc.failed)
        if suite is not None and clean_score is not None and weights is not None:
            cells = {
                (conditions[c].name, conditions[c].severity): sc
                for (mj, c), sc in scores.items()
                if mj == mi and c > 0
            }
            ms = aggregate.model_scores(
                clean_score, cells, families, weights, opts.scoring.strictness
            )
            model_scores[m.name] = ms
            perts, fams, risk = aggregate.model_tables(ms, families, level)
        model_results[m.name] = ModelResult(
            spec=m.spec,
            kind=m.kind,
            fingerprint=m.predictor.fingerprint,
            class_names=list(m.predictor.class_names),
            class_map=m.class_map,
            evaluated_classes=[dataset.class_names[c] for c in evaluable] if labeled else [],
            unevaluated_classes=[
                n for i, n in enumerate(dataset.class_names) if i not in evaluable_set
            ],
            dropped_detections=clean_score.dropped if clean_score is not None else 0,
            failed_images=sorted(failed),
            clean=clean,
            perturbations=perts,
            families=fams,
            risk=risk,
            trained_with=list(m.trained_with),
            reference=m.reference,
        )
    ranking = aggregate.ranking(model_scores) if model_scores else []
    comparisons = [
        aggregate.compare(a, model_scores[a], b, model_scores[b], level)
        for i, a in enumerate(ranking)
        for b in ranking[i + 1 :]
    ]
    verdicts = aggregate.verdicts(
        model_scores,
        {m.name: m.trained_with for m in models if m.trained_with},
        {m.name: m.reference for m in models if m.reference},
        level,
    )
    results = Results(
        schema_version="1.2",
        brittle_version=__version__,
        dataset=DatasetInfo(
            name=dataset.name,
            path=str(dataset.root),
            format=dataset.format,
            split=dataset.split,
            image_count=len(plan.kept),
            class_names=list(dataset.class_names),
            box_count=int(sum(len(g) for g in gts)),
            issues=dataset.issues.counts(),
            skipped_images=_skipped(dataset, plan),
        ),
        settings=opts.settings,
        suite=_suite_info(suite, opts),
        models=model_results,
        ranking=ranking,
        comparisons=comparisons,
        verdicts=verdicts,
    )
    dump_json(results.model_dump(mode="json"), out_dir / RESULTS_FILE)
    if suite is not None and plan.kept:
        by_cell = {
            (models[mi].name, conditions[c].name, conditions[c].severity): sc
            for (mi, c), sc in scores.items()
            if c > 0
        }
        records.write_image_records(
            out_dir / records.RECORDS_FILE, plan.kept, by_cell, families, opts.scoring
        )
        aggregate.save_replicates(
            out_dir / aggregate.REPLICATES_FILE, model_scores, plan.digest, opts
        )
        mining.write_preview(out_dir, dataset, plan.kept, suite, opts.seed)
        # Also with --gallery 0: an older gallery in this directory must not outlive its run.
        if opts.gallery > 0 or (out_dir / mining.GALLERY_DIR).exists():
            mining.write_gallery(out_dir, dataset, models, plan.kept, by_cell, opts)
    run_info = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        "workers": opts.workers,
        "phase_seconds": {
            **{k: round(v, 3) for k, v in plan.phase_seconds.items()},
            "write": round(time.perf_counter() - started - sum(plan.phase_seconds.values()), 3),
        },
        "model_seconds": {k: round(v, 3) for k, v in plan.model_seconds.items()},
        # One prediction per (image, condition), the clean image plus every suite cell:
        # made now, found in the cache, or shared with a cell showing the same image.
        "inferred_predictions": {m.name: m.inferred for m in models},
        "cached_predictions": {m.name: len(plan.kept) * plan.distinct - m.inferred for m in models},
        "shared_predictions": {
            m.name: len(plan.kept) * (len(conditions) - plan.distinct) for m in models
        },
        "brittle_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    (out_dir / RUN_FILE).write_text(json.dumps(run_info, indent=2) + "\n")
    return results


def _skipped(dataset: Dataset, plan: _Plan) -> list[str]:
    """Ids of the images that could not be read, at indexing or during the run."""
    return sorted({*plan.skipped, *dataset.issues.skipped})


def _suite_info(suite: Suite | None, opts: RunOptions) -> SuiteInfo | None:
    if suite is None:
        return None
    return SuiteInfo(
        name=suite.name,
        seed=opts.seed,
        operating_conf=opts.scoring.conf,
        strictness=opts.scoring.strictness,
        perturbations={p: list(s) for p, s in suite.severities.items()},
        versions={p: get_perturbation(p).version for p in suite.severities},
        overrides=suite.overrides,
        bootstrap=BootstrapInfo(
            resamples=opts.scoring.resamples, seed=opts.scoring.bootstrap_seed, level=opts.level
        ),
    )
