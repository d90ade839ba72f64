"""End to end: `brittle run` against the model's own inference, and peak memory vs dataset size.

1. Wall time of a cold `brittle run` (yolox_nano, css-valid, a suite) against the pure
   inference time of the same number of predictions (the ONNX session alone, measured in
   this run on the same machine), and the warm re-run against the cold one.
2. Peak RSS of a cold run with the dataset repeated 1x and 10x (each copy a distinct file, so
   nothing is shared through the cache's content hashes).

    .venv/bin/python bench/e2e.py [--suite standard] [--rss-suite quick] [--repeat 10]

Goals (issue 5): run <= 1.10x inference; warm <= 1/20 of cold; RSS at 10x <= 1.2x RSS at 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("BRITTLE_ASSETS", ROOT.parent / "shared" / "assets"))


def _run(data: Path, out: Path, suite: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one `brittle run` in a fresh process."""
    code = (
        "import resource, sys\n"
        "from brittle.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    args = [
        sys.executable, "-c", code, "run", "--data", str(data),
        "--model", f"yolox={ASSETS / 'models' / 'yolox_nano_coco.onnx'}",
        "--class-map", str(ASSETS / "models" / "coco_to_css.yaml"),
        "--suite", suite, "--out", str(out),
    ]  # fmt: skip
    t0 = time.perf_counter()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"brittle run failed:\n{proc.stderr[-2000:]}")
    rss = int(proc.stderr.rsplit("MAXRSS", 1)[1].split()[0])
    return wall, rss


def _repeated(dst: Path, times: int) -> Path:
    """css-valid repeated ``times`` times as distinct files (a YOLO export)."""
    src = ASSETS / "css-valid"
    (dst / "images").mkdir(parents=True)
    (dst / "labels").mkdir()
    for k in range(times):
        for img in sorted((src / "images").glob("*.jpg")):
            data = img.read_bytes()
            # One appended byte after the JPEG end marker makes a distinct file (and content
            # hash) that decodes to the same pixels.
            (dst / "images" / f"r{k}_{img.name}").write_bytes(data + bytes([k % 256]))
            lbl = src / "labels" / f"{img.stem}.txt"
            shutil.copyfile(lbl, dst / "labels" / f"r{k}_{img.stem}.txt")
    (dst / "data.yaml").write_text((src / "data.yaml").read_text())
    return dst


def _inference_seconds(n_predictions: int) -> float:
    """Time of the ONNX session alone for ``n_predictions`` images (median x count)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(
        str(ASSETS / "models" / "yolox_nano_coco.onnx"), providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    blob = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    for _ in range(10):
        sess.run(None, {name: blob})
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(None, {name: blob})
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * n_predictions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--rss-suite", default="quick")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    if not (ASSETS / "css-valid").is_dir():
        print(f"assets not found at {ASSETS} (set BRITTLE_ASSETS)")
        return 2
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cold, _ = _run(ASSETS / "css-valid", work / "a", args.suite)
        warm, _ = _run(ASSETS / "css-valid", work / "a", args.suite)
        run = json.loads((work / "a" / "run.json").read_text())
        n = run["cached_predictions"]["yolox"] + run["inferred_predictions"]["yolox"]
        infer = _inference_seconds(n)
        ratio = cold / infer
        print(f"suite {args.suite}: {n} predictions (114 images x clean + cells)")
        print(f"  brittle run, cold      {cold:8.1f} s")
        print(f"  inference alone        {infer:8.1f} s  (session.run median x {n})")
        print(f"  run / inference        {ratio:8.2f}x  (goal <= 1.10x): "
              f"{'OK' if ratio <= 1.10 else 'MISSED'}")  # fmt: skip
        print(f"  warm re-run            {warm:8.1f} s  = 1/{cold / warm:.0f} of cold "
              f"(goal <= 1/20): {'OK' if warm <= cold / 20 else 'MISSED'}")  # fmt: skip
        ok &= ratio <= 1.10 and warm <= cold / 20
        _, rss1 = _run(_repeated(work / "d1", 1), work / "r1", args.rss_suite)
        _, rssn = _run(_repeated(work / "dn", args.repeat), work / "rn", args.rss_suite)
        grow = rssn / rss1
        print(f"peak RSS, suite {args.rss_suite}: 1x {rss1 / 1024:.0f} MiB, "
              f"{args.repeat}x {rssn / 1024:.0f} MiB = {grow:.2f}x "
              f"(goal <= 1.2x): {'OK' if grow <= 1.2 else 'MISSED'}")  # fmt: skip
        ok &= grow <= 1.2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
