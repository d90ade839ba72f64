"""`brittle run` on the real dataset with the real YOLOX-nano: workers and kill -9.

The synthetic tests (test_run_synthetic.py) cover the logic; this one makes sure the same
guarantees hold where onnxruntime runs in spawned worker processes on real images: one
worker and two give byte-identical results, and a run killed half-way (kill -9 of the
whole process group) resumes to the same bytes, computing only what was missing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 40
CELLS = 8  # the quick suite


def _args(assets: Path, out: Path, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "brittle", "run",
        "--data", str(assets / "css-valid"),
        "--model", f"yolox={assets / 'models' / 'yolox_nano_coco.onnx'}",
        "--class-map", str(assets / "models" / "coco_to_css.yaml"),
        "--suite", "quick", "--limit", str(LIMIT), "--resamples", "200",
        "--workers", str(workers), "--out", str(out),
    ]  # fmt: skip


def _predictions(out: Path) -> int:
    db = out / "cache.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM predictions").fetchone()[0])
    except sqlite3.OperationalError:  # created but no table yet
        return 0


@pytest.fixture(scope="module")
def one_worker(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real") / "one"
    proc = subprocess.run(
        _args(assets, out, 1), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_two_workers_killed_half_way_resume_to_the_one_worker_bytes(
    assets: Path, one_worker: Path, tmp_path: Path
) -> None:
    total = LIMIT * (1 + CELLS)
    out = tmp_path / "two"
    args = _args(assets, out, 2)
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while _predictions(out) < total // 2:
            assert proc.poll() is None, f"the run ended before half-way: {proc.returncode}"
            assert time.monotonic() < deadline, "the run never got half-way"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done = _predictions(out)
    assert 0 < done < total
    assert not (out / "results.json").exists()

    resumed = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["workers"] == 2
    assert run["inferred_predictions"] == {"yolox": total - done}
    assert (out / "results.json").read_bytes() == (one_worker / "results.json").read_bytes()
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["image_count"] == LIMIT
    risk = res["models"]["yolox"]["risk"]
    assert 0 < risk["value"] < 100
    assert risk["ci"][0] <= risk["value"] <= risk["ci"][1]
