"""The embedded demo: deterministic synthetic scenes with exact boxes, and the shipped models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from brittle.data import open_dataset
from brittle.demo import (
    DEMO_SEED,
    MODEL_NAMES,
    demo_models,
    models_dir,
    write_demo_dataset,
)
from brittle.demo.scenes import (
    CLASS_NAMES,
    MAX_OBJECTS,
    MIN_VISIBLE,
    make_scene,
    render_scene,
    write_dataset,
)
from brittle.models.onnx import OnnxDetector

DEMO_DIR = Path(__file__).resolve().parents[2] / "src" / "brittle" / "demo"


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt = np.maximum(a[:2], b[:2])
    rb = np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union


def test_same_seed_same_scene_and_other_seeds_differ() -> None:
    a = make_scene(3, 5)
    b = make_scene(3, 5)
    for x, y in zip(a, b, strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
    assert a[0].tobytes() != make_scene(3, 6)[0].tobytes()
    assert a[0].tobytes() != make_scene(4, 5)[0].tobytes()
    image, boxes, labels = a
    assert image.shape == (160, 160, 3)
    assert image.dtype == np.uint8
    assert boxes.dtype == np.float64
    assert boxes.shape == (len(labels), 4)
    assert labels.dtype == np.int64


def test_other_sizes() -> None:
    image, boxes, _ = make_scene(0, 1, size=96)
    assert image.shape == (96, 96, 3)
    assert (boxes >= 0).all()
    assert (boxes <= 96).all()
    with pytest.raises(ValueError, match="size"):
        make_scene(0, 0, size=8)
    with pytest.raises(ValueError, match="non-negative"):
        make_scene(-1, 0)


def test_boxes_are_tight_around_the_drawn_shapes() -> None:
    n_objects = 0
    classes: set[int] = set()
    for index in range(40):
        scene = render_scene(11, index)
        image, boxes, labels, masks = scene.image, scene.boxes, scene.labels, scene.masks
        size = image.shape[0]
        assert 1 <= len(labels) <= MAX_OBJECTS
        assert ((labels >= 0) & (labels < len(CLASS_NAMES))).all()
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2:] <= size).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        n_objects += len(labels)
        classes.update(labels.tolist())
        for box, mask in zip(boxes.astype(int), masks, strict=True):
            x1, y1, x2, y2 = box
            solid = mask >= 0.5
            # Nothing of the object outside its box, and the object reaches every edge.
            assert solid[y1:y2, x1:x2].sum() == solid.sum()
            for edge in (
                solid[y1:y2, x1],
                solid[y1:y2, x2 - 1],
                solid[y1, x1:x2],
                solid[y2 - 1, x1:x2],
            ):
                assert edge.any()
            # The pixels the object covers really show it: they differ from the background.
            core = mask >= 0.99
            diff = np.abs(image.astype(int) - scene.background.astype(int)).sum(axis=2)
            assert core.any()
            assert diff[core].mean() > 20
            # Occlusion leaves enough of every object visible.
            assert float(mask.sum()) > 0.5 * MIN_VISIBLE * (x2 - x1) * (y2 - y1)
        # Every pixel the objects changed lies within 2 px (anti-aliasing) of a box.
        near_box = np.zeros(image.shape[:2], bool)
        for x1, y1, x2, y2 in boxes.astype(int):
            near_box[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = True
        changed = (image != scene.background).any(axis=2)
        assert not (changed & ~near_box).any()
        assert np.array_equal(image[masks.sum(axis=0) == 0], scene.background[masks.sum(0) == 0])
    assert classes == {0, 1, 2}
    assert n_objects >= 80


def test_write_dataset_opens_as_yolo_with_the_scene_boxes(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", n=12, seed=5)
    assert (root / "data.yaml").is_file()
    ds = open_dataset(root)
    assert ds.format == "yolo"
    assert ds.class_names == CLASS_NAMES
    assert len(ds) == 12
    assert not ds.issues.counts()
    for i, record in enumerate(ds):
        image, boxes, labels = make_scene(5, i)
        assert (record.width, record.height) == (160, 160)
        assert record.targets is not None
        np.testing.assert_array_equal(record.targets.labels, labels)
        np.testing.assert_allclose(record.targets.boxes, boxes, atol=1e-3)
        sample = ds.load(record)
        np.testing.assert_array_equal(sample.image, image)  # PNG: lossless
    again = write_dataset(tmp_path / "e", n=12, seed=5)
    assert _tree_digest(root) == _tree_digest(again)


def test_write_demo_dataset(tmp_path: Path) -> None:
    root = write_demo_dataset(tmp_path / "demo", n=3)
    ds = open_dataset(root)
    assert len(ds) == 3
    assert not ds.issues.counts()
    record = next(iter(ds))
    assert record.targets is not None
    np.testing.assert_allclose(record.targets.boxes, make_scene(DEMO_SEED, 0)[1], atol=1e-3)


def test_demo_models_are_shipped_small_and_torch_free() -> None:
    models = demo_models()
    assert list(models) == list(MODEL_NAMES)
    assert all(p.parent == models_dir() for p in models.values())
    assert sum(p.stat().st_size for p in models.values()) < 2 * 1024 * 1024
    for source in DEMO_DIR.rglob("*.py"):  # the package never needs torch
        assert "import torch" not in source.read_text()
        assert "from torch" not in source.read_text()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_demo_model_loads_as_yolov8_and_detects(name: str) -> None:
    det = OnnxDetector(demo_models()[name])
    assert det.format == "yolov8"
    assert det.class_names == CLASS_NAMES
    assert det.names_source == "model metadata"
    assert det.input_hw == (160, 160)
    scenes = [make_scene(DEMO_SEED, i) for i in range(4)]
    predictions = det.predict([s[0] for s in scenes])
    hits = 0
    for (_, boxes, labels), pred in zip(scenes, predictions, strict=True):
        keep = pred.scores > 0.3
        for box, label in zip(pred.boxes[keep], pred.labels[keep], strict=True):
            same = boxes[labels == label]
            if len(same) and max(_iou(box.astype(float), gt) for gt in same) > 0.5:
                hits += 1
    assert hits >= 4
