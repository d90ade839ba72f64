"""Ultralytics and torchvision models through brittle, built from their architecture configs.

Nothing is downloaded: the models are built with seeded random weights (their detection
heads biased so that they do predict boxes), saved the way their users save them, and
loaded through brittle's spec strings. What brittle predicts must equal what the framework
itself predicts for the same model and image, and the whole CLI must run them in worker
processes. Skipped when the extras are not installed, unless BRITTLE_REQUIRE_EXTRAS is set
(as .ci/run does), where a missing extra fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_eval_synthetic import ROOT

from brittle.demo import write_demo_dataset
from brittle.demo.scenes import make_scene
from brittle.errors import ConfigError, ModelError
from brittle.models import load_predictor
from brittle.types import Detections


def _need(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        reason = f"{module} is not installed (pip install 'brittle[{extra}]')"
        if os.environ.get("BRITTLE_REQUIRE_EXTRAS"):
            pytest.fail(f"BRITTLE_REQUIRE_EXTRAS is set but {reason}")
        pytest.skip(reason)


def _images() -> list[np.ndarray]:
    """Demo scenes of three shapes: square, wide, tall (exercises the letterboxes)."""
    rng = np.random.default_rng(5)
    out = [make_scene(seed=3, index=i)[0] for i in range(2)]
    out.append(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8))
    out.append(np.ascontiguousarray(np.rot90(make_scene(seed=3, index=2)[0])[:, :100]))
    return out


def _assert_same(got: Detections, want: Detections, *, atol: float = 0.0) -> None:
    assert len(got) == len(want)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=atol, rtol=0)
    np.testing.assert_allclose(got.scores, want.scores, atol=atol, rtol=0)
    np.testing.assert_array_equal(got.labels, want.labels)


# --- Ultralytics ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def yolo_pt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("ultralytics")
    saved = {k: os.environ.get(k) for k in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE")}
    os.environ["YOLO_CONFIG_DIR"] = str(folder / "config")  # not the user's home
    os.environ["YOLO_OFFLINE"] = "1"
    _need("ultralytics", "ultralytics")
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")  # the architecture only: random weights
    model.model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    model.model.names = {0: "circle", 1: "square", 2: "triangle"}
    for branch in model.model.model[-1].cv3:  # the class-score branch of each level
        torch.nn.init.normal_(branch[-1].weight, std=0.02)
        torch.nn.init.constant_(branch[-1].bias, -3.0)
    path = folder / "yolov8n-random.pt"
    model.save(str(path))
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_ultralytics_pt_predicts_what_ultralytics_predicts(yolo_pt: Path) -> None:
    from ultralytics import YOLO

    predictor, kind = load_predictor(str(yolo_pt), conf=0.01, max_det=100)
    assert kind == "ultralytics"
    # Importing Ultralytics patches PIL.Image.open process-wide; brittle puts Pillow's back.
    from PIL import Image

    assert Image.open.__module__ == "PIL.Image"
    assert tuple(predictor.class_names) == ("circle", "square", "triangle")
    assert predictor.fingerprint.startswith("ultralytics:")
    images = _images()
    got = predictor.predict(images)
    reference = YOLO(str(yolo_pt))
    for image, dets in zip(images, got, strict=True):
        # Ultralytics' documented input for numpy images is BGR, as OpenCV reads them.
        (r,) = reference.predict(image[..., ::-1].copy(), conf=0.01, max_det=100, verbose=False)
        want = Detections(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy())
        assert len(dets) > 0
        _assert_same(dets, want)
        h, w = image.shape[:2]
        assert dets.boxes[:, [0, 1]].min() >= 0
        assert dets.boxes[:, 2].max() <= w
        assert dets.boxes[:, 3].max() <= h


# The export is Ultralytics' own (the reference): its torch.onnx deprecation and tracer
# warnings are not brittle's to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")
def test_ultralytics_pt_agrees_with_its_onnx_export_run_by_brittle(yolo_pt: Path) -> None:
    """Two independent pipelines, one network: Ultralytics on the .pt, and brittle's own
    ONNX decoder on Ultralytics' export of it. On a square image at the input size there
    is no letterbox to differ, so every box Ultralytics keeps must be among brittle's."""
    _need("onnx", "dev")
    from ultralytics import YOLO

    onnx_path = Path(YOLO(str(yolo_pt)).export(format="onnx", imgsz=160, simplify=False))
    pt, _ = load_predictor(str(yolo_pt), conf=0.02, input_size=160)
    ox, kind = load_predictor(str(onnx_path), conf=0.02)
    assert kind == "onnx"
    image = make_scene(seed=3, index=4)[0]
    assert image.shape[:2] == (160, 160)
    (a,) = pt.predict([image])
    (b,) = ox.predict([image])
    assert len(a) > 20
    matched = 0
    for box, score, label in zip(a.boxes, a.scores, a.labels, strict=True):
        same = (b.labels == label) & (np.abs(b.boxes - box).max(axis=1) < 0.05)
        if same.any():
            matched += 1
            assert np.abs(b.scores[same] - score).min() < 1e-4
    # brittle's ONNX path uses multi-label NMS (`yolo val`), Ultralytics' predict single-label:
    # a box's second-best class may suppress a neighbour's best one, so allow a few misses.
    print(f"matched {matched} of {len(a)} (onnx kept {len(b)})")
    assert matched >= 0.9 * len(a), (matched, len(a))


