"""Clean evaluation: decode each image once, run every model, cache, score, write results.

This is the spine later stages (perturbations, robustness scores) extend: a
streaming loop over batches of the dataset, predictions cached in the run
directory's SQLite file so an interrupted run resumes, and exact COCO metrics
computed over the classes each model can actually predict.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from brittle._version import __version__
from brittle.data.base import Dataset, ImageRecord
from brittle.errors import ConfigError, DatasetError
from brittle.metrics.coco import COCO_STAT_NAMES, evaluate
from brittle.metrics.consistency import DEFAULT_CONF, DEFAULT_STRICTNESS, consistency
from brittle.models.base import Predictor
from brittle.models.classmap import LabelMap
from brittle.perturbations import get_perturbation, rng_for
from brittle.perturbations.base import FAMILIES, Params, Perturbation, transform_boxes
from brittle.results import (
    CellResult,
    ClassMetrics,
    CleanMetrics,
    DatasetInfo,
    FamilyResult,
    ModelResult,
    PerturbationResult,
    Results,
    Settings,
    SuiteInfo,
    dump_json,
)
from brittle.run.cache import CacheKey, PredictionCache, RunImage
from brittle.run.suites import Suite
from brittle.types import Detections, GroundTruth

__all__ = [
    "LoadedModel",
    "ProgressFn",
    "content_hash",
    "evaluate_clean",
    "family_means",
    "parse_model_arg",
    "predict_cached",
]

ProgressFn = Callable[[int], None]
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
    """
    name, sep, spec = arg.partition("=")
    # "NAME=" only when NAME looks like a name: a URL's query may contain '=' too.
    if sep and name and "/" not in name and ":" not in name and "." not in name:
        return name, spec
    spec = arg
    if "://" not in spec and ":" in spec.rsplit("/", 1)[-1]:
        return spec.rsplit(":", 1)[1], spec
    stem = spec.rstrip("/").rsplit("/", 1)[-1]
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
    failed_images: list[str] = field(default_factory=list)
    dropped: int = 0
    #: images (clean or perturbed) this run sent to the model; the rest came from the cache
    inferred: int = 0


@dataclass(frozen=True, slots=True)
class _Decoded:
    record: ImageRecord
    hash: str
    image: NDArray[np.uint8] | None
    error: str | None


def _decode(dataset: Dataset, record: ImageRecord) -> _Decoded:
    try:
        data = record.path.read_bytes()
        image = dataset.load(record, data).image
    except (OSError, DatasetError) as exc:
        return _Decoded(record, "", None, str(exc))
    return _Decoded(record, content_hash(data), image, None)


