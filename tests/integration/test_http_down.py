"""A hosted model whose endpoint is down, then back: the run stops early, then resumes.

A real HTTP server on 127.0.0.1 first answers every request with 503, so `brittle run`
must stop after `stop_after` images in a row gave up (not grind through every image's
retries) and say how to resume; when the server answers again, the same command retries
the failed images and completes with none lost, and a third run reads everything from
the cache (its scores included: no cell keeps a score computed with the failures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_eval_synthetic import ROOT

from brittle.demo import write_demo_dataset


class _Endpoint(ThreadingHTTPServer):
    daemon_threads = True
    up = False
    requests = 0
    queries: list[dict[str, list[str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Endpoint

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests += 1
        self.server.queries.append(parse_qs(urlsplit(self.path).query))
        if not self.server.up:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        box = {"x": 80, "y": 80, "width": 40, "height": 40, "class": "circle", "confidence": 0.9}
        body = json.dumps({"predictions": [box]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    server = _Endpoint(("127.0.0.1", 0), _Handler)
    server.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_down_endpoint_stops_the_run_and_the_same_command_resumes_it(
    endpoint: _Endpoint, tmp_path: Path
) -> None:
    spec = tmp_path / "api.http.yaml"
    spec.write_text(
        f"url: http://127.0.0.1:{endpoint.server_address[1]}/shapes/1\n"
        "format: roboflow\n"
        "class_names: [circle, square, triangle]\n"
        "api_key_env: null\n"
        "retries: 2\nbackoff: 0.01\nbackoff_max: 0.02\n"
        "stop_after: 3\n"
    )
    data = write_demo_dataset(tmp_path / "data", n=8)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "brittle", "run", "--data", str(data), "--model",
            f"api={spec}", "--suite", "quick", "--resamples", "50", "--workers", "2",
            "--out", str(out)]  # fmt: skip

    started = time.perf_counter()
    down = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert down.returncode == 2, down.stderr
    assert "looks down: 3 images in a row failed after 3 attempts each" in down.stderr
    assert "run the same command again" in down.stderr
    # Stopped early: 3 images x 3 attempts in each of the 2 workers at most, not all
    # 8 images x 9 conditions x 3 attempts.
    assert endpoint.requests <= 2 * 3 * 3 + 2 * 3, endpoint.requests
    assert not (out / "results.json").exists()
    took = time.perf_counter() - started
    print(f"\ndown: stopped after {endpoint.requests} requests, {took:.1f} s")

    endpoint.up = True
    endpoint.requests = 0
    up = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["api"]["failed_images"] == []  # the failures were retried
    assert endpoint.requests == 8 * 9  # every prediction once: clean + the quick suite's 8
    clean = res["models"]["api"]["clean"]

    endpoint.requests = 0
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert endpoint.requests == 0
    assert json.loads((out / "results.json").read_text())["models"]["api"]["clean"] == clean


def test_a_model_given_by_its_url_uses_the_datasets_class_names(
    endpoint: _Endpoint, tmp_path: Path
) -> None:
    """`--model https://...`: Roboflow's format and key, the dataset's class names, and the
    parameters a fair evaluation needs; the key is sent and stored nowhere."""
    endpoint.up = True
    data = write_demo_dataset(tmp_path / "data", n=4)
    url = f"http://127.0.0.1:{endpoint.server_address[1]}/shapes/1"
    out = tmp_path / "run"
    key = "rf_url_S3cr3t"
    args = [sys.executable, "-m", "brittle", "eval", "--data", str(data), "--model",
            f"api={url}", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "ROBOFLOW_API_KEY": key}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert endpoint.requests == 4
    assert endpoint.queries
    assert all(q == {"api_key": [key], "confidence": ["1"], "overlap": ["50"]}
               for q in endpoint.queries)  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    model = res["models"]["api"]
    assert model["class_names"] == ["circle", "square", "triangle"]
    # The server's one box per image, kept as the model's answer.
    dt, gt = tmp_path / "dt.json", tmp_path / "gt.json"
    export = [sys.executable, "-m", "brittle", "export", str(out), "--model", "api",
              "--coco-gt", str(gt), "--coco-results", str(dt)]  # fmt: skip
    assert subprocess.run(export, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    cats = {c["id"]: c["name"] for c in json.loads(gt.read_text())["categories"]}
    answers = json.loads(dt.read_text())
    assert len(answers) == 4
    assert {(cats[a["category_id"]], tuple(a["bbox"]), round(a["score"], 6)) for a in answers} == {
        ("circle", (60.0, 60.0, 40.0, 40.0), 0.9)
    }
    for f in out.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
    assert key not in proc.stdout + proc.stderr