def test_ultralytics_refuses_what_it_cannot_evaluate(tmp_path: Path) -> None:
    _need("ultralytics", "ultralytics")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt: Ultralytics could not load it"):
        load_predictor(str(junk))
    with pytest.raises(ConfigError, match="--format is for ONNX"):
        load_predictor(str(junk), format="yolov8")


# --- torchvision ----------------------------------------------------------------------


def _random_torchvision(arch: str, num_classes: int, **builder: Any) -> Any:
    import torch
    import torchvision

    torch.manual_seed(1)
    model = torchvision.models.get_model(
        arch, weights=None, weights_backbone=None, num_classes=num_classes, **builder
    )
    return model.eval()


def _reference_torchvision(model: Any, image: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    with torch.inference_mode():
        # A writable copy: torch warns about (and may write to) read-only arrays.
        (out,) = model([torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255])
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize(
    ("arch", "builder", "holder"),
    [
        # two-stage: thresholds live on roi_heads
        ("fasterrcnn_mobilenet_v3_large_320_fpn", {}, "roi_heads"),
        # one-stage: thresholds on the model
        ("ssdlite320_mobilenet_v3_large", {}, None),
        ("fcos_resnet50_fpn", {"min_size": 160, "max_size": 200}, None),
    ],
)
def test_torchvision_state_dict_predicts_what_torchvision_predicts(
    tmp_path: Path, arch: str, builder: dict[str, Any], holder: str | None
) -> None:
    _need("torchvision", "torch")
    import torch
    import yaml

    model = _random_torchvision(arch, 4, **builder)
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    spec = tmp_path / "shapes.torchvision.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "arch": arch,
                "weights": "weights.pth",  # relative to the config file
                "class_names": ["circle", "square", "triangle"],
                "builder_options": builder,
            }
        )
    )
    predictor, kind = load_predictor(str(spec), conf=0.001, max_det=50, threads=1)
    assert kind == "torchvision"
    assert tuple(predictor.class_names) == ("circle", "square", "triangle")
    target = getattr(model, holder) if holder else model
    target.score_thresh, target.detections_per_img = 0.001, 50
    images = _images()
    for im in images:
        im.setflags(write=False)  # as brittle's images are: no warning, no copy needed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = predictor.predict(images)
    total = 0
    for image, dets in zip(images, predicted, strict=True):
        want = _reference_torchvision(model, image)
        # torchvision's labels are 1..K and 0 is background (one-stage models can still
        # predict it: it is no class); brittle's labels index class_names.
        real = want["labels"] > 0
        expected = Detections(want["boxes"][real], want["scores"][real], want["labels"][real] - 1)
        _assert_same(dets, expected)
        total += len(dets)
    assert total > 0


def test_torchvision_coco_weights_come_from_the_hub_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need("torchvision", "torch")
    import torch
    import torchvision

    arch = "ssdlite320_mobilenet_v3_large"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match="not in the torch hub cache") as err:
        load_predictor(f"torchvision:{arch}")
    assert "downloads nothing" in str(err.value)
    # Put a (random) checkpoint where torchvision's download would have put it.
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    categories = weights.meta["categories"]
    model = _random_torchvision(arch, len(categories))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cached)

    predictor, kind = load_predictor(f"torchvision:{arch}", conf=0.001, max_det=300)
    assert kind == "torchvision"
    names = list(predictor.class_names)
    assert len(names) == 80
    assert names[0] == "person"
    assert "N/A" not in names
    assert "__background__" not in names
    model.score_thresh, model.detections_per_img = 0.001, 300
    image = _images()[0]
    (dets,) = predictor.predict([image])
    want = _reference_torchvision(model, image)
    real = np.array([categories[i] not in ("N/A", "__background__") for i in want["labels"]])
    assert len(dets) == real.sum() > 0
    # Same detections, named the same: COCO ids became indices into the 80 names.
    assert [names[i] for i in dets.labels] == [categories[i] for i in want["labels"][real]]
    np.testing.assert_array_equal(dets.boxes, want["boxes"][real])


