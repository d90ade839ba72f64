"""Predictors: load a model from a spec string and run it.

A spec is a ``.onnx`` file (run by :class:`~brittle.models.onnx.OnnxDetector`),
``path/to/file.py:Name`` / ``module:Name`` (a Python predictor), a ``*.http.yaml``
file describing a hosted model or just its ``https://`` URL (Roboflow's format;
:mod:`brittle.models.http`), an Ultralytics ``.pt``
file (:mod:`brittle.models.ultralytics_model`, extra ``brittle[ultralytics]``) or a
torchvision model, ``torchvision:ARCH`` or ``*.torchvision.yaml``
(:mod:`brittle.models.torchvision_model`, extra ``brittle[torch]``). Other kinds come
from plugins registered under the ``brittle.predictors`` entry-point group, each a
loader ``(spec, **options) -> Predictor`` selected with ``kind=``. Heavy imports
(onnxruntime, httpx, torch) happen inside the loaders.

>>> predictor_kind("models/yolox_nano.onnx"), predictor_kind("examples/fastestdet.py:FastestDet")
('onnx', 'python')
>>> predictor_kind("examples/roboflow.http.yaml"), predictor_kind("runs/train/weights/best.pt")
('http', 'ultralytics')
>>> predictor_kind("torchvision:fcos_resnet50_fpn"), predictor_kind("ppe.torchvision.yaml")
('torchvision', 'torchvision')
>>> load_predictor("weights/detector.pth")
Traceback (most recent call last):
...
brittle.errors.ConfigError: weights/detector.pth: which architecture are these weights for? \
For a torchvision model, describe it in NAME.torchvision.yaml (arch:, weights: \
weights/detector.pth, class_names:) and pass that; for an Ultralytics model, pass its .pt \
file; anything else: export to ONNX or wrap it in a Python predictor (docs/models.md)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from brittle.errors import ConfigError
from brittle.models.base import Predictor
from brittle.registry import Registry

__all__ = ["LoadedPredictor", "Predictor", "load_predictor", "predictor_kind", "predictors"]

#: Loaders by model kind: ``(spec, **options) -> Predictor``.
predictors: Registry[Callable[..., Predictor]] = Registry(
    "model kind", entry_point_group="brittle.predictors"
)


@predictors.register("onnx")
def _load_onnx(spec: str, **options: Any) -> Predictor:
    from brittle.models.onnx import OnnxDetector

    return OnnxDetector(spec, **options)


@predictors.register("python")
def _load_python(spec: str, **options: Any) -> Predictor:
    from brittle.models.python import load_python_predictor

    return load_python_predictor(spec, **options)


@predictors.register("http")
def _load_http(spec: str, **options: Any) -> Predictor:
    from brittle.models.http import load_http_predictor

    return load_http_predictor(spec, **options)


@predictors.register("ultralytics")
def _load_ultralytics(spec: str, **options: Any) -> Predictor:
    from brittle.models.ultralytics_model import load_ultralytics_predictor

    return load_ultralytics_predictor(spec, **options)


@predictors.register("torchvision")
def _load_torchvision(spec: str, **options: Any) -> Predictor:
    from brittle.models.torchvision_model import load_torchvision_predictor

    return load_torchvision_predictor(spec, **options)


class LoadedPredictor(NamedTuple):
    """A loaded predictor and the kind of loader that made it (``onnx``, ``python``, …)."""

    predictor: Predictor
    kind: str


def predictor_kind(spec: str) -> str:
    """Which loader a spec needs; ConfigError for specs brittle cannot load (yet)."""
    low = spec.lower()
    if low.startswith(("http://", "https://")) or low.endswith((".http.yaml", ".http.yml")):
        return "http"
    if low.startswith("torchvision:") or low.endswith((".torchvision.yaml", ".torchvision.yml")):
        return "torchvision"
    if low.endswith(".pt"):
        return "ultralytics"
    if low.endswith(".pth"):
        raise ConfigError(
            f"{spec}: which architecture are these weights for? For a torchvision model, "
            f"describe it in NAME.torchvision.yaml (arch:, weights: {spec}, class_names:) and "
            "pass that; for an Ultralytics model, pass its .pt file; anything else: export "
            "to ONNX or wrap it in a Python predictor (docs/models.md)"
        )
    if low.endswith(".onnx"):
        return "onnx"
    module_part, sep, attr = spec.rpartition(":")
    if sep and module_part and attr and attr.isidentifier():
        return "python"
    raise ConfigError(
        f"{spec}: not a model brittle can load; pass a .onnx file, path/to/file.py:Name "
        "or module:Name (a Python predictor)"
    )


def load_predictor(spec: str, *, kind: str | None = None, **options: Any) -> LoadedPredictor:
    """Load the model ``spec`` names, with loader ``options`` (e.g. ``format``, ``conf``).

    Returns ``(predictor, kind)``. ``kind`` picks a registered loader explicitly (for
    plugins); otherwise it follows from the spec (:func:`predictor_kind`).
    """
    if kind is None:
        kind = predictor_kind(spec)
        if kind in ("onnx", "ultralytics") and not Path(spec).is_file():
            hint = ""
            if kind == "ultralytics" and "/" not in spec and "\\" not in spec:
                # Ultralytics fetches `yolov8n.pt` by name; brittle reaches no such host.
                hint = (
                    "; brittle downloads nothing: get the weights once (e.g. `yolo predict "
                    f"model={spec}` fetches them into the current folder) and pass their path"
                )
            raise ConfigError(f"{spec}: model file does not exist{hint}")
    threads = options.pop("threads", None)
    if threads is not None and kind == "onnx":
        options["intra_op_num_threads"] = threads
    elif threads is not None and kind in ("python", "ultralytics", "torchvision"):
        options["threads"] = threads
    return LoadedPredictor(predictors.get(kind)(spec, **options), kind)
