"""What the browser tests share: hostile names, a dataset made of them, a finished run, and
the log of what a page did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import yaml

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Request

ROOT = Path(__file__).resolve().parents[2]
# Debian's Chromium (what ./dev setup installs); BRITTLE_CHROMIUM points elsewhere.
CHROMIUM = Path(os.environ.get("BRITTLE_CHROMIUM") or "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("BRITTLE_SCREENSHOTS") or Path(__file__).parent / "artifacts")
ENV = {**os.environ, "COLUMNS": "160"}

# Hostile user-provided strings: each must reach the page as text, never as markup or script.
# A model name may not contain '=' '/' ':' or '.' (the CLI's NAME=SPEC syntax); file names
# may not contain '/', so U+2044 (fraction slash) stands in for it.
HOSTILE_CLASSES = (
    "<script>window.__pwned=1</script>",
    "\"quo'te",
    "a & b <i>x</i>",
    "<img src=y onerror=window.__pwned=4>",
)
HOSTILE_IMAGES = (
    "<img src=x onerror=window.__pwned=2>.png",
    "a&b\"c'.png",
    "im<script>window.__pwned=3<\u2044script>.png",
    "x&amp;y <b>z.png",
)
HOSTILE_MODEL = "<b>m&\"q'<script>alert(7)"
HOSTILE_DATASET = "ds<u>&\"'x"
# A run directory's name ends up in the index's links: '#', '%', '?' and a space must be
# encoded there, '<' and '&' escaped.
HOSTILE_RUN = "run #1 50%?<b>&\"'"

LEVELS = (255, 160, 80, 40)  # the gray level of each class's rectangles
LEVELS_DETECTOR = textwrap.dedent(
    """
    import cv2
    import numpy as np

    from brittle.types import Detections


    class Tri:
        \"\"\"Finds filled rectangles of exact gray levels, one class each.\"\"\"

        class_names = CLASSES
        fingerprint = "levels-v1"

        def predict(self, images):
            out = []
            for im in images:
                boxes, labels = [], []
                for label, level in enumerate(LEVELS):
                    mask = (im[:, :, 0] == level).astype(np.uint8)
                    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                    for c in contours:
                        x, y, w, h = cv2.boundingRect(c)
                        boxes.append([x, y, x + w, y + h])
                        labels.append(label)
                scores = np.linspace(0.9, 0.5, len(boxes)) if boxes else np.zeros(0)
                out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, labels))
            return out
    """
)


def make_hostile_dataset(root: Path) -> Path:
    """A YOLO dataset of four 48x128 images named HOSTILE_IMAGES, each with one rectangle of
    every class (HOSTILE_CLASSES) in its own gray level, and detector.py:Tri that finds them."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(2)
    h, w = 48, 32 * len(LEVELS)
    for name in HOSTILE_IMAGES:
        img = np.zeros((h, w, 3), np.uint8)
        lines = []
        for label, level in enumerate(LEVELS):
            x1, y1 = 32 * label + int(rng.integers(0, 12)), int(rng.integers(0, 24))
            x2, y2 = x1 + int(rng.integers(8, 18)), y1 + int(rng.integers(8, 22))
            img[y1:y2, x1:x2] = level
            cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
            lines.append(f"{label} {cx} {cy} {(x2 - x1) / w} {(y2 - y1) / h}")
        ok, png = cv2.imencode(".png", img)
        assert ok
        (root / "images" / name).write_bytes(png.tobytes())
        (root / "labels" / (Path(name).stem + ".txt")).write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(
        yaml.safe_dump({"path": ".", "val": "images", "names": list(HOSTILE_CLASSES)})
    )
    detector = LEVELS_DETECTOR.replace("CLASSES", repr(HOSTILE_CLASSES))
    (root / "detector.py").write_text(detector.replace("LEVELS", repr(LEVELS)))
    return root


@dataclass
class PageLog:
    """What a page did that a self-contained report must not: console errors, uncaught
    exceptions, dialogs (alert & co: script that should not run) and network requests."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failures: dict[str, str | None] = field(default_factory=dict)  # failed request: why
    allowed: set[str] = field(default_factory=set)

    def allow(self, path: Path) -> str:
        """Allow loading the local file ``path`` (a report or an index); returns its URL."""
        url = path.resolve().as_uri()
        self.allowed.add(url)
        return url

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text} ({msg.location})")

    def on_pageerror(self, exc: Exception) -> None:
        self.errors.append(f"pageerror: {exc}")

    def on_request(self, request: Request) -> None:
        url = request.url
        if url.startswith(("data:", "about:")) or url.split("#")[0] in self.allowed:
            return
        self.requests.append(url)

    def on_requestfailed(self, request: Request) -> None:
        self.failures[request.url] = request.failure

    def assert_clean(self) -> None:
        """No console error, no exception, no dialog and no request but the allowed files."""
        assert not self.errors, "the page reported errors:\n" + "\n".join(self.errors)
        assert not self.dialogs, "the page opened dialogs:\n" + "\n".join(self.dialogs)
        assert not self.requests, "the page made requests:\n" + "\n".join(self.requests)


@dataclass
class Run:
    """A finished `brittle run`: its directory, results and report."""

    dir: Path
    results: dict[str, Any]
    wrote_report: bool  # whether `brittle run` itself wrote report.html
    stdout: str

    @property
    def report(self) -> Path:
        return self.dir / "report.html"

    @property
    def gallery(self) -> list[dict[str, Any]]:
        index = self.dir / "gallery" / "index.json"
        entries: list[dict[str, Any]] = json.loads(index.read_text()) if index.is_file() else []
        return entries


def brittle(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The brittle command line, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "brittle", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def run_brittle(out: Path, *args: str) -> Run:
    """`brittle run --out out ...`; should the run write no report.html, write_report writes
    it (test_brittle_run_writes_its_report says so, the other tests go on)."""
    proc = brittle("run", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    wrote = (out / "report.html").is_file()
    if not wrote:
        from brittle.report import write_report

        write_report(out)
    return Run(out, json.loads((out / "results.json").read_text()), wrote, proc.stdout)