def _batches(records: Sequence[ImageRecord], size: int) -> Iterator[Sequence[ImageRecord]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


def _decoded_batches(
    dataset: Dataset, batch_size: int, pool: ThreadPoolExecutor
) -> Iterator[list[_Decoded]]:
    """Decode batch k+1 in background threads while the caller runs models on batch k."""
    pending: list[Future[_Decoded]] | None = None
    for batch in _batches(dataset.records, batch_size):
        nxt = [pool.submit(_decode, dataset, r) for r in batch]
        if pending is not None:
            yield [f.result() for f in pending]
        pending = nxt
    if pending is not None:
        yield [f.result() for f in pending]


def predict_cached(
    model: LoadedModel,
    cache: PredictionCache,
    keys: Sequence[CacheKey],
    images: Callable[[int], NDArray[np.uint8]],
    ids: Sequence[str],
    fail_fast: bool,
) -> list[Detections | None]:
    """Raw (model class space) detections for each key: from the cache, else the model.

    ``images(i)`` makes the i-th image only when it is needed, so a warm run perturbs
    nothing. None marks an image the model failed on (recorded in ``model.failed_images``).
    """
    cached = cache.get_many(keys)
    missing = [i for i, k in enumerate(keys) if k not in cached]
    fresh: dict[int, tuple[Detections, str | None]] = {}
    model.inferred += len(missing)
    if missing:
        batch = [images(i) for i in missing]
        try:
            outs = model.predictor.predict(batch)
            if len(outs) != len(missing):
                raise ConfigError(
                    f"model {model.name!r} returned {len(outs)} results for {len(missing)} images"
                )
            fresh = {i: (d, None) for i, d in zip(missing, outs, strict=True)}
        except Exception:
            if fail_fast:
                raise
            # Find the image(s) to blame: retry one at a time and record each failure.
            for i, img in zip(missing, batch, strict=True):
                try:
                    fresh[i] = (model.predictor.predict([img])[0], None)
                except Exception as exc:
                    fresh[i] = (Detections.empty(), f"{type(exc).__name__}: {exc}")
        cache.put_many((keys[i], d, err) for i, (d, err) in fresh.items())
    out: list[Detections | None] = []
    for i, key in enumerate(keys):
        if key in cached:
            det, err = cached[key].detections, cached[key].error
        else:
            det, err = fresh[i]
        out.append(None if err is not None else det)
        if err is not None:
            model.failed_images.append(ids[i])
    return out


def _run_models(
    models: Sequence[LoadedModel],
    cache: PredictionCache,
    good: Sequence[_Decoded],
    image: Callable[[int], NDArray[np.uint8]],
    *,
    condition: tuple[str, int, int],
    fail_fast: bool,
    model_seconds: dict[str, float],
    advance: Callable[[], None],
    count_dropped: bool,
) -> dict[str, list[Detections]]:
    """Every model's predictions for one condition of a batch, in the dataset's classes.

    ``condition`` is the cache key's (perturbation tag, severity, seed): ("", 0, 0) for the
    clean images. A failed image scores as no detections.
    """
    ids = [d.record.id for d in good]
    out: dict[str, list[Detections]] = {}
    for m in models:
        keys = [CacheKey(m.predictor.fingerprint, d.hash, *condition) for d in good]
        t0 = time.perf_counter()
        raw = predict_cached(m, cache, keys, image, ids, fail_fast)
        model_seconds[m.name] += time.perf_counter() - t0
        mapped = []
        for det in raw:
            if det is None:
                mapped.append(Detections.empty())
                continue
            dets, dropped = m.label_map.apply(det)
            if count_dropped:
                m.dropped += dropped
            mapped.append(dets)
        out[m.name] = mapped
        advance()
    return out


def _class_metrics(
    ev_stats: NDArray[np.float64],
    per_ap: dict[int, float | None],
    per_ap50: dict[int, float | None],
    gts: Sequence[GroundTruth],
    class_names: Sequence[str],
) -> CleanMetrics:
    counts = np.zeros(len(class_names), np.int64)
    for gt in gts:
        np.add.at(counts, gt.labels[~gt.iscrowd], 1)
    per_class = {
        class_names[c]: ClassMetrics(ap50_95=ap, ap50=per_ap50.get(c), gt_count=int(counts[c]))
        for c, ap in per_ap.items()
    }
    stats = {name: float(v) for name, v in zip(COCO_STAT_NAMES, ev_stats, strict=True)}
    return CleanMetrics(**stats, per_class=per_class)


def evaluate_clean(
    dataset: Dataset,
    models: Sequence[LoadedModel],
    out_dir: Path,
    *,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    fail_fast: bool = False,
    settings: Settings | None = None,
    suite: Suite | None = None,
    seed: int = 0,
    operating_conf: float = DEFAULT_CONF,
    strictness: float = DEFAULT_STRICTNESS,
) -> Results:
    """Run every model on every image (cached), compute exact COCO metrics, write results.

    With a ``suite``, every image is also replayed under each (perturbation, severity)
    cell: the image is decoded once, perturbed once per cell (only when some model has no
    cached prediction for it), and each cell is scored by mAP on the moved ground truth and
    by label-free consistency with the clean predictions.

    Writes ``results.json`` (deterministic), ``run.json`` (dates, timings, host) and
    ``cache.sqlite`` (predictions and ground truth) into ``out_dir``.
    """
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}; name them with NAME=SPEC")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    gts: list[GroundTruth] = []
    kept: list[RunImage] = []
    skipped: list[str] = []
    per_model: dict[str, list[Detections]] = {m.name: [] for m in models}
    model_seconds = dict.fromkeys(names, 0.0)
    cells = _Cells(suite, seed, [m.name for m in models])
    with PredictionCache(out_dir / CACHE_FILE) as cache, ThreadPoolExecutor(2) as pool:
        for batch in _decoded_batches(dataset, batch_size, pool):
            good = []
            for d in batch:
                if d.error is not None:
                    # With --strict this raises and stops the run; otherwise it is counted.
                    dataset.issues.add("unreadable_image", d.record.path, None, d.error)
                    skipped.append(d.record.id)
                else:
                    good.append(d)
            # The bar counts every image of the batch, skipped ones too, in each condition.
            n_batch = len(batch)

            def advance(n: int = n_batch) -> None:
                if progress is not None:
                    progress(n)

            def clean_image(i: int, good: list[_Decoded] = good) -> NDArray[np.uint8]:
                img = good[i].image
                assert img is not None
                return img

            clean_preds = _run_models(
                models, cache, good, clean_image, condition=("", 0, 0), fail_fast=fail_fast,
                model_seconds=model_seconds, advance=advance, count_dropped=True,
            )  # fmt: skip
            for name, dets in clean_preds.items():
                per_model[name].extend(dets)
            cells.run_batch(good, models, cache, fail_fast, model_seconds, advance)
            for d in good:
                r = d.record
                gts.append(r.targets if r.targets is not None else GroundTruth.empty())
                kept.append(RunImage(r.id, d.hash, r.width, r.height, r.targets))
        cache.set_run_images(kept)

    labeled = dataset.labeled
    model_results: dict[str, ModelResult] = {}
    for m in models:
        evaluable = sorted(int(c) for c in m.label_map.evaluable)
        evaluable_set = set(evaluable)
        clean = None
        if labeled and evaluable:
            ev = evaluate(gts, per_model[m.name], len(dataset.class_names), classes=evaluable)
            clean = _class_metrics(
                ev.stats, ev.per_class_ap(), ev.per_class_ap50(), gts, dataset.class_names
            )
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
            dropped_detections=m.dropped,
            failed_images=sorted(set(m.failed_images)),
            clean=clean,
            perturbations=(
                pert := cells.score(
                    m,
                    per_model[m.name],
                    clean,
                    len(dataset.class_names),
                    evaluable if labeled else [],
                    operating_conf,
                    strictness,
                )
            ),
            families=family_means(pert),
        )
    results = Results(
        schema_version="1.1",
        brittle_version=__version__,
        dataset=DatasetInfo(
            name=dataset.name,
            path=str(dataset.root),
            format=dataset.format,
            split=dataset.split,
            image_count=len(kept),
            class_names=list(dataset.class_names),
            box_count=int(sum(len(g) for g in gts)),
            issues=dataset.issues.counts(),
            skipped_images=sorted(skipped),
        ),
        settings=settings or Settings(),
        suite=cells.info(operating_conf, strictness),
        models=model_results,
    )
    dump_json(results.model_dump(mode="json"), out_dir / RESULTS_FILE)
    run_info = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        "model_seconds": {k: round(v, 3) for k, v in model_seconds.items()},
        # One prediction per (image, cell): the clean image plus every suite cell.
        "inferred_predictions": {m.name: m.inferred for m in models},
        "cached_predictions": {
            m.name: len(kept) * (1 + len(cells.cells)) - m.inferred for m in models
        },
        "brittle_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    (out_dir / RUN_FILE).write_text(json.dumps(run_info, indent=2) + "\n")
    return results


