"""OnnxDetector end to end on tiny real ONNX files whose outputs are fixed tensors.

Each model is built with ``onnx.helper``: it takes an image input and returns
constant outputs (tiled over the batch when the batch is dynamic), so the whole
path -- session, probe, auto-detection, names, pre-processing, decoding, NMS and
the letterbox undone -- runs for real with known answers.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brittle.errors import ConfigError, ModelError, ShapeError
from brittle.models import load_predictor
from brittle.models.decoders import anchor_free_cells
from brittle.models.onnx import OnnxDetector

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

S = 64  # input size of the tiny models
CELLS = anchor_free_cells(S, S)


def make_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    *,
    batch: int | str = 1,
    size: int | str = S,
    metadata: dict[str, str] | None = None,
) -> Path:
    """An ONNX model with one image input whose outputs are ``outputs`` (batch dim first)."""
    shape = [batch, 3, size, size]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)
    nodes, outs = [], []
    dynamic = isinstance(batch, str)
    if dynamic:
        nodes += [
            helper.make_node("Shape", ["images"], ["shape"]),
            helper.make_node("Slice", ["shape", "zero", "one"], ["batch"]),
        ]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    for name, value in outputs.items():
        const = f"{name}_const"
        inits.append(numpy_helper.from_array(value, const))
        if dynamic:
            # Repeat the single-image tensor along the batch: [batch, 1, 1, ...].
            ones = numpy_helper.from_array(np.ones(value.ndim - 1, np.int64), f"{name}_ones")
            inits.append(ones)
            nodes += [
                helper.make_node("Concat", ["batch", f"{name}_ones"], [f"{name}_reps"], axis=0),
                helper.make_node("Tile", [const, f"{name}_reps"], [name]),
            ]
            out_shape: list[Any] = [batch, *value.shape[1:]]
        else:
            nodes.append(helper.make_node("Identity", [const], [name]))
            out_shape = list(value.shape)
        dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
        outs.append(helper.make_tensor_value_info(name, dtype, out_shape))
    graph = helper.make_graph(nodes, "tiny", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, path)
    return path


@pytest.fixture
def image() -> np.ndarray:
    """A 32x64 (h x w) RGB image: letterboxed into 64x64 at scale 1 with 16 rows of padding."""
    return np.zeros((32, 64, 3), np.uint8)


def yolov5_output() -> np.ndarray:
    out = np.zeros((1, 3 * CELLS, 5 + 2), np.float32)
    out[0, 0] = [32, 32, 20, 10, 0.9, 0.1, 0.8]  # input pixels: x 22..42, y 27..37
    out[0, 1] = [33, 32, 20, 10, 0.5, 0.0, 0.8]  # overlaps row 0 (same class): suppressed
    return out


def test_yolov5_auto_detected_with_names_from_ultralytics_metadata(
    tmp_path: Path, image: np.ndarray
) -> None:
    path = make_model(
        tmp_path / "v5.onnx",
        {"output0": yolov5_output()},
        metadata={"names": "{0: 'cat', 1: 'dog'}"},
    )
    det = OnnxDetector(path)
    assert det.format == "yolov5"
    assert det.class_names == ("cat", "dog")
    assert (det.center, det.bgr, det.iou, det.multi_label) == (True, False, 0.6, True)
    (d,) = det.predict([image])
    # Centred letterbox: 16 rows of padding above; y 27..37 in the input -> 11..21.
    assert d.boxes.tolist() == [[22, 11, 42, 21], [22, 11, 42, 21]]
    assert d.labels.tolist() == [1, 0]
    assert d.scores.tolist() == pytest.approx([0.72, 0.09])
    assert "yolov5" in repr(det)


def test_yolov8_layout_with_dynamic_batch_runs_one_batch(tmp_path: Path) -> None:
    out = np.zeros((1, 4 + 3, CELLS), np.float32)
    out[0, :, 10] = [16, 16, 8, 8, 0.0, 0.0, 0.95]
    path = make_model(tmp_path / "v8.onnx", {"output0": out}, batch="batch")
    (tmp_path / "v8.names").write_text("a\nb\nc\n")
    det = OnnxDetector(path)
    assert (det.format, det.fixed_batch, det.names_source) == (
        "yolov8",
        None,
        str(tmp_path / "v8.names"),
    )
    calls = []
    run = det.run
    det.run = lambda blob: calls.append(len(blob)) or run(blob)  # type: ignore[method-assign]
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((128, 128, 3), np.uint8)]
    first, second = det.predict(images)
    assert calls == [2]
    assert first.boxes.tolist() == [[12, 12, 20, 20]]
    assert second.boxes.tolist() == [[24, 24, 40, 40]]  # scale 0.5 undone
    assert second.labels.tolist() == [2]


def test_yolox_top_left_letterbox_and_bgr(tmp_path: Path, image: np.ndarray) -> None:
    out = np.random.default_rng(0).uniform(0, 1, (1, CELLS, 5 + 1)).astype(np.float32)
    out[0, :, 4] = 0.0
    out[0, 9] = [0.5, 0.5, 0.0, 0.0, 0.9, 1.0]  # stride 8, cell (1, 1): centre 12, 12, size 8
    path = make_model(tmp_path / "x.onnx", {"output": out})
    det = OnnxDetector(path, names=["thing"])
    assert (det.format, det.center, det.bgr, det.scale, det.iou) == (
        "yolox",
        False,
        True,
        1.0,
        0.65,
    )
    (d,) = det.predict([image])
    assert d.boxes.tolist() == [[8, 8, 16, 16]]  # top-left: no padding to undo
    blob, _ = det.preprocess([np.dstack([np.full((64, 64), v, np.uint8) for v in (1, 2, 3)])])
    assert blob[0, :, 0, 0].tolist() == [3.0, 2.0, 1.0]  # BGR, raw 0..255


def test_preprocess_rgb_scaled_centred_with_padding(tmp_path: Path) -> None:
    det = OnnxDetector(make_model(tmp_path / "v5.onnx", {"o": yolov5_output()}), names=["a", "b"])
    img = np.dstack([np.full((32, 64), v, np.uint8) for v in (51, 102, 255)])
    blob, (fit,) = det.preprocess([img])
    assert blob.dtype == np.float32
    assert blob.shape == (1, 3, S, S)
    assert blob[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # padding row
    assert blob[0, :, 32, 32] == pytest.approx([0.2, 0.4, 1.0])  # RGB / 255
    assert (fit.pad_x, fit.pad_y) == (0, 16)
    plain = OnnxDetector(det.path, names=["a", "b"], letterbox=False, bgr=True, scale=1.0)
    blob, _ = plain.preprocess([img])
    assert blob[0, :, 0, 0].tolist() == [255.0, 102.0, 51.0]


def test_e2e_outputs_and_fixed_batch_loop(tmp_path: Path) -> None:
    boxes = np.array([[[0, 0, 32, 32], [10, 10, 20, 20], [1, 1, 2, 2]]], np.float32)
    scores = np.array([[0.9, 0.8, 0.0001]], np.float32)
    labels = np.array([[1, 1, 0]], np.int64)
    path = make_model(tmp_path / "e2e.onnx", {"boxes": boxes, "scores": scores, "labels": labels})
    det = OnnxDetector(path, names=["a", "b"])
    assert (det.format, det.iou, det.fixed_batch) == ("e2e", None, 1)
    results = det.predict([np.zeros((64, 64, 3), np.uint8)] * 3)
    assert len(results) == 3
    # No NMS for end-to-end models: overlapping boxes of one class both stay.
    assert results[2].boxes.tolist() == [[0, 0, 32, 32], [10, 10, 20, 20]]


def test_e2e_label_beyond_the_names_is_a_model_error(tmp_path: Path) -> None:
    packed = np.array([[[0, 0, 5, 5, 0.9, 7]]], np.float32)
    det = OnnxDetector(make_model(tmp_path / "p.onnx", {"dets": packed}), names=["a", "b"])
    with pytest.raises(ModelError, match=r"returned class id 7 but has 2 class names"):
        det.predict([np.zeros((64, 64, 3), np.uint8)])


def test_format_option_overrides_and_ambiguity_error_tells_how(tmp_path: Path) -> None:
    out = np.zeros((1, 300, 6), np.float32)
    path = make_model(tmp_path / "m.onnx", {"output0": out}, metadata={"names": "['a']"})
    assert OnnxDetector(path).format == "e2e"
    assert OnnxDetector(path, format="yolov5").format == "yolov5"
    weird = make_model(tmp_path / "w.onnx", {"out": np.zeros((1, 300, 90), np.float32)})
    with pytest.raises(ModelError) as exc:
        OnnxDetector(weird, names=["a"])
    assert str(exc.value).startswith(
        f"{weird}: cannot tell the output layout: outputs out [1, 300, 90]"
    )
    assert str(exc.value).endswith("Pass format=yolov5|yolov8|yolox|e2e (CLI: --format).")
    with pytest.raises(ConfigError, match="unknown format 'yolo'"):
        OnnxDetector(path, format="yolo")


def test_input_size_dynamic_default_option_and_fixed_conflict(tmp_path: Path) -> None:
    out = np.zeros((1, 300, 6), np.float32)
    dyn = make_model(tmp_path / "d.onnx", {"o": out}, size="size", metadata={"names": "['a']"})
    assert OnnxDetector(dyn).input_hw == (640, 640)
    assert OnnxDetector(dyn, input_size=320).input_hw == (320, 320)
    assert OnnxDetector(dyn, input_size=(256, 320)).input_hw == (256, 320)
    meta = make_model(
        tmp_path / "m.onnx",
        {"o": out},
        size="s",
        metadata={"names": "['a']", "imgsz": "[480, 480]"},
    )
    assert OnnxDetector(meta).input_hw == (480, 480)
    fixed = make_model(tmp_path / "f.onnx", {"o": out}, metadata={"names": "['a']"})
    with pytest.raises(ConfigError, match=r"fixed at 64x64; input_size 640 cannot be used"):
        OnnxDetector(fixed, input_size=640)


def test_class_names_sources_and_errors(tmp_path: Path) -> None:
    out = yolov5_output()
    path = make_model(tmp_path / "model.onnx", {"o": out})
    with pytest.raises(ConfigError) as exc:
        OnnxDetector(path)
    assert str(exc.value) == (
        f"{path}: no class names: the model has no 'names' metadata and there is no "
        f"model.names beside it; put the names, one per line, in {tmp_path / 'model.names'}, "
        "or pass names=FILE"
    )
    (tmp_path / "coco.names").write_text("x\ny\n")
    assert OnnxDetector(path).class_names == ("x", "y")  # the only *.names in the folder
    (tmp_path / "other.names").write_text("p\nq\n")
    with pytest.raises(ConfigError, match=r"found 2 \*.names files: coco.names, other.names"):
        OnnxDetector(path)
    (tmp_path / "model.yaml").write_text("names: {0: cat, 1: dog}\n")
    assert OnnxDetector(path).class_names == ("cat", "dog")  # <stem>.yaml wins
    assert OnnxDetector(path, names=tmp_path / "other.names").class_names == ("p", "q")
    with pytest.raises(ConfigError, match=r"predicts 2 classes but names option lists 3 names"):
        OnnxDetector(path, names=["a", "b", "c"])


def test_fingerprint_tracks_weights_and_every_decoding_option(tmp_path: Path) -> None:
    a = make_model(tmp_path / "a.onnx", {"o": yolov5_output()}, metadata={"names": "['a', 'b']"})
    changed = yolov5_output()
    changed[0, 5, 0] = 1.0
    b = make_model(tmp_path / "b.onnx", {"o": changed}, metadata={"names": "['a', 'b']"})
    base = OnnxDetector(a).fingerprint
    assert base == OnnxDetector(a).fingerprint
    assert base.startswith("onnx:")
    variants = [
        OnnxDetector(b),
        OnnxDetector(a, conf=0.01),
        OnnxDetector(a, iou=0.5),
        OnnxDetector(a, max_det=100),
        OnnxDetector(a, multi_label=False),
        OnnxDetector(a, bgr=True),
        OnnxDetector(a, scale=1.0),
        OnnxDetector(a, letterbox=False),
        OnnxDetector(a, center=False),
        OnnxDetector(a, format="yolov5", pad_value=0),
    ]
    prints = {v.fingerprint for v in variants}
    assert len(prints) == len(variants)
    assert base not in prints
    # Names do not change predictions (labels are indices): the cache stays valid.
    assert OnnxDetector(a, names=["x", "y"]).fingerprint == base


def test_bad_images_and_files(tmp_path: Path) -> None:
    det = OnnxDetector(make_model(tmp_path / "v5.onnx", {"o": yolov5_output()}), names=["a", "b"])
    with pytest.raises(ShapeError, match=r"expected an RGB uint8 \(H, W, 3\) image, got float64"):
        det.predict([np.zeros((8, 8, 3))])
    assert det.predict([]) == []
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load the model"):
        OnnxDetector(junk)


def test_load_predictor_dispatches_onnx_with_options(tmp_path: Path) -> None:
    path = make_model(
        tmp_path / "v5.onnx", {"o": yolov5_output()}, metadata={"names": "['a', 'b']"}
    )
    predictor, kind = load_predictor(str(path), conf=0.5, max_det=1, format="yolov5")
    assert kind == "onnx"
    assert isinstance(predictor, OnnxDetector)
    assert (predictor.conf, predictor.max_det) == (0.5, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (d,) = predictor.predict([np.zeros((64, 64, 3), np.uint8)])
    assert d.labels.tolist() == [1]
