"""Output layouts of ONNX detectors: conventions per family, auto-detection, decoding.

A decoder turns one image's slice of the raw model outputs into candidate
detections (boxes in *model input* pixels, scores, labels) above the
confidence threshold; :func:`brittle.models.nms.postprocess` then runs NMS and
:class:`brittle.models.letterbox.Fit` maps boxes back to the image.

Layouts (``N`` candidates, ``C`` classes, ``B`` batch):

==========  ===========================================================  ==========
format      output                                                       NMS IoU
==========  ===========================================================  ==========
``yolov5``  ``[B, N, 5+C]`` cx, cy, w, h (input pixels), obj, C scores    0.6
``yolov8``  ``[B, 4+C, N]`` cx, cy, w, h, C scores (also YOLO11)          0.7
``yolox``   ``[B, N, 5+C]`` raw grid offsets tx, ty, tw, th, obj, C       0.65
``e2e``     boxes ``[B, N, 4]`` xyxy + scores ``[B, N]`` + labels         none
            ``[B, N]`` (+ optional num_dets ``[B, 1]``); or one
            ``[B, N, 6]`` x1, y1, x2, y2, score, class; or one
            ``[M, 7]`` batch, x1, y1, x2, y2, class, score
==========  ===========================================================  ==========

>>> sorted(FAMILIES)
['e2e', 'yolov5', 'yolov8', 'yolox']
>>> FAMILIES["yolox"].bgr, FAMILIES["yolox"].scale, FAMILIES["yolox"].center
(True, 1.0, False)
>>> anchor_free_cells(640, 640)
8400
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from brittle.errors import ModelError
from brittle.models.nms import select_candidates

__all__ = [
    "DECODER_VERSION",
    "FAMILIES",
    "Candidates",
    "Decoder",
    "E2EDecoder",
    "Family",
    "OutputInfo",
    "YoloV5Decoder",
    "YoloV8Decoder",
    "YoloxDecoder",
    "anchor_free_cells",
    "detect_format",
    "make_decoder",
]

#: Part of every ONNX fingerprint: bump it when decoding changes what a model predicts,
#: so predictions cached by an older brittle are not reused.
DECODER_VERSION = "1"

_STRIDES = (8, 16, 32)
_STRIDES_P6 = (8, 16, 32, 64)


@dataclass(frozen=True, slots=True)
class Family:
    """Pre- and post-processing conventions of one output layout (all overridable)."""

    name: str
    letterbox: bool
    center: bool
    bgr: bool
    scale: float
    iou: float | None
    multi_label: bool
    why: str


#: The evaluation conventions of each family's reference validator.
FAMILIES: dict[str, Family] = {
    "yolov5": Family(
        "yolov5", True, True, False, 1 / 255, 0.6, True,
        "YOLOv5 val.py: centred letterbox, RGB/255, multi-label NMS at IoU 0.6",
    ),
    "yolov8": Family(
        "yolov8", True, True, False, 1 / 255, 0.7, True,
        "Ultralytics val: centred letterbox, RGB/255, multi-label NMS at IoU 0.7",
    ),
    "yolox": Family(
        "yolox", True, False, True, 1.0, 0.65, False,
        "YOLOX eval: top-left letterbox, BGR 0..255, best class per box, NMS at IoU 0.65",
    ),
    "e2e": Family(
        "e2e", True, True, False, 1 / 255, None, False,
        "end-to-end exports already ran NMS: Ultralytics conventions, no second NMS",
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """One model output: its name, the shape seen on a probe run, and its element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def __str__(self) -> str:
        return f"{self.name} {list(self.shape)} {self.dtype}"


