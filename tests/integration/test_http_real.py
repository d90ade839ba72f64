"""`brittle run` through a hosted model that misbehaves, against the same model run locally.

A real HTTP server on 127.0.0.1 (in this test process) serves the real YOLOX-nano through
brittle's own OnnxDetector in Roboflow's response format, checks the API key, and
injects faults on a fixed schedule of request numbers: 500s, 429 with Retry-After, a
response slower than the client's timeout, an HTML page instead of JSON, and a connection
closed without an answer. The real CLI then runs one HTTP model and the same ONNX file
locally on css-valid. The run must lose no image, give the HTTP model exactly the local
model's numbers (PNG is lossless and the server runs the same predictor), have met every
fault, and leave the API key nowhere: not in any file of the run directory, not in the
output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from brittle.models.names import read_names
from brittle.models.onnx import OnnxDetector

ROOT = Path(__file__).resolve().parents[2]
SECRET = "brittle-test-key-7Hq2+xZ/9"  # '+' and '/' must survive URL encoding both ways
SLOW_SECONDS = 1.0
CLIENT_TIMEOUT = 0.5
FAULTS = ("500", "429", "slow", "malformed", "drop")


#: At most this many faults for one image, so no image can run out of retries by bad luck
#: (the client makes 7 attempts; timeouts under load may take a few more).
FAULTS_PER_IMAGE = 2


def fault_for(n: int) -> str | None:
    """The fault planned for the n-th request (1-based): about one request in four."""
    if n % 97 == 13:
        return "slow"  # a few only: each one costs the client its whole timeout
    return {2: "500", 5: "429", 7: "malformed", 11: "drop", 14: "500"}.get(n % 17)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, detector: OnnxDetector, names: tuple[str, ...]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.detector = detector
        self.names = names
        self.lock = threading.Lock()
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.faults_per_image: Counter[bytes] = Counter()
        self.answered = 0
        self.unauthorised = 0

    def next_request(self, body: bytes) -> str | None:
        image = hashlib.blake2b(body, digest_size=16).digest()
        with self.lock:
            self.requests += 1
            fault = fault_for(self.requests)
            if fault and self.faults_per_image[image] < FAULTS_PER_IMAGE:
                self.faults_per_image[image] += 1
                self.faults[fault] += 1
                return fault
            return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/css-yolox/1"


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        query = parse_qs(urlsplit(self.path).query)
        if query.get("api_key") != [SECRET]:
            with self.server.lock:
                self.server.unauthorised += 1
            self._reply(403, b'{"message": "Forbidden"}', "application/json")
            return
        fault = self.server.next_request(body)
        if fault == "500":
            self._reply(500, b"Internal Server Error", "text/plain")
            return
        if fault == "429":
            self._reply(429, b'{"message": "slow down"}', "application/json", Retry_After="0.05")
            return
        if fault == "malformed":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self._reply(200, page, "text/html")
            return
        if fault == "drop":
            self.close_connection = True  # no status line, no headers: the socket just closes
            return
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            self._reply(415, b"expected a base64 body", "text/plain")
            return
        png = np.frombuffer(base64.b64decode(body, validate=True), np.uint8)
        bgr = cv2.imdecode(png, cv2.IMREAD_COLOR)
        assert bgr is not None
        rgb = np.ascontiguousarray(bgr[:, :, ::-1], np.uint8)
        (dets,) = self.server.detector.predict([rgb])
        predictions = [
            {
                # Roboflow: box centre and size in the image's pixels.
                "x": (float(x1) + float(x2)) / 2,
                "y": (float(y1) + float(y2)) / 2,
                "width": float(x2) - float(x1),
                "height": float(y2) - float(y1),
                "class": self.server.names[int(label)],
                "class_id": int(label),
                "confidence": float(score),
            }
            for (x1, y1, x2, y2), score, label in zip(
                dets.boxes, dets.scores, dets.labels, strict=True
            )
        ]
        payload = {
            "time": 0.01,
            "image": {"width": rgb.shape[1], "height": rgb.shape[0]},
            "predictions": predictions,
        }
        if fault == "slow":
            time.sleep(SLOW_SECONDS)  # the client has given up by now
        try:
            self._reply(200, json.dumps(payload).encode(), "application/json")
        except OSError:  # the client closed the connection after its timeout
            return
        with self.server.lock:
            self.server.answered += 1


@pytest.fixture(scope="module")
def server(assets: Path) -> Iterator[ModelServer]:
    models = assets / "models"
    detector = OnnxDetector(models / "yolox_nano_coco.onnx")
    srv = ModelServer(detector, read_names(models / "coco.names"))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def _numbers(tree: Any) -> Any:
    """The numeric skeleton of a JSON tree: numbers (and lists/dicts holding them) only."""
    if isinstance(tree, dict):
        kept = {k: _numbers(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(tree, list):
        kept_list = [_numbers(v) for v in tree]
        return kept_list if any(v is not None for v in kept_list) else None
    if isinstance(tree, bool) or not isinstance(tree, int | float):
        return None
    return tree


def test_run_through_a_faulty_server_equals_the_local_run(
    assets: Path, server: ModelServer, tmp_path: Path
) -> None:
    models = assets / "models"
    config = tmp_path / "yolox.http.yaml"
    config.write_text(
        f"url: {server.url}\n"
        "format: roboflow\n"
        f"class_names: {models / 'coco.names'}\n"
        "request:\n"
        "  image_format: png\n"
        "  params: {confidence: 0, overlap: 65}\n"
        "concurrency: 4\n"
        f"timeout: {CLIENT_TIMEOUT}\n"
        "retries: 6\n"
        "backoff: 0.02\n"
        "backoff_max: 0.2\n"
    )
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "brittle", "run",
        "--data", str(assets / "css-valid"),
        "--model", f"rf={config}",
        "--model", f"local={models / 'yolox_nano_coco.onnx'}",
        "--class-map", str(models / "coco_to_css.yaml"),
        "--suite", "quick", "--limit", "30", "--resamples", "100",
        "--workers", "2", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "ROBOFLOW_API_KEY": SECRET}
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=300)
    seconds = time.perf_counter() - t0
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr

    results = json.loads((out / "results.json").read_text())
    rf, local = results["models"]["rf"], results["models"]["local"]
    if rf["failed_images"] or local["failed_images"]:
        with sqlite3.connect(out / "cache.sqlite") as db:
            errors = [e for (e,) in db.execute("SELECT error FROM predictions WHERE error != ''")]
        pytest.fail(f"lost images: {rf['failed_images']} {local['failed_images']}: {errors}")
    # Identical numbers: clean metrics and every perturbation cell, to the last digit.
    assert _numbers(rf) == _numbers(local)
    assert _numbers(rf)  # the comparison compared something

    # Prediction by prediction: the same boxes, scores and labels, bit for bit.
    with sqlite3.connect(out / "cache.sqlite") as db:
        rows = {
            fp: sorted(
                db.execute(
                    "SELECT image, perturbation, severity, detections, error "
                    "FROM predictions WHERE model = ?",
                    (fp,),
                )
            )
            for fp in (rf["fingerprint"], local["fingerprint"])
        }
    predictions = 30 * (1 + 8)  # clean + the quick suite's 8 cells
    assert len(rows[rf["fingerprint"]]) == predictions
    assert all(r[-1] is None for r in rows[rf["fingerprint"]])
    assert rows[rf["fingerprint"]] == rows[local["fingerprint"]]

    # Every fault type was met, and each was recovered from.
    assert set(server.faults) == set(FAULTS), server.faults
    assert server.unauthorised == 0
    assert server.answered >= predictions
    print(
        f"\n{server.requests} requests for {predictions} predictions "
        f"({server.requests - predictions} retried or answered too late); faults "
        f"{dict(server.faults)}; run took {seconds:.1f} s"
    )

    # The key is nowhere: not in any file of the run directory, not in the output.
    needles = [SECRET.encode(), SECRET.replace("+", "%2B").replace("/", "%2F").encode()]
    for path in [*sorted(p for p in out.rglob("*") if p.is_file())]:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"the API key leaked into {path}"
    for stream in (proc.stdout, proc.stderr):
        assert not any(n in stream for n in needles), "the API key leaked into the output"
    assert (out / "cache.sqlite").is_file()
    assert (out / "results.json").is_file()

    # Run again: everything comes from the cache, the server is not asked once more.
    before = server.requests
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode(errors="replace")
    assert server.requests == before
    run = json.loads((out / "run.json").read_text())
    assert run["cached_predictions"]["rf"] == predictions
    assert run["inferred_predictions"]["rf"] == 0
