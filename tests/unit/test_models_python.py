"""Python predictors (file.py:Name, module:Name) and load_predictor's dispatch."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from brittle.errors import ConfigError, ModelError, UnknownNameError
from brittle.models import load_predictor, predictor_kind, predictors
from brittle.models.base import Predictor
from brittle.models.python import load_python_predictor

SOURCE = textwrap.dedent(
    """
    import numpy as np
    from brittle.types import Detections

    class Good:
        class_names = ("a", "b")

        def __init__(self, conf=0.25, max_det=100):
            self.conf, self.max_det = conf, max_det
            self.fingerprint = f"good-{conf}-{max_det}"

        def predict(self, images):
            return [Detections([[0, 0, 1, 1]], [0.9], [1]) for _ in images]

    class NoFingerprint:
        class_names = ["a"]

        def predict(self, images):
            return [Detections.empty() for _ in images]

    class NoPredict:
        class_names = ["a"]
        fingerprint = "x"

    class NothingAtAll:
        pass

    class BadNames:
        class_names = "person"
        fingerprint = "x"

        def predict(self, images):
            return []

    def factory():
        return Good(conf=0.5)

    def broken():
        raise FileNotFoundError("weights.bin")

    instance = Good()
    """
)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(SOURCE)
    return path


def test_class_gets_the_evaluation_options_it_declares(module: Path) -> None:
    p = load_python_predictor(f"{module}:Good", conf=0.001, max_det=300)
    assert isinstance(p, Predictor)
    assert p.fingerprint == "good-0.001-300"
    assert p.predict([np.zeros((4, 4, 3), np.uint8)])[0].labels.tolist() == [1]


def test_factories_and_instances_work_too(module: Path) -> None:
    assert load_python_predictor(f"{module}:factory").fingerprint == "good-0.5-100"
    assert load_python_predictor(f"{module}:instance", conf=0.001).fingerprint == ("good-0.25-100")


def test_options_a_predictor_cannot_take_are_dropped_with_a_warning_unless_defaults(
    module: Path,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_python_predictor(f"{module}:factory", conf=0.001, max_det=300)
    with pytest.warns(UserWarning, match=r"factory\(\) takes no iou, format parameter"):
        load_python_predictor(f"{module}:factory", iou=0.5, format="yolox")


def test_missing_fingerprint_is_derived_from_the_file_with_a_warning(module: Path) -> None:
    ref = f"{module}:NoFingerprint"
    with pytest.warns(UserWarning, match=r"has no `fingerprint`.*cannot see changes to the"):
        p = load_python_predictor(ref)
    assert p.fingerprint.startswith("python:")
    assert list(p.class_names) == ["a"]
    assert len(p.predict([np.zeros((2, 2, 3), np.uint8)])[0]) == 0
    with pytest.warns(UserWarning, match="no `fingerprint`"):
        assert load_python_predictor(ref).fingerprint == p.fingerprint
    module.write_text(SOURCE + "\n# edited\n")
    with pytest.warns(UserWarning, match="no `fingerprint`"):
        assert load_python_predictor(ref).fingerprint != p.fingerprint


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("NoPredict", ConfigError, "{m}:NoPredict: NoPredict made a NoPredict without "
         "`predict`; a predictor needs `class_names` (list of str), `predict(images) -> "
         "list[Detections]` and `fingerprint` (str) -- see docs/models.md and "
         "examples/fastestdet.py"),
        ("NothingAtAll", ConfigError, "{m}:NothingAtAll: NothingAtAll made a NothingAtAll "
         "without `class_names`, `predict`; a predictor needs"),
        ("BadNames", ConfigError, "{m}:BadNames: class_names must be a non-empty list of "
         "str, got 'person'"),
        ("broken", ModelError, "{m}:broken: calling broken() failed: FileNotFoundError: "
         "weights.bin"),
        ("Missing", ConfigError, "{m}:Missing: {m} has no attribute 'Missing'"),
    ],
)  # fmt: skip
def test_loading_errors_say_what_is_wrong(
    module: Path, name: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as exc:
        load_python_predictor(f"{module}:{name}")
    assert str(exc.value).startswith(message.format(m=module))


def test_load_predictor_dispatch(module: Path, tmp_path: Path) -> None:
    p, kind = load_predictor(f"{module}:Good", conf=0.001, max_det=300)
    assert (kind, p.fingerprint) == ("python", "good-0.001-300")
    assert predictor_kind("pkg.models:Detector") == "python"
    assert sorted(predictors) == ["http", "onnx", "python", "torchvision", "ultralytics"]
    with pytest.raises(ConfigError, match=r"missing\.onnx: model file does not exist"):
        load_predictor(str(tmp_path / "missing.onnx"))
    with pytest.raises(ConfigError, match=r"nothing\.py:X: file .*nothing\.py does not exist"):
        load_predictor(str(tmp_path / "nothing.py") + ":X")
    with pytest.raises(ConfigError, match=r"given by its URL answers with class names"):
        load_predictor("https://example.com/yolo.onnx")
    with pytest.raises(ConfigError, match=r"yolov8n\.pt: model file does not exist"):
        load_predictor("yolov8n.pt")
    with pytest.raises(ConfigError, match=r"model\.tflite: not a model brittle can load"):
        load_predictor("model.tflite")
    with pytest.raises(UnknownNameError, match=r"unknown model kind 'onx'; did you mean 'onnx'"):
        load_predictor("m.onnx", kind="onx")
