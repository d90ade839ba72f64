"""Ultralytics ``.pt`` detectors (YOLOv5u/v8/v9/v10/11/12 ...), run by Ultralytics itself.

Needs the optional extra ``brittle[ultralytics]``. **Ultralytics is AGPL-3.0**: brittle
(Apache-2.0) never imports it unless you load a ``.pt`` model, and does not depend on it.

Predictions are exactly what your deployment code gets from
``YOLO(path).predict(image, conf=, iou=, max_det=, imgsz=)``: Ultralytics' own letterbox
(minimal padding to a multiple of the stride) and class-aware NMS, on one image at a time.
One at a time because Ultralytics pads a batch to a shared shape only when every image in
it has the same size, so an image's predictions would depend on which images shared its
batch. (The same model exported to ONNX and run by brittle's ONNX predictor uses a square
letterbox and multi-label NMS, the ``yolo val`` conventions, so its numbers differ slightly.)

Segmentation and pose models are evaluated on their boxes; classification and oriented
(OBB) models are refused. Ultralytics is kept offline (``YOLO_OFFLINE``) and from
installing packages (``YOLO_AUTOINSTALL=false``) unless you set those variables yourself.

>>> UltralyticsDetector("weights/missing.pt")
Traceback (most recent call last):
...
brittle.errors.ConfigError: weights/missing.pt: model file does not exist
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from brittle.errors import ConfigError, ModelError
from brittle.models.extras import (
    framework_versions,
    quiet_ultralytics_environment,
    require,
    set_torch_threads,
)
from brittle.models.onnx import file_sha256
from brittle.types import Detections

__all__ = ["UltralyticsDetector"]

_LICENCE = "Ultralytics is AGPL-3.0; brittle uses it only for .pt models"
_BOX_TASKS = ("detect", "segment", "pose")


def _import_ultralytics() -> Any:
    """Import Ultralytics without letting it change how brittle reads images.

    Importing it replaces ``PIL.Image.open`` process-wide with a wrapper that, on a file
    Pillow cannot identify, tries to install and import a HEIF plugin: brittle's dataset
    reader would then report a text file named ``.jpg`` as "No module named 'pi_heif'".
    brittle gives Ultralytics decoded arrays, never files, so Pillow's own ``open`` is
    put back.
    """
    from PIL import Image

    before = Image.open
    ultralytics = require("ultralytics", extra="ultralytics", note=_LICENCE)
    if getattr(before, "__module__", "").startswith("ultralytics"):
        # Imported (and patched) before brittle got here: its saved original.
        patches = sys.modules.get(before.__module__)
        before = getattr(patches, "_image_open", None) or before
    if Image.open is not before:
        Image.open = before
    return ultralytics


class UltralyticsDetector:
    """An Ultralytics model file (``.pt``) as a brittle :class:`~brittle.models.Predictor`.

    ``conf``, ``iou``, ``max_det`` as for every model (``iou`` defaults to Ultralytics'
    0.7); ``input_size`` is ``imgsz`` (default: the size the model was trained at, as
    ``predict`` does); ``threads`` limits PyTorch's threads in this process.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        conf: float = 0.001,
        iou: float | None = None,
        max_det: int = 300,
        input_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{path}: model file does not exist")
        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"{path}: conf must be between 0 and 1, got {conf}")
        if iou is not None and not 0.0 < iou <= 1.0:
            raise ConfigError(f"{path}: iou must be in (0, 1], got {iou}")
        quiet_ultralytics_environment()
        ultralytics = _import_ultralytics()
        set_torch_threads(threads)
        try:
            model = ultralytics.YOLO(str(self.path))
        except Exception as exc:
            raise ModelError(
                f"{path}: Ultralytics could not load it ({type(exc).__name__}: {exc}); a "
                "torchvision checkpoint needs a NAME.torchvision.yaml (docs/models.md)"
            ) from exc
        if model.task not in _BOX_TASKS:
            raise ConfigError(
                f"{path}: a {model.task!r} model; brittle evaluates axis-aligned boxes, "
                f"from {', '.join(_BOX_TASKS)} models"
            )
        names = model.names
        if sorted(names) != list(range(len(names))):
            raise ModelError(f"{path}: class ids are not 0..{len(names) - 1}: {sorted(names)}")
        self._model = model
        self._names = tuple(str(names[i]) for i in range(len(names)))
        self.conf = conf
        self.iou = 0.7 if iou is None else iou
        self.max_det = max_det
        default_size = model.overrides.get("imgsz", 640)
        self.input_size = int(input_size if input_size is not None else default_size)
        settings = f"conf={conf},iou={self.iou},max_det={max_det},imgsz={self.input_size}"
        versions = framework_versions("ultralytics", "torch")
        self._fingerprint = f"ultralytics:{file_sha256(self.path)[:32]}:{settings}:{versions}"

    @property
    def class_names(self) -> Sequence[str]:
        """The model's own class names, by class id."""
        return self._names

    @property
    def fingerprint(self) -> str:
        """Weights hash, settings, and the Ultralytics and PyTorch versions."""
        return self._fingerprint

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        """Detections per RGB image, in its pixels (one ``predict`` call per image)."""
        return [self._one(im) for im in images]

    def _one(self, image: NDArray[np.uint8]) -> Detections:
        # Ultralytics takes numpy images as OpenCV does: BGR.
        bgr = np.ascontiguousarray(image[..., ::-1])
        (result,) = self._model.predict(
            bgr,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            imgsz=self.input_size,
            device="cpu",
            half=False,
            verbose=False,
        )
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        return Detections(
            boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy()
        )

    def __repr__(self) -> str:
        return f"UltralyticsDetector({str(self.path)!r}, imgsz={self.input_size})"


def load_ultralytics_predictor(spec: str, **options: Any) -> UltralyticsDetector:
    """The ``ultralytics`` model kind: ``path/to/weights.pt``."""
    fmt = options.pop("format", None)
    if fmt is not None:
        raise ConfigError(f"{spec}: --format is for ONNX output layouts, not .pt models")
    return UltralyticsDetector(spec, **options)