def test_torchvision_config_errors_say_what_to_fix(tmp_path: Path) -> None:
    _need("torchvision", "torch")
    import torch

    spec = tmp_path / "m.torchvision.yaml"
    spec.write_text("arch: fasterrcnn_mobilenet_v3_large_fpm\nweights: w.pth\n")
    with pytest.raises(ConfigError, match="did you mean 'fasterrcnn_mobilenet_v3_large_fpn'"):
        load_predictor(str(spec))
    spec.write_text("arch: ssdlite320_mobilenet_v3_large\nweights: w.pth\n")
    with pytest.raises(ConfigError, match=r"weights file .*w\.pth does not exist"):
        load_predictor(str(spec))
    torch.save(_random_torchvision("ssdlite320_mobilenet_v3_large", 3).state_dict(),
               tmp_path / "w.pth")  # fmt: skip
    with pytest.raises(ConfigError, match="class_names: required with your own weights"):
        load_predictor(str(spec))
    spec.write_text("arch: ssdlite320_mobilenet_v3_large\nweights: w.pth\nclass_names: [a]\n")
    with pytest.raises(ModelError, match=r"do not fit ssdlite.* num_classes=2 \(1 class names \+"):
        load_predictor(str(spec))
    # The same weights trained without a background class: 3 names, labels 0..2.
    spec.write_text(
        "arch: ssdlite320_mobilenet_v3_large\nweights: w.pth\nclass_names: [a, b, c]\n"
        "background: false\n"
    )
    predictor, _ = load_predictor(str(spec), conf=0.001)
    (dets,) = predictor.predict(_images()[:1])
    assert len(dets) > 0
    assert set(dets.labels.tolist()) <= {0, 1, 2}
    spec.write_text("arch: ssdlite320_mobilenet_v3_large\nweights: COCO_V2\nnum_classes: 3\n")
    with pytest.raises(ConfigError, match=r"1 problem\n  num_classes: Extra inputs"):
        load_predictor(str(spec))
    spec.write_text("arch: ssdlite320_mobilenet_v3_large\nweights: COCO_V2\n")
    with pytest.raises(ConfigError, match=r"neither a file nor one of .* \(DEFAULT, COCO_V1\)"):
        load_predictor(str(spec))
    with pytest.raises(ConfigError, match=r"--input-size is for ONNX and \.pt models"):
        load_predictor(str(spec), input_size=320)


# --- the whole CLI --------------------------------------------------------------------


def test_brittle_run_with_framework_models_in_workers(yolo_pt: Path, tmp_path: Path) -> None:
    """Both kinds load again in spawned worker processes from their specs, predict every
    condition, and a re-run reads everything from the cache."""
    _need("torchvision", "torch")
    import torch
    import yaml

    model = _random_torchvision("fasterrcnn_mobilenet_v3_large_320_fpn", 4)
    torch.save(model.state_dict(), tmp_path / "frcnn.pth")
    spec = tmp_path / "frcnn.torchvision.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "arch": "fasterrcnn_mobilenet_v3_large_320_fpn",
                "weights": "frcnn.pth",
                "class_names": ["circle", "square", "triangle"],
            }
        )
    )
    data = write_demo_dataset(tmp_path / "data", n=6)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "brittle", "run", "--data", str(data), "--suite", "quick",
            "--model", f"yolo={yolo_pt}", "--model", f"frcnn={spec}",
            "--resamples", "50", "--workers", "2", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "yolo-config")}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["yolo"]["fingerprint"].startswith("ultralytics:")
    assert res["models"]["frcnn"]["fingerprint"].startswith("torchvision:")
    for m in ("yolo", "frcnn"):
        assert res["models"][m]["failed_images"] == []
        assert len(res["models"][m]["perturbations"]) == 8  # the quick suite's cells
    run = json.loads((out / "run.json").read_text())
    assert run["inferred_predictions"] == {"yolo": 6 * 9, "frcnn": 6 * 9}  # clean + 8 cells
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["inferred_predictions"] == {"yolo": 0, "frcnn": 0}
    assert run["cached_predictions"] == {"yolo": 6 * 9, "frcnn": 6 * 9}