@dataclass(frozen=True, slots=True)
class Candidates:
    """Detections of one image before NMS, in model input pixels."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    labels: NDArray[np.int64]


class Decoder(Protocol):
    """Decodes image ``index`` of a batch of raw outputs into candidates above ``conf``."""

    format: str
    num_classes: int | None

    def __call__(
        self, outputs: Sequence[NDArray[Any]], index: int, conf: float, multi_label: bool
    ) -> Candidates: ...


def anchor_free_cells(h: int, w: int, strides: Sequence[int] = _STRIDES) -> int:
    """Grid cells of a detector with these strides on an ``h`` x ``w`` input.

    >>> anchor_free_cells(416, 416)  # 52*52 + 26*26 + 13*13
    3549
    """
    return sum(-(-h // s) * -(-w // s) for s in strides)


def _xyxy(cxcywh: NDArray[Any]) -> NDArray[np.float32]:
    half = cxcywh[:, 2:4] * 0.5
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1).astype(
        np.float32, copy=False
    )


def _check(fmt: str, arr: NDArray[Any], what: str, ok: bool) -> None:
    if not ok:
        raise ModelError(
            f"format {fmt}: expected {what}, got an output of shape {list(arr.shape)}; "
            "is format= right for this model?"
        )


class YoloV5Decoder:
    """``[B, N, 5+C]``: pixel cx, cy, w, h, objectness, class scores (YOLOv5/v7, YOLOv6)."""

    format = "yolov5"

    def __init__(self, num_classes: int | None) -> None:
        self.num_classes = num_classes

    def __call__(
        self, outputs: Sequence[NDArray[Any]], index: int, conf: float, multi_label: bool
    ) -> Candidates:
        out = outputs[0]
        _check(self.format, out, "[B, N, 5+C]", out.ndim == 3 and out.shape[2] >= 6)
        x = out[index]
        rows = x[np.flatnonzero(x[:, 4] > conf)]
        return Candidates(
            *select_candidates(
                _xyxy(rows[:, :4]), rows[:, 5:], conf, multi_label=multi_label,
                objectness=rows[:, 4],
            )
        )  # fmt: skip


class YoloV8Decoder:
    """``[B, 4+C, N]``: pixel cx, cy, w, h and class scores, no objectness (YOLOv8, YOLO11)."""

    format = "yolov8"

    def __init__(self, num_classes: int | None) -> None:
        self.num_classes = num_classes

    def __call__(
        self, outputs: Sequence[NDArray[Any]], index: int, conf: float, multi_label: bool
    ) -> Candidates:
        out = outputs[0]
        _check(self.format, out, "[B, 4+C, N]", out.ndim == 3 and out.shape[1] >= 5)
        x = out[index]
        # Reduce over the (contiguous) class rows before transposing anything.
        cols = np.flatnonzero(x[4:].max(axis=0) > conf)
        rows = x[:, cols].T
        return Candidates(
            *select_candidates(_xyxy(rows[:, :4]), rows[:, 4:], conf, multi_label=multi_label)
        )


def _grid(
    h: int, w: int, strides: Sequence[int]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Cell (x, y) indices and strides of every prediction, row-major per stride."""
    cells, steps = [], []
    for s in strides:
        ny, nx = -(-h // s), -(-w // s)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((ny * nx, 1), s))
    return (
        np.concatenate(cells).astype(np.float32),
        np.concatenate(steps).astype(np.float32),
    )


class YoloxDecoder:
    """``[B, N, 5+C]`` YOLOX grid predictions for strides 8, 16, 32.

    Official YOLOX exports leave the box decoding out of the graph (raw ``tx, ty,
    tw, th``); with ``decoded=True`` the boxes are already in pixels
    (``--decode_in_inference``) and only the YOLOX pre-processing differs from yolov5.
    """

    format = "yolox"

    def __init__(self, input_hw: tuple[int, int], num_classes: int | None, decoded: bool) -> None:
        self.num_classes = num_classes
        self.decoded = decoded
        self.grid, self.stride = _grid(*input_hw, _STRIDES)

    def __call__(
        self, outputs: Sequence[NDArray[Any]], index: int, conf: float, multi_label: bool
    ) -> Candidates:
        out = outputs[0]
        n = len(self.grid)
        _check(
            self.format, out, f"[B, {n}, 5+C] (strides 8/16/32 on the input size)",
            out.ndim == 3 and out.shape[1] == n and out.shape[2] >= 6,
        )  # fmt: skip
        x = out[index]
        keep = np.flatnonzero(x[:, 4] > conf)
        rows = x[keep]
        if self.decoded:
            cxcywh = rows[:, :4]
        else:
            s = self.stride[keep]
            with np.errstate(over="ignore"):
                wh = np.exp(rows[:, 2:4]) * s
            cxcywh = np.concatenate([(rows[:, :2] + self.grid[keep]) * s, wh], axis=1)
        return Candidates(
            *select_candidates(
                _xyxy(cxcywh), rows[:, 5:], conf, multi_label=multi_label, objectness=rows[:, 4]
            )
        )


class E2EDecoder:
    """End-to-end exports: the graph already ran NMS; only the confidence filter is left.

    ``layout`` is ``"separate"`` (``roles`` gives the output index of boxes, scores,
    labels and optionally num_dets), ``"packed6"`` (``[B, N, 6]`` x1, y1, x2, y2,
    score, class) or ``"packed7"`` (``[M, 7]`` batch, x1, y1, x2, y2, class, score).
    """

    format = "e2e"
    num_classes: int | None = None

    def __init__(self, layout: str, roles: dict[str, int] | None = None) -> None:
        self.layout = layout
        self.roles = roles or {}

    def __call__(
        self, outputs: Sequence[NDArray[Any]], index: int, conf: float, multi_label: bool
    ) -> Candidates:
        if self.layout == "packed6":
            out = outputs[0]
            _check(self.format, out, "[B, N, 6]", out.ndim == 3 and out.shape[2] == 6)
            x = out[index]
            boxes, scores, labels = x[:, :4], x[:, 4], x[:, 5]
        elif self.layout == "packed7":
            out = outputs[0]
            _check(self.format, out, "[M, 7]", out.ndim == 2 and out.shape[1] == 7)
            x = out[out[:, 0].astype(np.int64) == index]
            boxes, scores, labels = x[:, 1:5], x[:, 6], x[:, 5]
        else:
            r = self.roles
            boxes = outputs[r["boxes"]][index].reshape(-1, 4)
            scores = outputs[r["scores"]][index].reshape(-1)
            labels = outputs[r["labels"]][index].reshape(-1)
            if "num_dets" in r:
                n = int(np.asarray(outputs[r["num_dets"]][index]).reshape(-1)[0])
                boxes, scores, labels = boxes[:n], scores[:n], labels[:n]
        ok = scores > conf
        return Candidates(
            np.asarray(boxes[ok], np.float32),
            np.asarray(scores[ok], np.float32),
            np.rint(labels[ok]).astype(np.int64),
        )


# --- detection --------------------------------------------------------------------------

_ROLE_WORDS = {
    "num_dets": ("num",),
    "boxes": ("box", "bbox"),
    "scores": ("score", "conf"),
    "labels": ("label", "class", "cls"),
}


def _roles_by_name(outputs: Sequence[OutputInfo]) -> dict[str, int]:
    roles: dict[str, int] = {}
    for i, o in enumerate(outputs):
        name = o.name.lower()
        # num_dets is tried first: in "num_boxes" the word box names the count, not the boxes.
        for role, words in _ROLE_WORDS.items():
            if role not in roles and any(w in name for w in words):
                roles[role] = i
                break
    return roles


def _roles_by_shape(outputs: Sequence[OutputInfo]) -> dict[str, int]:
    roles: dict[str, int] = {}
    for i, o in enumerate(outputs):
        if len(o.shape) == 3 and o.shape[-1] == 4:
            roles.setdefault("boxes", i)
        elif len(o.shape) == 1 or (len(o.shape) == 2 and o.shape[-1] == 1):
            roles.setdefault("num_dets", i)
        elif len(o.shape) == 2 and "int" in o.dtype:
            roles.setdefault("labels", i)
        elif len(o.shape) == 2:
            roles.setdefault("scores", i)
    return roles


def _e2e_roles(outputs: Sequence[OutputInfo]) -> dict[str, int] | None:
    """Which output is boxes / scores / labels / num_dets: by name, else by shape and type."""
    for roles in (_roles_by_name(outputs), _roles_by_shape(outputs)):
        if not {"boxes", "scores", "labels"} <= roles.keys():
            continue
        b = outputs[roles["boxes"]].shape
        if len(b) != 3 or b[-1] != 4:
            continue
        n = b[1]
        shapes = [outputs[roles[r]].shape for r in ("scores", "labels")]
        if all(s[1:] in ((n,), (n, 1)) for s in shapes):
            return roles
    return None


def _looks_decoded(out: NDArray[Any], input_hw: tuple[int, int]) -> bool:
    """Whether [1, cells, 5+C] YOLOX-shaped outputs hold pixel boxes rather than raw offsets.

    Compares two hypotheses for the box centres of a probe image: decoded
    centres follow their cell's position (cx ~ (grid_x + 0.5) * stride), raw
    offsets do not (tx ~ 0.5 whatever the cell).
    """
    grid, stride = _grid(*input_hw, _STRIDES)
    xy = out[0, :, :2].astype(np.float64)
    err_decoded = float(np.median(np.abs(xy - (grid + 0.5) * stride)))
    err_raw = float(np.median(np.abs(xy - 0.5)))
    return err_decoded < err_raw


def _layout_help(input_hw: tuple[int, int]) -> str:
    h, w = input_hw
    cells = anchor_free_cells(h, w)
    return (
        f"known layouts for a {h}x{w} input: yolov5 [1, {3 * cells}, 5+C] (3 anchors per cell), "
        f"yolox [1, {cells}, 5+C] (raw grid offsets), yolov8 [1, 4+C, {cells}], "
        "e2e boxes [1, N, 4] + scores [1, N] + labels [1, N] or [1, N, 6]"
    )


def detect_format(
    outputs: Sequence[OutputInfo], input_hw: tuple[int, int], probe: Sequence[NDArray[Any]]
) -> str:
    """The output layout of a model, from its outputs on a probe run; ModelError if unsure.

    Rules, for an ``h`` x ``w`` input with ``cells`` = grid cells at strides 8, 16, 32
    (and 64 for P6 models): one ``[1, 3*cells, 5+C]`` output is yolov5;
    ``[1, cells, 5+C]`` holding raw offsets is yolox; ``[1, 4+C, cells]`` is yolov8;
    ``[1, N, 6]`` with any other ``N``, ``[M, 7]``, or separate boxes/scores/labels
    outputs are e2e. Anything else, including ``[1, cells, 5+C]`` already decoded to
    pixels (a YOLOX export with decoding inside, or YOLOv6: their pre-processing differs),
    is ambiguous.

    >>> probe = [np.zeros((1, 3 * 3549, 85), np.float32)]
    >>> detect_format([OutputInfo("output", (1, 10647, 85), "float32")], (416, 416), probe)
    'yolov5'
    >>> detect_format([OutputInfo("output0", (1, 84, 8400), "float32")], (640, 640), [])
    'yolov8'
    """
    h, w = input_hw
    cells = {anchor_free_cells(h, w), anchor_free_cells(h, w, _STRIDES_P6)}
    seen = "; ".join(str(o) for o in outputs)
    found: list[str] = []
    note = ""
    if len(outputs) == 1:
        shape = outputs[0].shape
        if len(shape) == 3:
            _, a, b = shape
            if a == anchor_free_cells(h, w) and b >= 6:
                if not (probe and _looks_decoded(probe[0], input_hw)):
                    found.append("yolox")
                else:
                    note = (
                        f" The {a} rows are already decoded to pixels, one per grid cell: a YOLOX"
                        " export with decoding inside (format=yolox) or an anchor-free model with"
                        " [cx, cy, w, h, obj, scores] rows such as YOLOv6 (format=yolov5); their"
                        " pre-processing differs."
                    )
            if a in {3 * c for c in cells} and b >= 6:
                found.append("yolov5")
            if b in cells and a >= 5:
                found.append("yolov8")
            if b == 6 and not found and not note:
                found.append("e2e")
        elif len(shape) == 2 and shape[1] == 7:
            found.append("e2e")
    elif _e2e_roles(outputs) is not None:
        found.append("e2e")
    if len(found) == 1:
        return found[0]
    what = "could fit " + " or ".join(found) if found else "match no known layout"
    raise ModelError(
        f"cannot tell the output layout: outputs {seen} {what}.{note} "
        f"({_layout_help(input_hw)}.) Pass format=yolov5|yolov8|yolox|e2e (CLI: --format)."
    )


def make_decoder(
    fmt: str,
    outputs: Sequence[OutputInfo],
    input_hw: tuple[int, int],
    probe: Sequence[NDArray[Any]],
) -> Decoder:
    """The decoder for layout ``fmt``, checked against the model's outputs.

    >>> make_decoder("yolov8", [OutputInfo("output0", (1, 84, 8400), "float32")], (640, 640), [])
    ... # doctest: +ELLIPSIS
    <brittle.models.decoders.YoloV8Decoder object at ...>
    """
    seen = "; ".join(str(o) for o in outputs)
    shape = outputs[0].shape if outputs else ()

    def bad(expected: str) -> ModelError:
        return ModelError(
            f"format={fmt} expects {expected}, but the model outputs {seen} "
            f"({_layout_help(input_hw)})"
        )

    if fmt in ("yolov5", "yolox"):
        if len(outputs) != 1 or len(shape) != 3 or shape[2] < 6:
            raise bad("one output [B, N, 5+C]")
        if fmt == "yolov5":
            return YoloV5Decoder(shape[2] - 5)
        cells = anchor_free_cells(*input_hw)
        if shape[1] != cells:
            raise bad(f"one output [B, {cells}, 5+C] (one row per grid cell at strides 8/16/32)")
        decoded = bool(probe) and _looks_decoded(probe[0], input_hw)
        return YoloxDecoder(input_hw, shape[2] - 5, decoded)
    if fmt == "yolov8":
        if len(outputs) != 1 or len(shape) != 3 or shape[1] < 5:
            raise bad("one output [B, 4+C, N]")
        return YoloV8Decoder(shape[1] - 4)
    if fmt == "e2e":
        if len(outputs) == 1 and len(shape) == 3 and shape[2] == 6:
            return E2EDecoder("packed6")
        if len(outputs) == 1 and len(shape) == 2 and shape[1] == 7:
            return E2EDecoder("packed7")
        roles = _e2e_roles(outputs)
        if roles is None:
            raise bad(
                "boxes [B, N, 4], scores [B, N] and labels [B, N] outputs (optionally num_dets), "
                "one [B, N, 6] output (x1, y1, x2, y2, score, class) or one [M, 7] output"
            )
        return E2EDecoder("separate", roles)
    raise ModelError(f"unknown format {fmt!r}; use one of {', '.join(sorted(FAMILIES))}")