def family_means(perturbations: dict[str, PerturbationResult]) -> dict[str, FamilyResult]:
    """Aggregate per-perturbation results by family (plain means, families in catalogue order).

    >>> from brittle.results import CellResult
    >>> cell = CellResult(map50_95=None, map50=None, consistency=0.5, affected_fraction=0.5)
    >>> pr = PerturbationResult(family="blur", rpc=0.8, consistency=0.5,
    ...                         affected_fraction=0.5, severities={"3": cell})
    >>> family_means({"motion_blur": pr, "zoom_blur": pr.model_copy(update={"rpc": 0.6})})
    {'blur': FamilyResult(rpc=0.7, consistency=0.5, affected_fraction=0.5, perturbations=['motion_blur', 'zoom_blur'])}
    """  # noqa: E501
    out: dict[str, FamilyResult] = {}
    for family in FAMILIES:
        members = {n: p for n, p in perturbations.items() if p.family == family}
        if not members:
            continue
        rpcs = [p.rpc for p in members.values() if p.rpc is not None]
        out[family] = FamilyResult(
            rpc=float(np.mean(rpcs)) if rpcs else None,
            consistency=float(np.mean([p.consistency for p in members.values()])),
            affected_fraction=float(np.mean([p.affected_fraction for p in members.values()])),
            perturbations=sorted(members),
        )
    return out


class _LazyPerturbed:
    """The perturbed images of a batch, each made on first request and then kept: a warm
    run, whose predictions are all cached, perturbs nothing."""

    def __init__(
        self,
        pert: Perturbation,
        good: Sequence[_Decoded],
        params: Sequence[Params],
        rngs: Sequence[np.random.Generator],
    ) -> None:
        self.pert, self.good, self.params, self.rngs = pert, good, params, rngs
        self.made: dict[int, NDArray[np.uint8]] = {}

    def __call__(self, i: int) -> NDArray[np.uint8]:
        if i not in self.made:
            img = self.good[i].image
            assert img is not None
            self.made[i] = self.pert.apply(img, self.params[i], self.rngs[i])
        return self.made[i]


