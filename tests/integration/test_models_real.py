"""The two real detectors on the real dataset: auto-detection, sensible boxes, Person AP50.

YOLOX-nano is loaded with its format auto-detected; FastestDet through the worked
example ``examples/fastestdet.py``. Labels are read straight from the YOLO files so
these tests depend only on brittle.models.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from brittle.models import load_predictor
from brittle.models.base import Predictor
from brittle.models.classmap import build_label_map, load_class_map
from brittle.models.nms import box_iou
from brittle.models.onnx import OnnxDetector

ROOT = Path(__file__).resolve().parents[2]
PERSON = 5  # in css-valid/data.yaml
CSS = ["Hardhat", "Mask", "NO-Hardhat", "NO-Mask", "NO-Safety Vest", "Person",
       "Safety Cone", "Safety Vest", "machinery", "vehicle"]  # fmt: skip


def load(assets: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(RGB image, xyxy boxes, labels) for every css-valid image."""
    out = []
    for path in sorted((assets / "css-valid" / "images").iterdir()):
        bgr = cv2.imread(str(path))
        h, w = bgr.shape[:2]
        label_file = assets / "css-valid" / "labels" / f"{path.stem}.txt"
        rows = np.loadtxt(label_file, ndmin=2) if label_file.stat().st_size else np.zeros((0, 5))
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        out.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), boxes, rows[:, 0].astype(int)))
    return out


@pytest.fixture(scope="module")
def dataset(assets: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return load(assets)


@pytest.fixture(scope="module")
def yolox(assets: Path) -> Predictor:
    predictor, kind = load_predictor(str(assets / "models" / "yolox_nano_coco.onnx"))
    assert kind == "onnx"
    return predictor


@pytest.fixture(scope="module")
def fastestdet(assets: Path) -> Predictor:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRITTLE_ASSETS", str(assets))
        predictor, kind = load_predictor(f"{ROOT / 'examples' / 'fastestdet.py'}:FastestDet")
    assert kind == "python"
    return predictor


def test_yolox_is_recognised_from_its_outputs(yolox: Predictor) -> None:
    assert isinstance(yolox, OnnxDetector)
    assert (yolox.format, yolox.input_hw, yolox.fixed_batch) == ("yolox", (416, 416), 1)
    assert yolox.settings["decoded_in_model"] is False
    assert (yolox.bgr, yolox.scale, yolox.center, yolox.iou) == (True, 1.0, False, 0.65)
    assert len(yolox.class_names) == 80
    assert yolox.names_source.endswith("coco.names")


@pytest.mark.parametrize("model", ["yolox", "fastestdet"])
def test_people_are_found_where_the_labels_say(
    model: str, request: pytest.FixtureRequest, dataset: list, assets: Path
) -> None:
    predictor: Predictor = request.getfixturevalue(model)
    label_map = build_label_map(
        list(predictor.class_names), CSS, load_class_map(assets / "models" / "coco_to_css.yaml")
    )
    with_people = [d for d in dataset if (d[2] == PERSON).sum() >= 2][:4]
    assert len(with_people) == 4
    results = predictor.predict([image for image, _, _ in with_people])
    assert len(results) == 4
    for (image, boxes, labels), raw in zip(with_people, results, strict=True):
        dets, _ = label_map.apply(raw)
        h, w = image.shape[:2]
        assert (dets.boxes >= 0).all()
        assert (dets.boxes[:, [0, 2]] <= w).all()
        assert (dets.boxes[:, [1, 3]] <= h).all()
        confident = dets.select((dets.labels == PERSON) & (dets.scores > 0.3))
        iou = box_iou(confident.boxes, boxes[labels == PERSON])
        assert iou.size
        assert iou.max() > 0.5, f"{model}: no confident person box matches a labelled Person"


def test_a_batch_gives_the_same_detections_as_one_by_one(yolox: Predictor, dataset: list) -> None:
    images = [image for image, _, _ in dataset[:3]]
    batched = yolox.predict(images)
    for image, b in zip(images, batched, strict=True):
        (single,) = yolox.predict([image])
        np.testing.assert_array_equal(single.boxes, b.boxes)
        np.testing.assert_array_equal(single.scores, b.scores)


@pytest.mark.parametrize(("model", "expected"), [("yolox", 0.6), ("fastestdet", 0.55)])
def test_person_ap50_matches_the_shared_readme(
    model: str, expected: float, request: pytest.FixtureRequest, dataset: list
) -> None:
    """The shared README's numbers: Person AP50 about 0.6 (YOLOX-nano) and 0.55 (FastestDet)."""
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    predictor: Predictor = request.getfixturevalue(model)
    person = list(predictor.class_names).index("person")
    images, anns, dets = [], [], []
    for i, (image, boxes, labels) in enumerate(dataset):
        images.append({"id": i, "height": image.shape[0], "width": image.shape[1]})
        for b in boxes[labels == PERSON]:
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [b[0], b[1], w, h], "area": w * h})  # fmt: skip
        (d,) = predictor.predict([image])
        keep = d.labels == person
        for (x1, y1, x2, y2), s in zip(d.boxes[keep].tolist(), d.scores[keep], strict=True):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            dets.append({"image_id": i, "category_id": 1, "score": float(s), "bbox": bbox})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}]}
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[1] == pytest.approx(expected, abs=0.05)
