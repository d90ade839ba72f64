"""torchvision detection models (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite).

Needs the optional extra ``brittle[torch]``. Two ways to name one:

* ``torchvision:ARCH``, e.g. ``torchvision:fasterrcnn_resnet50_fpn_v2``: torchvision's
  COCO weights for ``ARCH`` (its ``DEFAULT``), with their COCO category names;
* ``NAME.torchvision.yaml``: your own weights (a state dict saved with
  ``torch.save(model.state_dict(), path)``) and class names, or a named torchvision weights::

      arch: fasterrcnn_mobilenet_v3_large_fpn   # any builder in torchvision.models.detection
      weights: ppe_detector.pth                 # relative to this file; or DEFAULT, COCO_V1, ...
      class_names: [helmet, vest, person]       # labels 1..K (0 is torchvision's background)
      background: true                          # false if trained with num_classes=K
      builder_options: {min_size: 640}          # more keyword arguments for the builder

brittle downloads nothing: torchvision's own weights are read from the local torch hub
cache (``$TORCH_HOME/hub/checkpoints``), and a missing file is an error that says how to
fetch it once. Images go through the model one at a time, because torchvision pads a
batch to its largest image and the padding changes what the convolutions see at the
borders: an image's predictions would depend on its batch mates.

>>> load_torchvision_config("models/missing.torchvision.yaml")
Traceback (most recent call last):
...
brittle.errors.ConfigError: models/missing.torchvision.yaml: torchvision model config does not exist
>>> compact_categories(["__background__", "person", "N/A", "car"])
(('person', 'car'), [-1, 0, -1, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from brittle.configfiles import read_yaml_mapping, validate
from brittle.errors import ConfigError, ModelError
from brittle.models.extras import framework_versions, require, set_torch_threads
from brittle.models.onnx import file_sha256
from brittle.types import Detections

__all__ = [
    "TorchvisionConfig",
    "TorchvisionDetector",
    "compact_categories",
    "load_torchvision_config",
    "load_torchvision_predictor",
    "weights_is_file",
]

#: Placeholder categories in torchvision's COCO metadata (ids without a class).
_PLACEHOLDERS = frozenset({"__background__", "N/A"})


class TorchvisionConfig(BaseModel):
    """What a ``*.torchvision.yaml`` file holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field(description="a builder in torchvision.models.detection")
    weights: str = Field(
        default="DEFAULT",
        description="a state-dict file (relative to the config) or a torchvision weights name",
    )
    class_names: list[str] | None = Field(
        default=None,
        description="names of labels 1..K (0..K-1 with background: false); required with "
        "a weights file",
        min_length=1,
    )
    background: bool = Field(
        default=True,
        description="label 0 is background (torchvision's convention, num_classes = K + 1); "
        "false for a model trained with num_classes = K and labels 0..K-1",
    )
    builder_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("builder_options")
    @classmethod
    def _not_ours(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & {"weights", "weights_backbone", "num_classes"})
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)}: set by brittle from `weights:` and `class_names:`"
            )
        return value


def load_torchvision_config(spec: str | Path) -> TorchvisionConfig:
    """A ``*.torchvision.yaml`` file, or the ``torchvision:ARCH`` shorthand."""
    text = str(spec)
    if text.startswith("torchvision:"):
        return TorchvisionConfig(arch=text.removeprefix("torchvision:"))
    doc = read_yaml_mapping(
        spec, "torchvision model config", "a torchvision model config is a mapping (arch:, ...)"
    )
    return validate(TorchvisionConfig, doc, str(spec))


def compact_categories(categories: Sequence[str]) -> tuple[tuple[str, ...], list[int]]:
    """Class names without torchvision's placeholders, and each old label's new index (-1: none)."""
    names: list[str] = []
    lut: list[int] = []
    for name in categories:
        if name in _PLACEHOLDERS:
            lut.append(-1)
        else:
            lut.append(len(names))
            names.append(name)
    return tuple(names), lut


