"""The runnable examples really run: the classical-CV predictor of examples/shapes_contours.py
detects the demo's shapes through brittle's loader and CLI, and the example torchvision
config builds its model once weights exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_eval_synthetic import ROOT

from brittle.demo import CLASS_NAMES, DEMO_SEED, make_scene, write_demo_dataset
from brittle.metrics.coco import evaluate
from brittle.models import load_predictor
from brittle.types import GroundTruth

SPEC = f"{ROOT / 'examples' / 'shapes_contours.py'}:ShapesContours"
#: Measured: mAP50 0.946 on the demo's first 30 validation scenes (0.938 on all 100); the
#: bound leaves room for OpenCV versions that rasterise or filter a little differently.
MIN_MAP50_30 = 0.85


def test_shapes_contours_detects_the_demo_shapes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "the predictor has no `fingerprint`"
        predictor, kind = load_predictor(SPEC, conf=0.001, max_det=300)
    assert kind == "python"
    assert tuple(predictor.class_names) == CLASS_NAMES
    scenes = [make_scene(DEMO_SEED, i) for i in range(30)]
    images = [image for image, _, _ in scenes]
    dets = predictor.predict(images)
    assert len(dets) == len(images)
    for image, d in zip(images, dets, strict=True):
        h, w = image.shape[:2]
        assert d.boxes[:, [0, 1]].min(initial=0) >= 0
        assert d.boxes[:, 2].max(initial=0) <= w
        assert d.boxes[:, 3].max(initial=0) <= h
        assert set(d.labels.tolist()) <= {0, 1, 2}
    gts = [GroundTruth(boxes, labels) for _, boxes, labels in scenes]
    ev = evaluate(gts, dets, num_classes=len(CLASS_NAMES))
    assert ev.stat("map50") > MIN_MAP50_30, ev.as_dict()
    # Every class is found, not only the easy one.
    assert all(ap is not None and ap > 0.7 for ap in ev.per_class_ap50().values())
    # Deterministic: the same pixels give the same detections (brittle caches them).
    again = predictor.predict(images[:3])
    for a, b in zip(dets[:3], again, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_shapes_contours_fingerprint_follows_its_settings() -> None:
    a, _ = load_predictor(SPEC, conf=0.001)
    b, _ = load_predictor(SPEC, conf=0.001)
    c, _ = load_predictor(SPEC, conf=0.2)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    # A higher confidence threshold keeps a subset.
    image = make_scene(DEMO_SEED, 0)[0]
    (low,), (high,) = a.predict([image]), c.predict([image])
    assert 0 < len(high) <= len(low)
    assert high.scores.min() > 0.2


def test_shapes_contours_runs_through_brittle_run(tmp_path: Path) -> None:
    data = write_demo_dataset(tmp_path / "data", n=8)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "brittle", "run", "--data", str(data), "--suite", "quick",
            "--model", "contours=examples/shapes_contours.py:ShapesContours",
            "--resamples", "100", "--workers", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    model = res["models"]["contours"]
    assert model["kind"] == "python"
    assert model["fingerprint"].startswith("shapes-contours:")
    assert model["failed_images"] == []
    assert model["clean"]["map50"] > 0.7  # measured 0.898 on these 8 scenes
    assert len(model["perturbations"]) == 8  # the quick suite's cells
    run = json.loads((out / "run.json").read_text())
    assert run["inferred_predictions"] == {"contours": 8 * 9}  # clean + 8 cells


def test_example_torchvision_config_builds_its_model(tmp_path: Path) -> None:
    """examples/fasterrcnn.torchvision.yaml, with weights of its architecture and classes
    where it expects them, loads and predicts: its builder_options fit the builder."""
    try:
        import torchvision
    except ImportError:
        if os.environ.get("BRITTLE_REQUIRE_EXTRAS"):  # as .ci/run sets it
            raise
        pytest.skip("torchvision is not installed (pip install 'brittle[torch]')")
    import torch
    import yaml

    config = tmp_path / "fasterrcnn.torchvision.yaml"
    shutil.copy(ROOT / "examples" / "fasterrcnn.torchvision.yaml", config)
    doc = yaml.safe_load(config.read_text())
    torch.manual_seed(0)
    model = torchvision.models.get_model(
        doc["arch"],
        weights=None,
        weights_backbone=None,
        num_classes=len(doc["class_names"]) + 1,  # background: true
        **doc["builder_options"],
    )
    weights = tmp_path / doc["weights"]
    weights.parent.mkdir(parents=True)
    torch.save(model.state_dict(), weights)
    predictor, kind = load_predictor(str(config), conf=0.001, max_det=50, threads=1)
    assert kind == "torchvision"
    assert list(predictor.class_names) == doc["class_names"]
    (dets,) = predictor.predict([make_scene(DEMO_SEED, 0)[0]])
    assert len(dets) > 0
    assert set(dets.labels.tolist()) <= set(range(len(doc["class_names"])))
