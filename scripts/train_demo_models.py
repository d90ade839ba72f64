# torch may be absent where mypy runs (it is a dev-only dependency): then it is Any.
# mypy: allow-subclassing-any
"""Train the tiny detectors that ship with ``brittle demo`` (src/brittle/demo/models/).

    ./dev setup                              # torch is a dev dependency; brittle never imports it
    .venv/bin/python scripts/train_demo_models.py [--out DIR] [--summary FILE.json]

Three detectors with one architecture (:class:`TinyDet`, see docs/demo.md), trained on the
same synthetic scenes (:mod:`brittle.demo.scenes`, series :data:`TRAIN_SEED`):

* ``plain``: no augmentation;
* ``augmented``: the same training with blur and noise augmentation (this script's own
  OpenCV/numpy implementation, :func:`blur_noise`, not brittle's perturbations, so that
  brittle's verdict is an honest test);
* ``flipped``: ``plain`` fine-tuned with horizontal and vertical flips.

Everything is seeded and torch runs deterministic algorithms on :data:`THREADS` threads, so
the script reproduces the committed models. It ends by evaluating the exported ONNX files
with brittle's own ONNX predictor and COCO evaluation on the demo's validation scenes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from numpy.typing import NDArray

try:
    import torch  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    raise SystemExit(
        "scripts/train_demo_models.py needs torch (dev only): ./dev setup, or pip install torch"
    ) from None
from torch import Tensor, nn  # type: ignore[import-not-found, unused-ignore]
from torch.nn import functional as nnf  # type: ignore[import-not-found, unused-ignore]

from brittle.demo import DEMO_IMAGES, DEMO_SEED, demo_models
from brittle.demo.scenes import CLASS_NAMES, make_scene
from brittle.metrics.coco import evaluate
from brittle.models.onnx import OnnxDetector, file_sha256
from brittle.types import GroundTruth

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "brittle" / "demo" / "models"

SIZE = 160  #: input and scene size, pixels
STRIDES = (8, 16, 32)  #: one prediction per cell at each stride: the YOLOv8 layout
NC = len(CLASS_NAMES)
TRAIN_SEED = 20240  #: scene series of the training pool (the demo uses DEMO_SEED)
POOL = 8000  #: training scenes
THREADS = 2  #: torch threads; results are reproducible for a given thread count
BATCH = 32
PLAIN_STEPS = 1200  #: optimiser steps of ``plain`` ...
AUGMENTED_STEPS = 4200  #: ... of ``augmented`` (harder images: a longer schedule) ...
FLIPPED_STEPS = 400  #: ... and of the fine-tuning of ``plain`` into ``flipped``
AUGMENT_P = 0.4  #: probability of a blur, and independently of a noise, per training image

ImageU8 = NDArray[np.uint8]
Boxes = NDArray[np.float64]
Labels = NDArray[np.int64]


# --- the model ----------------------------------------------------------------------------


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, SiLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
    )


class TinyDet(nn.Module):
    """Anchor-free detector: a 5-stage CNN backbone, a top-down FPN at strides 8, 16, 32 and
    one head shared by the three levels predicting, per cell, ``NC`` class logits and four
    distances (left, top, right, bottom) from the cell centre to the box edges (FCOS/GFL)."""

    def __init__(self, widths: Sequence[int] = (16, 24, 40, 56, 64), neck: int = 32) -> None:
        super().__init__()
        a, b, c, d, e = widths
        self.stem = nn.Sequential(conv(3, a, 2), conv(a, b, 2))  # stride 4
        self.c3 = nn.Sequential(conv(b, c, 2), conv(c, c))  # stride 8
        self.c4 = nn.Sequential(conv(c, d, 2), conv(d, d))  # stride 16
        self.c5 = conv(d, e, 2)  # stride 32
        self.lat = nn.ModuleList([nn.Conv2d(ch, neck, 1) for ch in (c, d, e)])
        self.smooth = nn.ModuleList([conv(neck, neck) for _ in STRIDES])
        self.head = conv(neck, neck)
        self.out = nn.Conv2d(neck, NC + 4, 1)
        prior = 0.01  # initial class probability (focal-loss init)
        bias = self.out.bias
        assert bias is not None
        nn.init.constant_(bias[:NC], -math.log((1 - prior) / prior))
        nn.init.constant_(bias[NC:], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        """Raw predictions ``[B, NC + 4, cells]``, cells row-major at stride 8, 16 then 32."""
        f3 = self.c3(self.stem(x))
        f4 = self.c4(f3)
        f5 = self.c5(f4)
        p5 = self.lat[2](f5)
        p4 = self.lat[1](f4) + nnf.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lat[0](f3) + nnf.interpolate(p4, scale_factor=2.0, mode="nearest")
        outs = [
            self.out(self.head(sm(p))).flatten(2)
            for sm, p in zip(self.smooth, (p3, p4, p5), strict=True)
        ]
        return torch.cat(outs, dim=2)


def grid(size: int = SIZE) -> tuple[Tensor, Tensor]:
    """Cell centres ``[cells, 2]`` (x, y pixels) and strides ``[cells, 1]``."""
    points, strides = [], []
    for s in STRIDES:
        n = -(-size // s)
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append(torch.stack([xs.flatten(), ys.flatten()], 1).float().add(0.5).mul(s))
        strides.append(torch.full((n * n, 1), float(s)))
    return torch.cat(points), torch.cat(strides)


def distances(raw_box: Tensor, strides: Tensor) -> Tensor:
    """Edge distances in pixels ``[B, cells, 4]`` from raw ``[B, 4, cells]``."""
    return nnf.softplus(raw_box.transpose(1, 2)) * strides


class Exported(nn.Module):
    """What the ONNX file computes: ``[B, 4 + NC, cells]`` rows cx, cy, w, h (input pixels)
    then sigmoid class scores; the YOLOv8 layout that brittle reads natively."""

    points: Tensor
    strides: Tensor

    def __init__(self, model: TinyDet) -> None:
        super().__init__()
        self.model = model
        points, strides = grid()
        self.register_buffer("points", points.t().contiguous())  # [2, cells]
        self.register_buffer("strides", strides.t().contiguous())  # [1, cells]

    def forward(self, x: Tensor) -> Tensor:
        raw = self.model(x)
        ltrb = nnf.softplus(raw[:, NC:]) * self.strides
        lt, rb = ltrb[:, :2], ltrb[:, 2:]
        centre = self.points + (rb - lt) * 0.5
        return torch.cat([centre, lt + rb, torch.sigmoid(raw[:, :NC])], dim=1)


# --- targets and loss ---------------------------------------------------------------------

_POINTS, _STRIDES = (t.numpy().astype(np.float64) for t in grid())
_CELLS = len(_POINTS)
#: Objects go to the level whose stride suits their longest side (FCOS-style ranges).
_RANGES = {8: (0.0, 32.0), 16: (32.0, 64.0), 32: (64.0, math.inf)}


def assign(boxes: Boxes, labels: Labels) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Class (-1: background) and xyxy box target of every cell.

    A cell is positive for an object when the object's longest side falls in the cell's
    level range, the cell centre lies inside the box and within 1.5 strides of the box
    centre; the cell holding the box centre is always positive. A cell claimed by several
    objects takes the smallest.
    """
    cls = np.full(_CELLS, -1, np.int64)
    target = np.zeros((_CELLS, 4), np.float32)
    if not len(boxes):
        return cls, target
    px, py, s = _POINTS[:, 0:1], _POINTS[:, 1:2], _STRIDES[:, 0:1]
    x1, y1, x2, y2 = (boxes[:, i][None, :] for i in range(4))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    longest = np.maximum(x2 - x1, y2 - y1)
    lo = np.vectorize(lambda v: _RANGES[int(v)][0])(s)
    hi = np.vectorize(lambda v: _RANGES[int(v)][1])(s)
    level = (longest > lo) & (longest <= hi)
    inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    near = (np.abs(px - cx) < 1.5 * s) & (np.abs(py - cy) < 1.5 * s)
    holds = (np.floor(cx / s) == np.floor(px / s)) & (np.floor(cy / s) == np.floor(py / s))
    ok = level & ((inside & near) | holds)
    area = ((x2 - x1) * (y2 - y1)).repeat(_CELLS, axis=0)
    area[~ok] = np.inf
    best = area.argmin(axis=1)
    pos = np.isfinite(area[np.arange(_CELLS), best])
    cls[pos] = labels[best[pos]]
    target[pos] = boxes[best[pos]]
    return cls, target


