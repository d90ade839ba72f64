"""Export a run's ground truth and predictions as COCO JSON, so anyone can re-check
brittle's numbers with pycocotools.

The export uses only the run directory: ``results.json`` (which model, which
class mapping) and ``cache.sqlite`` (the evaluated images, their ground truth
and the stored predictions). Categories are the classes the model was
evaluated on, so pycocotools' mAP over the exported files is brittle's mAP.
"""

from __future__ import annotations

import json
from pathlib import Path

from brittle.coco_format import dets_to_coco, gt_to_coco
from brittle.errors import ConfigError
from brittle.evaluate import CACHE_FILE, RESULTS_FILE
from brittle.models.classmap import build_label_map
from brittle.results import Results
from brittle.run.cache import CacheKey, PredictionCache
from brittle.types import Detections, GroundTruth

__all__ = ["export_coco", "load_results"]


def load_results(run_dir: Path) -> Results:
    """Read and validate ``run_dir/results.json``."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {RESULTS_FILE} here; is it a brittle run directory?")
    return Results.model_validate_json(path.read_text())


def export_coco(run_dir: Path, model: str, gt_path: Path, dt_path: Path) -> tuple[int, int]:
    """Write COCO ground truth and results files; returns (images, detections) written."""
    results = load_results(run_dir)
    if model not in results.models:
        raise ConfigError(
            f"{run_dir}: no model {model!r} in this run (models: {', '.join(results.models)})"
        )
    m = results.models[model]
    class_names = results.dataset.class_names
    label_map = build_label_map(m.class_names, class_names, m.class_map)
    classes = sorted(int(c) for c in label_map.evaluable)
    with PredictionCache(run_dir / CACHE_FILE) as cache:
        images = cache.run_images()
        keys = [CacheKey(m.fingerprint, im.hash) for im in images]
        stored = cache.get_many(keys)
    missing = [im.id for im, k in zip(images, keys, strict=True) if k not in stored]
    if missing:
        raise ConfigError(
            f"{run_dir}: {len(missing)} images have no stored prediction for {model!r} "
            f"(first: {missing[0]}); re-run the evaluation to complete it"
        )
    dets: list[Detections] = []
    for k in keys:
        entry = stored[k]
        d = Detections.empty() if entry.error is not None else entry.detections
        dets.append(label_map.apply(d)[0])
    gts = [im.targets if im.targets is not None else GroundTruth.empty() for im in images]
    gt = gt_to_coco(
        gts,
        class_names,
        file_names=[im.id for im in images],
        widths=[im.width for im in images],
        heights=[im.height for im in images],
        classes=classes,
    )
    dt = dets_to_coco(dets, classes=classes)
    gt_path.parent.mkdir(parents=True, exist_ok=True)
    dt_path.parent.mkdir(parents=True, exist_ok=True)
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    return len(images), len(dt)
