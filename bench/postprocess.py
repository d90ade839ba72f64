"""How much of a detector's time goes to brittle's pre- and post-processing?

Runs YOLOX-nano (shared assets) on every css-valid image at the evaluation
confidence 0.001 and times each stage per image: pre-processing (letterbox,
BGR, NCHW float), the onnxruntime session alone, and post-processing (decode +
NMS + boxes back to pixels). The goal is post-processing <= 15% of inference.

``--nms`` also compares the NMS strategies on the same real candidates (best
class as YOLOX does, and multi-label as the YOLOv5/v8 validators do): one OpenCV
call on class-offset boxes, one OpenCV call per class, and the numpy reference,
checking all three keep exactly the same boxes.

Usage::

    .venv/bin/python bench/postprocess.py [--threads 2] [--nms] [--assets ../shared/assets]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.models.nms import batched_nms
from brittle.models.onnx import OnnxDetector

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.15


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _load_images(assets: Path) -> list[NDArray[np.uint8]]:
    paths = sorted((assets / "css-valid" / "images").iterdir())
    images: list[NDArray[np.uint8]] = []
    for p in paths:
        bgr = cv2.imread(str(p))
        if bgr is not None:
            images.append(np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8))
    return images


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_stages(det: OnnxDetector, images: list[NDArray[np.uint8]]) -> float:
    """Per-image median time of each stage; returns post-processing / inference."""
    for im in images[:5]:  # warm-up: first runs allocate and tune
        det.predict([im])
    pre, infer, post, counts = [], [], [], []
    for im in images:
        (blob, fits), t_pre = _timed(det.preprocess, [im])
        outputs, t_run = _timed(det.run, blob)
        dets, t_post = _timed(det.decode, outputs, fits)
        pre.append(t_pre)
        infer.append(t_run)
        post.append(t_post)
        counts.append(len(dets[0]))
    ratio = _ms(post) / _ms(infer)
    print(f"{det!r}")
    print(f"{len(images)} images, conf {det.conf}, detections per image: median "
          f"{statistics.median(counts):.0f}, max {max(counts)}")  # fmt: skip
    print(f"  {'stage':<38}{'median ms/image':>16}")
    print(f"  {'pre-processing (letterbox, NCHW)':<38}{_ms(pre):>16.2f}")
    print(f"  {'inference (onnxruntime session.run)':<38}{_ms(infer):>16.2f}")
    print(f"  {'post-processing (decode, NMS, unmap)':<38}{_ms(post):>16.2f}")
    verdict = "OK" if ratio <= GOAL else "OVER GOAL"
    print(f"  post-processing / inference = {ratio:.1%} (goal <= {GOAL:.0%}): {verdict}")
    return ratio


def bench_nms(det: OnnxDetector, images: list[NDArray[np.uint8]]) -> None:
    """Compare NMS strategies on the model's real candidates at conf 0.001."""
    iou = det.iou if det.iou is not None else 0.65
    for multi_label in (False, True):
        strategies: dict[str, dict[str, Any]] = {
            "cv2, auto (default)": {},
            "cv2, offset boxes": {"split": False},
            "cv2, per class": {"split": True},
            "numpy": {"backend": "numpy"},
        }
        times: dict[str, list[float]] = {name: [] for name in strategies}
        sizes = []
        for im in images:
            blob, _ = det.preprocess([im])
            cand = det.decoder(det.run(blob), 0, det.conf, multi_label)
            sizes.append(len(cand.scores))
            results = []
            for name, kwargs in strategies.items():
                keep, t = _timed(batched_nms, cand.boxes, cand.scores, cand.labels, iou, **kwargs)
                times[name].append(t)
                results.append(keep)
            if not all(np.array_equal(results[0], r) for r in results[1:]):
                sys.exit("NMS strategies disagree: this is a bug")
        mode = "multi-label" if multi_label else "best class"
        print(
            f"NMS on {mode} candidates (median {statistics.median(sizes):.0f}, max "
            f"{max(sizes)} per image), IoU {iou}; all strategies keep identical boxes:"
        )
        for name, ts in times.items():
            print(f"  {name:<22}{_ms(ts):>8.3f} ms median {max(ts) * 1e3:>8.3f} ms max")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_assets = os.environ.get("BRITTLE_ASSETS", str(ROOT.parent / "shared" / "assets"))
    parser.add_argument("--assets", type=Path, default=Path(default_assets))
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--nms", action="store_true", help="also compare NMS strategies")
    args = parser.parse_args()
    model = args.assets / "models" / "yolox_nano_coco.onnx"
    if not model.is_file():
        sys.exit(f"{model} not found; pass --assets or set BRITTLE_ASSETS")
    images = _load_images(args.assets)
    det = OnnxDetector(model, intra_op_num_threads=args.threads)
    print(f"onnxruntime threads: {args.threads}")
    bench_stages(det, images)
    if args.nms:
        print()
        bench_nms(det, images)


if __name__ == "__main__":
    main()
