"""`brittle show` and `brittle serve` on a finished run: the terminal verdict, and a real
HTTP server on 127.0.0.1 serving the run directory read-only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_eval_synthetic import ROOT, _make_dataset

ENV = {**os.environ, "COLUMNS": "160"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("view")
    data = _make_dataset(root / "ds", n=12)
    out = root / "run"
    args = [
        sys.executable, "-m", "brittle", "run", "--data", str(data),
        "--model", f"rect={data / 'detector.py'}:Rectangles", "--suite", "quick",
        "--resamples", "100", "--workers", "1", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return out


def test_show_prints_the_verdict_of_a_finished_run(run_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brittle", "show", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Risk score" in proc.stdout
    assert "Robustness by family" in proc.stdout
    assert "rect" in proc.stdout


def test_show_names_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brittle", "show", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no results.json" in proc.stderr


def _serve(run_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "brittle", "serve", str(run_dir), "--port", "0", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://(\S+?):(\d+)/", line)
    assert match, line
    return proc, f"http://127.0.0.1:{match.group(2)}/"


def test_serve_serves_the_run_directory_on_loopback(run_dir: Path) -> None:
    proc, url = _serve(run_dir)
    try:
        assert "127.0.0.1" in url
        with urllib.request.urlopen(url + "results.json", timeout=10) as resp:
            assert resp.read() == (run_dir / "results.json").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "no-such-file", timeout=10)
        assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_warns_before_listening_beyond_loopback(run_dir: Path) -> None:
    proc, url = _serve(run_dir, "--host", "0.0.0.0")
    try:
        with urllib.request.urlopen(url + "results.json", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "anyone who can reach this address can read every file" in err
