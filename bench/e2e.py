"""End to end: `brittle run` against the model's own inference, and peak memory vs dataset size.

1. Wall time of a cold `brittle run` (yolox_nano, css-valid, a suite, default workers)
   against the pure inference time of the predictions the suite asks for: the ONNX session
   alone on the same machine in the same bench run, using both cores as well as it can (the
   faster of one session with 2 threads and 2 processes with a 1-thread session each, over
   real preprocessed images), and the warm re-run against the cold one.
2. Peak RSS of a cold run with the dataset repeated 1x and 10x (each copy a distinct file, so
   nothing is shared through the cache's content hashes): the main process plus its largest
   worker times the number of workers.

    .venv/bin/python bench/e2e.py [--suite standard] [--rss-suite quick] [--repeat 10]
                                  [--workers N]

Goals (issue 5): run <= 1.10x inference; warm <= 1/20 of cold; RSS at 10x <= 1.2x RSS at 1x.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("BRITTLE_ASSETS", ROOT.parent / "shared" / "assets"))


def _run(data: Path, out: Path, suite: str, workers: int | None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one `brittle run` in a fresh process."""
    code = (
        "import resource, sys\n"
        "from brittle.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    print('MAXRSS', me, kids, file=sys.stderr)\n"
    )
    args = [
        sys.executable, "-c", code, "run", "--data", str(data),
        "--model", f"yolox={ASSETS / 'models' / 'yolox_nano_coco.onnx'}",
        "--class-map", str(ASSETS / "models" / "coco_to_css.yaml"),
        "--suite", suite, "--out", str(out), "--gallery", "0",
        *(["--workers", str(workers)] if workers else []),
    ]  # fmt: skip
    t0 = time.perf_counter()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"brittle run failed:\n{proc.stderr[-2000:]}")
    me, kids = (int(x) for x in proc.stderr.rsplit("MAXRSS", 1)[1].split()[:2])
    n_workers = json.loads((out / "run.json").read_text())["workers"]
    # RUSAGE_CHILDREN's maxrss is that of the largest child; workers are alike.
    return wall, me + (kids * n_workers if n_workers > 1 else 0)


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


def _blobs() -> list[np.ndarray]:
    """Real model inputs: css-valid images through brittle's own preprocessing."""
    from brittle.data.images import decode_image
    from brittle.models.onnx import OnnxDetector

    det = OnnxDetector(ASSETS / "models" / "yolox_nano_coco.onnx", intra_op_num_threads=1)
    paths = sorted((ASSETS / "css-valid" / "images").glob("*.jpg"))[:32]
    # preprocess() reuses its buffer: keep a copy of each blob.
    return [det.preprocess([decode_image(p)])[0].copy() for p in paths]


def _session_loop(threads: int, count: int, out: Any) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(
        str(ASSETS / "models" / "yolox_nano_coco.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    blobs = _blobs()
    for b in blobs[:5]:
        sess.run(None, {name: b})
    t0 = time.perf_counter()
    for i in range(count):
        sess.run(None, {name: blobs[i % len(blobs)]})
    out.put(time.perf_counter() - t0)


def _inference_seconds(n_predictions: int, sample: int = 600) -> tuple[float, float]:
    """Seconds the ONNX session alone needs for ``n_predictions`` images on this machine:
    (one process with 2 threads, two processes with 1 thread each), timed on ``sample``
    images and scaled."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_session_loop, args=(2, sample, q))
    p.start()
    one = q.get()
    p.join()
    procs = [ctx.Process(target=_session_loop, args=(1, sample // 2, q)) for _ in range(2)]
    for p in procs:
        p.start()
    two = max(q.get() for _ in procs)
    for p in procs:
        p.join()
    return one / sample * n_predictions, two / sample * n_predictions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="standard")
    ap.add_argument("--rss-suite", default="quick")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--workers", type=int, default=None, help="default: brittle's own")
    args = ap.parse_args()
    if not (ASSETS / "css-valid").is_dir():
        print(f"assets not found at {ASSETS} (set BRITTLE_ASSETS)")
        return 2
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cold, _ = _run(ASSETS / "css-valid", work / "a", args.suite, args.workers)
        first = (work / "a" / "results.json").read_bytes()
        cold_run = json.loads((work / "a" / "run.json").read_text())
        warm, _ = _run(ASSETS / "css-valid", work / "a", args.suite, args.workers)
        same = first == (work / "a" / "results.json").read_bytes()
        # The predictions the suite asks for (images x conditions), as a hand-written loop
        # would make them: brittle makes fewer when cells show the same image
        # (Perturbation.cache_condition), and that saving counts in its favour.
        made = cold_run["inferred_predictions"]["yolox"]
        n = made + cold_run.get("shared_predictions", {}).get("yolox", 0)
        one, two = _inference_seconds(n)
        infer = min(one, two)
        ratio = cold / infer
        print(f"suite {args.suite}: {n} predictions (114 images x clean + cells; brittle "
              f"made {made}, the rest shared), {cold_run['workers']} workers")  # fmt: skip
        print(f"  brittle run, cold      {cold:8.1f} s")
        print(f"  inference alone        {infer:8.1f} s  (1 process x 2 threads {one:.1f} s, "
              f"2 processes x 1 thread {two:.1f} s)")  # fmt: skip
        print(f"  run / inference        {ratio:8.2f}x  (goal <= 1.10x): "
              f"{'OK' if ratio <= 1.10 else 'MISSED'}")  # fmt: skip
        print(f"  warm re-run            {warm:8.1f} s  = 1/{cold / warm:.0f} of cold "
              f"(goal <= 1/20): {'OK' if warm <= cold / 20 else 'MISSED'}")  # fmt: skip
        print(f"  warm results.json identical to cold: {same}")
        ok &= ratio <= 1.10 and warm <= cold / 20 and same
        _, rss1 = _run(_repeated(work / "d1", 1), work / "r1", args.rss_suite, args.workers)
        _, rssn = _run(
            _repeated(work / "dn", args.repeat), work / "rn", args.rss_suite, args.workers
        )
        grow = rssn / rss1
        print(f"peak RSS, suite {args.rss_suite}: 1x {rss1 / 1024:.0f} MiB, "
              f"{args.repeat}x {rssn / 1024:.0f} MiB = {grow:.2f}x "
              f"(goal <= 1.2x): {'OK' if grow <= 1.2 else 'MISSED'}")  # fmt: skip
        ok &= grow <= 1.2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
