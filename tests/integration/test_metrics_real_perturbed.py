"""Exactness on real predictions under perturbation: both shared detectors on css-valid images,
clean and perturbed (photometric and geometric, with boxes moved), scored by brittle and by
pycocotools; the 12 stats and the full precision tables (T x R x K x A x M) must agree.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from brittle.coco_format import dets_to_coco, gt_to_coco
from brittle.data import open_dataset
from brittle.metrics.coco import evaluate
from brittle.models import load_predictor
from brittle.models.classmap import build_label_map, load_class_map
from brittle.perturbations import get_perturbation, rng_for
from brittle.types import Detections, GroundTruth

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = [("clean", 0), ("gaussian_noise", 3), ("jpeg_compression", 5), ("rotate", 3),
              ("crop", 4)]  # fmt: skip
N_IMAGES = 48


@pytest.fixture(scope="module")
def runs(assets: Path) -> dict[tuple[str, str], tuple[list[GroundTruth], list[Detections]]]:
    import os

    os.environ.setdefault("BRITTLE_ASSETS", str(assets))
    dataset = open_dataset(assets / "css-valid")
    records = dataset.records[:N_IMAGES]
    mapping = load_class_map(assets / "models" / "coco_to_css.yaml")
    models = {
        "yolox": load_predictor(str(assets / "models" / "yolox_nano_coco.onnx"))[0],
        "fastestdet": load_predictor(f"{ROOT / 'examples' / 'fastestdet.py'}:FastestDet")[0],
    }
    out: dict[tuple[str, str], tuple[list[GroundTruth], list[Detections]]] = {}
    samples = [dataset.load(r) for r in records]
    for cond, severity in CONDITIONS:
        images, gts = [], []
        for s in samples:
            assert s.targets is not None
            if cond == "clean":
                images.append(s.image)
                gts.append(s.targets)
                continue
            p = get_perturbation(cond)
            rng = rng_for(0, cond, severity, s.id)
            img, boxes, kept, _ = p(s.image, severity, rng, s.targets.boxes)
            assert boxes is not None
            assert kept is not None
            images.append(img)
            # Geometric perturbations drop boxes that leave the image: keep labels aligned.
            gts.append(GroundTruth(boxes, s.targets.labels[kept]))
        for name, predictor in models.items():
            label_map = build_label_map(list(predictor.class_names), dataset.class_names, mapping)
            dets = [label_map.apply(d)[0] for d in predictor.predict(images)]
            out[(name, cond)] = (gts, dets)
    return out


@pytest.mark.parametrize("model", ["yolox", "fastestdet"])
@pytest.mark.parametrize("condition", [c for c, _ in CONDITIONS])
def test_stats_and_precision_tables_equal_pycocotools(
    runs: dict[tuple[str, str], tuple[list[GroundTruth], list[Detections]]],
    model: str,
    condition: str,
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gts, dets = runs[(model, condition)]
    classes = [5, 9]  # Person, vehicle: what the COCO models can predict through the map
    ours = evaluate(gts, dets, 10, classes=classes)
    names = [f"c{i}" for i in range(10)]
    gt_doc = gt_to_coco(gts, names, classes=classes, widths=[640] * len(gts),
                        heights=[640] * len(gts))  # fmt: skip
    dt_doc = dets_to_coco(dets, classes=classes)
    assert len(dt_doc) > 500  # real predictions at confidence 0.001
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_doc
        coco.createIndex()
        ref = COCOeval(coco, coco.loadRes(dt_doc), "bbox")
        ref.evaluate()
        ref.accumulate()
        ref.summarize()
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], rtol=0, atol=1e-9)
