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
from brittle.models.base import Predictor
from brittle.models.classmap import LabelMap
from brittle.results import (
    ClassMetrics,
    CleanMetrics,
    DatasetInfo,
    ModelResult,
    Results,
    Settings,
    dump_json,
)
from brittle.run.cache import CacheKey, PredictionCache, RunImage
from brittle.types import Detections, GroundTruth

__all__ = ["LoadedModel", "ProgressFn", "content_hash", "evaluate_clean", "parse_model_arg"]

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
    #: images this run sent to the model (the rest came from the cache)
    inferred: int = 0


@dataclass(frozen=True, slots=True)
class _Decoded:
    record: ImageRecord
    hash: str
    image: NDArray[np.uint8] | None
    error: str | None


def _decode(dataset: Dataset, record: ImageRecord) -> _Decoded:
    from brittle.data.images import decode_image_bytes

    try:
        data = record.path.read_bytes()
        image = decode_image_bytes(data, record.path)
    except (OSError, DatasetError) as exc:
        return _Decoded(record, "", None, str(exc))
    h, w = image.shape[:2]
    if (w, h) != (record.width, record.height):
        msg = (
            f"{record.path}: decoded size {w}x{h} differs from the header's "
            f"{record.width}x{record.height}; the file may be corrupt"
        )
        return _Decoded(record, "", None, msg)
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


def _predict_missing(
    model: LoadedModel,
    cache: PredictionCache,
    batch: Sequence[_Decoded],
    fail_fast: bool,
) -> list[Detections | None]:
    """Raw (model class space) detections for each image: from the cache, else the model."""
    keys = [CacheKey(model.predictor.fingerprint, d.hash) for d in batch]
    cached = cache.get_many(keys)
    missing = [i for i, k in enumerate(keys) if k not in cached]
    fresh: dict[int, tuple[Detections, str | None]] = {}
    model.inferred += len(missing)
    if missing:
        images = [batch[i].image for i in missing]
        try:
            outs = model.predictor.predict([im for im in images if im is not None])
            if len(outs) != len(missing):
                raise ConfigError(
                    f"model {model.name!r} returned {len(outs)} results for {len(missing)} images"
                )
            fresh = {i: (d, None) for i, d in zip(missing, outs, strict=True)}
        except Exception:
            if fail_fast:
                raise
            # Find the image(s) to blame: retry one at a time and record each failure.
            for i in missing:
                img = batch[i].image
                assert img is not None
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
            model.failed_images.append(batch[i].record.id)
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
) -> Results:
    """Run every model on every image (cached), compute exact COCO metrics, write results.

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
            for m in models:
                t0 = time.perf_counter()
                raw = _predict_missing(m, cache, good, fail_fast)
                model_seconds[m.name] += time.perf_counter() - t0
                for det in raw:
                    if det is None:
                        per_model[m.name].append(Detections.empty())
                        continue
                    mapped, dropped = m.label_map.apply(det)
                    m.dropped += dropped
                    per_model[m.name].append(mapped)
                if progress is not None:
                    progress(len(batch))
            for d in good:
                r = d.record
                gts.append(r.targets if r.targets is not None else GroundTruth.empty())
                kept.append(RunImage(r.id, d.hash, r.width, r.height, r.targets))
        cache.set_run_images(kept)

    labeled = dataset.labeled
    model_results: dict[str, ModelResult] = {}
    for m in models:
        evaluable = sorted(int(c) for c in m.label_map.evaluable)
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
            evaluated_classes=[dataset.class_names[c] for c in evaluable],
            unevaluated_classes=[
                n for i, n in enumerate(dataset.class_names) if i not in set(evaluable)
            ],
            dropped_detections=m.dropped,
            failed_images=sorted(set(m.failed_images)),
            clean=clean,
        )
    results = Results(
        schema_version="1.0",
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
        models=model_results,
    )
    dump_json(results.model_dump(mode="json"), out_dir / RESULTS_FILE)
    run_info = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        "model_seconds": {k: round(v, 3) for k, v in model_seconds.items()},
        "inferred_images": {m.name: m.inferred for m in models},
        "cached_images": {m.name: len(kept) - m.inferred for m in models},
        "brittle_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    (out_dir / RUN_FILE).write_text(json.dumps(run_info, indent=2) + "\n")
    return results