def box_iou_giou(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """IoU and generalised IoU of paired xyxy boxes ``[P, 4]``."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1)
    return iou, iou - (hull - union) / (hull + 1e-7)


_PTS_T, _STR_T = grid()


def detection_loss(raw: Tensor, cls_t: Tensor, box_t: Tensor) -> tuple[Tensor, Tensor]:
    """Quality focal loss on the class scores (target: IoU of the predicted box with its
    object at positive cells, 0 elsewhere) and GIoU loss on the boxes of positive cells."""
    logits = raw[:, :NC].transpose(1, 2)  # [B, cells, NC]
    ltrb = distances(raw[:, NC:], _STR_T)
    pred = torch.cat([_PTS_T - ltrb[..., :2], _PTS_T + ltrb[..., 2:]], dim=2)
    pos = cls_t >= 0
    npos = max(int(pos.sum()), 1)
    iou, giou = box_iou_giou(pred[pos], box_t[pos])
    quality = torch.zeros_like(logits)
    quality[pos, cls_t[pos]] = iou.detach().clamp(min=0.0)
    prob = torch.sigmoid(logits)
    qfl = nnf.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    cls_loss = (qfl * (prob - quality).abs().pow(2)).sum() / npos
    box_loss = (1.0 - giou).sum() / npos
    return cls_loss, box_loss


# --- augmentation (this script's own; not brittle's perturbations) ------------------------


def _odd(n: float) -> int:
    return max(3, int(n) // 2 * 2 + 1)


def _motion_kernel(rng: np.random.Generator) -> NDArray[np.float32]:
    """A straight streak 3-13 px long at any angle, centred or starting at the pixel."""
    length = int(rng.integers(3, 14))
    k = 2 * length + 1
    line = np.zeros((k, k), np.float32)
    start = k // 2 if rng.uniform() < 0.5 else k // 2 - length // 2
    line[k // 2, start : start + length] = 1
    rot = cv2.getRotationMatrix2D((k // 2, k // 2), rng.uniform(0, 360), 1.0)
    kernel = np.asarray(cv2.warpAffine(line, rot, (k, k)), np.float32)
    return kernel / max(float(kernel.sum()), 1e-6)


def _zoom(image: ImageU8, rng: np.random.Generator) -> ImageU8:
    """Radial blur: the mean of 8 copies zoomed about the centre by 1 to 1.05-1.3."""
    h, w = image.shape[:2]
    acc = image.astype(np.float32)
    factors = np.linspace(1.0, rng.uniform(1.05, 1.3), 8)[1:]
    for z in factors:
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, float(z))
        acc += cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(np.rint(acc / (len(factors) + 1)), 0, 255).astype(np.uint8)


def blur_noise(image: ImageU8, rng: np.random.Generator, p: float = AUGMENT_P) -> ImageU8:
    """Blur with probability ``p`` (Gaussian, disk, motion, median or zoom), then noise with
    probability ``p`` (additive Gaussian, Poisson, salt-and-pepper or multiplicative)."""
    out: NDArray[Any] = image
    if rng.uniform() < p:
        kind = int(rng.integers(5))
        if kind == 0:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.5))
        elif kind == 1:
            r = rng.uniform(1.0, 3.5)
            k = _odd(2 * math.ceil(r) + 1)
            yy, xx = np.mgrid[:k, :k] - k // 2
            disk = ((xx**2 + yy**2) <= r * r).astype(np.float32)
            out = cv2.filter2D(out, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT)
        elif kind == 2:
            out = cv2.filter2D(out, -1, _motion_kernel(rng), borderType=cv2.BORDER_REFLECT)
        elif kind == 3:
            out = cv2.medianBlur(out, 3 if rng.uniform() < 0.7 else 5)
        else:
            out = _zoom(out, rng)
    if rng.uniform() < p:
        f = out.astype(np.float32) / 255.0
        kind = int(rng.integers(4))
        if kind == 0:
            f = f + rng.normal(0.0, rng.uniform(0.02, 0.4), f.shape).astype(np.float32)
        elif kind == 1:
            lam = rng.uniform(3.0, 60.0)
            f = rng.poisson(f * lam).astype(np.float32) / lam
        elif kind == 2:
            amount = rng.uniform(0.01, 0.25)
            u = rng.uniform(0, 1, f.shape)
            f = np.where(u < amount / 2, 0.0, np.where(u > 1 - amount / 2, 1.0, f))
        else:
            f = f * (1 + rng.normal(0.0, rng.uniform(0.05, 0.6), f.shape)).astype(np.float32)
        out = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(out, np.uint8)


def flips(image: ImageU8, boxes: Boxes, rng: np.random.Generator) -> tuple[ImageU8, Boxes]:
    """Horizontal flip with probability 1/2, then vertical flip with probability 1/2."""
    size = image.shape[1]
    b = boxes.copy()
    if rng.uniform() < 0.5:
        image = image[:, ::-1]
        b[:, [0, 2]] = size - boxes[:, [2, 0]]
    if rng.uniform() < 0.5:
        image = image[::-1]
        b[:, [1, 3]] = size - b[:, [3, 1]]
    return np.ascontiguousarray(image), b


# --- training -----------------------------------------------------------------------------

Scene = tuple[ImageU8, Boxes, Labels]


def make_pool(n: int) -> list[Scene]:
    return [make_scene(TRAIN_SEED, i, SIZE) for i in range(n)]


def batch(
    pool: Sequence[Scene],
    indices: NDArray[np.int64],
    rng: np.random.Generator,
    photometric: Callable[[ImageU8, np.random.Generator], ImageU8] | None,
    geometric: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    images, classes, targets = [], [], []
    for i in indices:
        image, boxes, labels = pool[int(i)]
        if geometric:
            image, boxes = flips(image, boxes, rng)
        if photometric is not None:
            image = photometric(image, rng)
        cls, box = assign(boxes, labels)
        images.append(image)
        classes.append(cls)
        targets.append(box)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)
    return x, torch.from_numpy(np.stack(classes)), torch.from_numpy(np.stack(targets))


def train(
    name: str,
    model: TinyDet,
    pool: Sequence[Scene],
    *,
    steps: int,
    lr: float,
    seed: int,
    warmup: int,
    photometric: Callable[[ImageU8, np.random.Generator], ImageU8] | None = None,
    geometric: bool = False,
) -> None:
    """AdamW with linear warm-up and cosine decay; batches drawn from ``pool`` by ``seed``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 5e-4}, {"params": other, "weight_decay": 0.0}],
        lr=lr,
    )
    model.train()
    start = time.perf_counter()
    order = rng.permutation(len(pool))
    cursor = 0
    shown = [0.0, 0.0]
    for step in range(steps):
        if cursor + BATCH > len(order):
            order, cursor = rng.permutation(len(pool)), 0
        idx = order[cursor : cursor + BATCH]
        cursor += BATCH
        factor = (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
        )
        for group in opt.param_groups:
            group["lr"] = lr * max(factor, 0.02)
        x, cls_t, box_t = batch(pool, idx, rng, photometric, geometric)
        cls_loss, box_loss = detection_loss(model(x), cls_t, box_t)
        loss = cls_loss + 2.0 * box_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
        opt.step()
        shown = [
            0.98 * v + 0.02 * float(x.detach())
            for v, x in zip(shown, (cls_loss, box_loss), strict=True)
        ]
        if (step + 1) % 250 == 0 or step + 1 == steps:
            print(
                f"  {name}: step {step + 1}/{steps}  cls {shown[0]:.3f}  box {shown[1]:.3f}"
                f"  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    model.eval()


# --- export and evaluation ----------------------------------------------------------------


def export(model: TinyDet, path: Path, description: str) -> None:
    """ONNX (opset 17, dynamic batch) with the class names and input size as metadata."""
    wrapper = Exported(model).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        )
    proto = onnx.load(str(path))
    meta = {
        "names": repr(dict(enumerate(CLASS_NAMES))),
        "imgsz": json.dumps([SIZE, SIZE]),
        "stride": str(max(STRIDES)),
        "description": description,
        "author": "brittle scripts/train_demo_models.py",
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def metrics(path: Path, n: int, seed: int) -> dict[str, float]:
    """Clean COCO metrics of an exported model on ``n`` scenes of series ``seed``."""
    det = OnnxDetector(path)
    assert det.format == "yolov8", det.format
    scenes = [make_scene(seed, i, SIZE) for i in range(n)]
    dets = det.predict([s[0] for s in scenes])
    gts = [GroundTruth(boxes=b, labels=lab) for _, b, lab in scenes]
    ev = evaluate(gts, dets, num_classes=NC)
    return {"map50": ev.stat("map50"), "map50_95": ev.stat("map50_95")}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    parser.add_argument("--pool", type=int, default=POOL, help=f"training scenes ({POOL})")
    parser.add_argument("--plain-steps", type=int, default=PLAIN_STEPS)
    parser.add_argument("--augmented-steps", type=int, default=AUGMENTED_STEPS)
    parser.add_argument("--flipped-steps", type=int, default=FLIPPED_STEPS, help="0: skip")
    parser.add_argument("--summary", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    print(f"generating {args.pool} training scenes (series {TRAIN_SEED})", flush=True)
    pool = make_pool(args.pool)
    times: dict[str, float] = {"scenes": time.perf_counter() - t0}
    print(f"  {times['scenes']:.0f} s", flush=True)

    def fresh() -> TinyDet:
        torch.manual_seed(1)
        return TinyDet()

    t = time.perf_counter()
    plain = fresh()
    print(f"TinyDet: {sum(p.numel() for p in plain.parameters())} parameters", flush=True)
    train("plain", plain, pool, steps=args.plain_steps, lr=4e-3, seed=11, warmup=200)
    times["plain"] = time.perf_counter() - t
    export(plain, args.out / "plain.onnx", "trained without augmentation")

    # Same initial weights and batches; blur and noise augmentation, and a longer schedule:
    # the augmented images are harder, and the two models should end up equally accurate
    # on clean images (docs/demo.md).
    t = time.perf_counter()
    augmented = fresh()
    train(
        "augmented", augmented, pool, steps=args.augmented_steps, lr=4e-3, seed=11,
        warmup=200, photometric=blur_noise,
    )  # fmt: skip
    times["augmented"] = time.perf_counter() - t
    export(augmented, args.out / "augmented.onnx", "trained with blur and noise augmentation")

    if args.flipped_steps > 0:
        t = time.perf_counter()
        flipped = TinyDet()
        flipped.load_state_dict(plain.state_dict())
        train(
            "flipped", flipped, pool, steps=args.flipped_steps, lr=1e-3, seed=12, warmup=50,
            geometric=True,
        )  # fmt: skip
        times["flipped"] = time.perf_counter() - t
        export(flipped, args.out / "flipped.onnx", "plain fine-tuned with flips")
    times["training"] = time.perf_counter() - t0

    print(f"\ntrained in {times['training']:.0f} s; evaluating the ONNX files", flush=True)
    summary: dict[str, object] = {"seconds": {k: round(v, 1) for k, v in times.items()}}
    for name, path in demo_models(args.out).items():
        demo = metrics(path, DEMO_IMAGES, DEMO_SEED)
        more = metrics(path, 1000, DEMO_SEED + 1)
        summary[name] = {
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
            "demo_split": demo,
            "scenes_1000": more,
        }
        print(
            f"  {name:10s} {path.stat().st_size / 1024:4.0f} KiB"
            f"  demo split ({DEMO_IMAGES} scenes): mAP50 {demo['map50']:.3f}"
            f" mAP50-95 {demo['map50_95']:.3f}"
            f"  | 1000 other scenes: mAP50 {more['map50']:.3f} mAP50-95 {more['map50_95']:.3f}",
            flush=True,
        )
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
