"""What brittle's Ultralytics and torchvision predictors add to the frameworks' own inference.

Builds a YOLOv8n (from ``yolov8n.yaml``) and a torchvision Faster R-CNN MobileNetV3-320 (from
its builder), both with seeded random weights (nothing is downloaded), and times on the same
demo scenes, one image per call, in the same run:

* the framework alone: ``YOLO.predict`` on a BGR array; ``model([tensor])`` under
  ``inference_mode``;
* brittle's predictor on the RGB array (colour order, scaling, label mapping, Detections).

Prints the median per image and the ratio brittle / framework (goal: at most 1.05).

    .venv/bin/python bench/frameworks.py [--images 40] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GOAL = 1.05


Image = np.ndarray[Any, np.dtype[np.uint8]]


def _paired(
    framework: Callable[[Image], object],
    ours: Callable[[Image], object],
    images: list[Image],
    repeats: int,
) -> tuple[float, float]:
    """Median seconds per image of each, the two alternating so drift hits both alike."""
    framework(images[0])  # warm-up: first-call allocations, lazy setup
    ours(images[0])
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        for fn, out in ((framework, a), (ours, b)):
            t0 = time.perf_counter()
            for im in images:
                fn(im)
            out.append((time.perf_counter() - t0) / len(images))
    return statistics.median(a), statistics.median(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        import torch
        import torchvision
        from ultralytics import YOLO
    except ImportError as exc:
        print(f"needs the torch and ultralytics extras: {exc}")
        return 2
    from brittle.demo.scenes import make_scene
    from brittle.models import load_predictor

    torch.set_num_threads(args.threads)
    images = [make_scene(seed=11, index=i, size=320)[0] for i in range(args.images)]
    work = Path(tempfile.mkdtemp(prefix="brittle-bench-"))
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "yolo"))
    os.environ.setdefault("YOLO_OFFLINE", "1")

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    pt = work / "yolov8n.pt"
    yolo.save(str(pt))
    yolo = YOLO(str(pt))
    ours, _ = load_predictor(str(pt), conf=0.001, max_det=300, threads=args.threads)

    def yolo_direct(im: Image) -> object:
        bgr = np.ascontiguousarray(im[..., ::-1])
        return yolo.predict(bgr, conf=0.001, max_det=300, verbose=False)

    rows = [
        (
            "ultralytics yolov8n",
            *_paired(yolo_direct, lambda im: ours.predict([im]), images, args.repeats),
        )
    ]

    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=4)
    model.eval()
    model.roi_heads.score_thresh, model.roi_heads.detections_per_img = 0.001, 300
    torch.save(model.state_dict(), work / "frcnn.pth")
    spec = work / "frcnn.torchvision.yaml"
    spec.write_text(f"arch: {arch}\nweights: frcnn.pth\nclass_names: [circle, square, triangle]\n")
    tv, _ = load_predictor(str(spec), conf=0.001, max_det=300, threads=args.threads)

    def direct(im: Image) -> object:
        with torch.inference_mode():
            return model([torch.from_numpy(im).permute(2, 0, 1).float() / 255])

    rows.append(
        (f"torchvision {arch}", *_paired(direct, lambda im: tv.predict([im]), images, args.repeats))
    )

    print(f"{len(images)} demo scenes at 320 px, {args.threads} threads, median of {args.repeats}")
    print(f"  {'model':48} {'framework':>10} {'brittle':>10} {'ratio':>6}")
    ok = True
    for name, base, mine in rows:
        ratio = mine / base
        ok &= ratio <= GOAL
        flag = "" if ratio <= GOAL else f"  over the goal ({GOAL})"
        print(f"  {name:48} {base * 1e3:8.1f} ms {mine * 1e3:8.1f} ms {ratio:6.2f}{flag}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