class _Cells:
    """Per-(perturbation, severity) state of a run: moved ground truth, drawn parameters,
    and each model's predictions, accumulated batch by batch."""

    def __init__(self, suite: Suite | None, seed: int, model_names: Sequence[str]) -> None:
        self.suite = suite
        self.seed = seed
        self.cells = suite.cells() if suite is not None else []
        self.perts: dict[str, Perturbation] = {
            name: get_perturbation(name) for name, _ in self.cells
        }
        self.gts: dict[tuple[str, int], list[GroundTruth]] = {c: [] for c in self.cells}
        self.params: dict[tuple[str, int], list[Params]] = {c: [] for c in self.cells}
        self.sizes: dict[tuple[str, int], list[tuple[int, int]]] = {c: [] for c in self.cells}
        self.dets: dict[str, dict[tuple[str, int], list[Detections]]] = {
            m: {c: [] for c in self.cells} for m in model_names
        }

    def run_batch(
        self,
        good: Sequence[_Decoded],
        models: Sequence[LoadedModel],
        cache: PredictionCache,
        fail_fast: bool,
        model_seconds: dict[str, float],
        advance: Callable[[], None],
    ) -> None:
        for cell in self.cells:
            name, severity = cell
            pert = self.perts[name]
            rngs: list[np.random.Generator] = []
            batch_params: list[Params] = []
            for d in good:
                assert d.image is not None
                h, w = d.image.shape[:2]
                # The same generator draws the parameters and then the pixels, exactly as
                # Perturbation.__call__ does, so perturb() reproduces any cell's image.
                rng = rng_for(self.seed, pert.name, severity, d.record.id)
                params = pert.params(severity, h, w, rng)
                rngs.append(rng)
                batch_params.append(params)
                self.sizes[cell].append((h, w))
                t = d.record.targets if d.record.targets is not None else GroundTruth.empty()
                if pert.geometric and len(t):
                    boxes, kept = transform_boxes(pert, t.boxes, params, h, w)
                    t = GroundTruth(boxes, t.labels[kept], t.iscrowd[kept])
                self.gts[cell].append(t)
            self.params[cell].extend(batch_params)
            image = _LazyPerturbed(pert, good, batch_params, rngs)
            tag = f"{pert.name}@{pert.version}"
            preds = _run_models(
                models, cache, good, image, condition=(tag, severity, self.seed),
                fail_fast=fail_fast, model_seconds=model_seconds, advance=advance,
                count_dropped=False,
            )  # fmt: skip
            for name, dets in preds.items():
                self.dets[name][cell].extend(dets)

    def score(
        self,
        model: LoadedModel,
        clean_dets: Sequence[Detections],
        clean: CleanMetrics | None,
        num_classes: int,
        evaluable: Sequence[int],
        operating_conf: float,
        strictness: float,
    ) -> dict[str, PerturbationResult]:
        if self.suite is None:
            return {}
        out: dict[str, PerturbationResult] = {}
        for name, severities in self.suite.severities.items():
            pert = self.perts[name]
            by_sev: dict[str, CellResult] = {}
            for severity in severities:
                cell = (name, severity)
                dets = self.dets[model.name][cell]
                cons = consistency(
                    clean_dets,
                    dets,
                    conf=operating_conf,
                    strictness=strictness,
                    perturbation=pert,
                    params=self.params[cell],
                    sizes=self.sizes[cell],
                )
                m50_95 = m50 = None
                if clean is not None and evaluable:
                    ev = evaluate(self.gts[cell], dets, num_classes, classes=list(evaluable))
                    m50_95, m50 = float(ev.stat("map50_95")), float(ev.stat("map50"))
                by_sev[str(severity)] = CellResult(
                    map50_95=m50_95,
                    map50=m50,
                    consistency=float(cons.mean),
                    affected_fraction=float(cons.affected_fraction),
                )
            rpc = None
            if clean is not None and clean.map50_95 > 0:
                vals = [c.map50_95 for c in by_sev.values() if c.map50_95 is not None]
                rpc = float(np.mean(vals)) / clean.map50_95 if vals else None
            out[name] = PerturbationResult(
                family=pert.family,
                rpc=rpc,
                consistency=float(np.mean([c.consistency for c in by_sev.values()])),
                affected_fraction=float(np.mean([c.affected_fraction for c in by_sev.values()])),
                severities=by_sev,
            )
        return out

    def info(self, operating_conf: float, strictness: float) -> SuiteInfo | None:
        if self.suite is None:
            return None
        return SuiteInfo(
            name=self.suite.name,
            seed=self.seed,
            operating_conf=operating_conf,
            strictness=strictness,
            perturbations={p: list(s) for p, s in self.suite.severities.items()},
            versions={p: self.perts[p].version for p in self.suite.severities},
        )