def _hub_file(url: str) -> Path:
    torch = require("torch", extra="torch")
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _state_dict(path: Path) -> dict[str, Any]:
    torch = require("torch", extra="torch")
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects could run code.
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path}: not a loadable state dict ({type(exc).__name__}: {exc}); save one with "
            "torch.save(model.state_dict(), path)"
        ) from exc
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(k, str) for k in blob):
        raise ModelError(f"{path}: expected a state dict (parameter name -> tensor)")
    return blob


def weights_is_file(weights: str) -> bool:
    """Whether ``weights:`` names a file (else a torchvision weights name like COCO_V1).

    >>> weights_is_file("ppe.pth"), weights_is_file("ckpt/best"), weights_is_file("COCO_V1")
    (True, True, False)
    """
    return Path(weights).suffix in (".pth", ".pt", ".bin") or "/" in weights or "\\" in weights


class _Weights(NamedTuple):
    names: tuple[str, ...]
    num_classes: int
    state: dict[str, Any]
    digest: str
    lut: list[int] | None


def _resolve_weights(config: TorchvisionConfig, source: str, base_dir: Path | None) -> _Weights:
    """The state dict to load, the class names, and how labels map to them."""
    tv = require("torchvision", extra="torch")
    weights_file = Path(config.weights)
    if base_dir is not None and not weights_file.is_absolute():
        weights_file = base_dir / weights_file
    lut: list[int] | None = None
    if weights_is_file(config.weights) or weights_file.is_file():
        if not weights_file.is_file():
            raise ConfigError(f"{source}: weights file {weights_file} does not exist")
        if config.class_names is None:
            raise ConfigError(
                f"{source}: class_names: required with your own weights (the names of "
                "labels 1..K, in training order)"
            )
        names = tuple(config.class_names)
        num_classes = len(names) + int(config.background)
        if not config.background:
            lut = list(range(len(names)))
        state = _state_dict(weights_file)
        digest = file_sha256(weights_file)[:32]
    else:
        enum = tv.models.get_model_weights(config.arch)
        member = config.weights.rpartition(".")[2]  # COCO_V1 or Its_Weights.COCO_V1
        try:
            named = enum[member] if member != "DEFAULT" else enum.DEFAULT
        except KeyError:
            options = ", ".join(["DEFAULT", *(m for m in enum.__members__ if m != "DEFAULT")])
            raise ConfigError(
                f"{source}: weights {config.weights!r} is neither a file nor one of "
                f"{config.arch}'s torchvision weights ({options})"
            ) from None
        cached = _hub_file(named.url)
        if not cached.is_file():
            raise ConfigError(
                f"{source}: torchvision's {named} weights are not in the torch hub cache "
                f"({cached}); brittle downloads nothing at run time. Fetch them once: "
                f'python -c "import torchvision; torchvision.models.get_model('
                f"'{config.arch}', weights='{named}')\" (or set TORCH_HOME to where they are)"
            )
        categories = list(named.meta["categories"])
        num_classes = len(categories)
        if config.class_names is not None:
            if len(config.class_names) != num_classes - 1:
                raise ConfigError(
                    f"{source}: class_names has {len(config.class_names)} names; "
                    f"{named} has {num_classes - 1} classes"
                )
            names, lut = tuple(config.class_names), None
        else:
            names, lut = compact_categories(categories)
        state = _state_dict(cached)
        digest = f"{named}:{file_sha256(cached)[:32]}"
    return _Weights(names, num_classes, state, digest, lut)


class TorchvisionDetector:
    """A torchvision detection model as a brittle :class:`~brittle.models.Predictor`.

    ``conf`` and ``max_det`` set the model's own score threshold and detections per
    image; ``iou`` its NMS threshold (default: the model's own, 0.5 for most).
    """

    def __init__(
        self,
        config: TorchvisionConfig,
        *,
        source: str,
        base_dir: Path | None = None,
        conf: float = 0.001,
        iou: float | None = None,
        max_det: int = 300,
        threads: int | None = None,
    ) -> None:
        torch = require("torch", extra="torch")
        tv = require("torchvision", extra="torch")
        set_torch_threads(threads)
        known = tv.models.list_models(module=tv.models.detection)
        if config.arch not in known:
            import difflib

            close = difflib.get_close_matches(config.arch, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise ConfigError(
                f"{source}: unknown torchvision detection model {config.arch!r}{hint}"
            )
        names, num_classes, state, digest, lut = _resolve_weights(config, source, base_dir)
        try:
            model = tv.models.get_model(
                config.arch,
                weights=None,
                weights_backbone=None,
                num_classes=num_classes,
                **config.builder_options,
            )
        except TypeError as exc:
            raise ConfigError(f"{source}: builder_options: {exc}") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[:4]
            raise ModelError(
                f"{source}: the weights do not fit {config.arch} with num_classes={num_classes} "
                f"({len(names)} class names{' + background' if num_classes > len(names) else ''}"
                f"): {' '.join(first)}"
            ) from None
        model.eval()
        self._torch = torch
        self._model = model
        self._names = names
        # With torchvision's COCO weights, labels are COCO ids (placeholders included);
        # with one's own, labels 1..K (0..K-1 without background): either way a lookup
        # table to 0-based class indices. One-stage models (RetinaNet, FCOS) can predict
        # label 0 too; as background it is no class and is dropped.
        table = lut if lut is not None else [-1, *range(len(names))]
        self._lut = np.asarray(table, np.int64)
        self._set_thresholds(conf, iou, max_det, source)
        self.config = config
        builder = sorted(config.builder_options.items())
        settings = f"conf={conf},iou={iou},max_det={max_det},builder={builder}"
        versions = framework_versions("torchvision", "torch")
        self._fingerprint = f"torchvision:{config.arch}:{digest}:{settings}:{versions}"

    def _set_thresholds(self, conf: float, iou: float | None, max_det: int, source: str) -> None:
        # Two-stage models keep them on roi_heads; one-stage ones on the model itself.
        holder = getattr(self._model, "roi_heads", self._model)
        for attr in ("score_thresh", "nms_thresh", "detections_per_img"):
            if not hasattr(holder, attr):
                raise ConfigError(f"{source}: {type(self._model).__name__} has no {attr}")
        holder.score_thresh = conf
        if iou is not None:
            holder.nms_thresh = iou
        holder.detections_per_img = max_det

    @property
    def class_names(self) -> Sequence[str]:
        """The model's class names (without torchvision's background and placeholders)."""
        return self._names

    @property
    def fingerprint(self) -> str:
        """Architecture, weights hash, settings, and the torchvision and PyTorch versions."""
        return self._fingerprint

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        """Detections per RGB image, in its pixels (one forward pass per image)."""
        return [self._one(im) for im in images]

    def _one(self, image: NDArray[np.uint8]) -> Detections:
        torch = self._torch
        # Scaled in numpy: a new, writable array (brittle's images are read-only, which
        # torch.from_numpy warns about), divided in float32 exactly as torchvision's docs do.
        scaled = np.divide(image, np.float32(255.0), dtype=np.float32)
        tensor = torch.from_numpy(scaled).permute(2, 0, 1)
        with torch.inference_mode():
            (out,) = self._model([tensor])
        labels = out["labels"].numpy()
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self._lut)):
            raise ModelError(f"label {labels.max()} outside the model's {len(self._lut)} classes")
        mapped = self._lut[labels]
        keep = mapped >= 0
        return Detections(out["boxes"].numpy()[keep], out["scores"].numpy()[keep], mapped[keep])

    def __repr__(self) -> str:
        return f"TorchvisionDetector({self.config.arch!r}, weights={self.config.weights!r})"


def load_torchvision_predictor(spec: str, **options: Any) -> TorchvisionDetector:
    """The ``torchvision`` model kind: ``torchvision:ARCH`` or ``NAME.torchvision.yaml``."""
    for key, why in (("format", "ONNX output layouts"), ("input_size", "ONNX and .pt models")):
        if options.pop(key, None) is not None:
            raise ConfigError(
                f"{spec}: --{key.replace('_', '-')} is for {why}; a torchvision model's input "
                "size is its builder's min_size/max_size (builder_options in a .torchvision.yaml)"
            )
    config = load_torchvision_config(spec)
    base = None if spec.startswith("torchvision:") else Path(spec).parent
    return TorchvisionDetector(config, source=spec, base_dir=base, **options)
