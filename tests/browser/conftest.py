"""Browser tests of the HTML report: Debian's Chromium driven by Playwright, plus run
directories to open in it.

The browser is /usr/bin/chromium (`./dev setup` installs it when it may); Playwright's own
browser download is never used. Without it every test here skips, saying so.

Run directories come from `brittle run` on generated data, as in the integration tests:
``synthetic_run`` (two models, a significant difference, a verdict, a gallery, a preview) and
``hostile_run`` (class, image, model, dataset and run names that are HTML and script), plus
``real_run`` on the shared assets (skipped without them).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .browser_kit import (
    CHROMIUM,
    HOSTILE_DATASET,
    HOSTILE_MODEL,
    HOSTILE_RUN,
    ROOT,
    SCREENSHOTS,
    PageLog,
    Run,
    make_hostile_dataset,
    run_brittle,
)

# The integration tests' generated dataset and detectors (pytest's prepend import mode puts
# only the folder of a test file on sys.path).
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from test_run_synthetic import _make_left_dataset

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, one for the whole session."""
    if not CHROMIUM.is_file():
        reason = (
            f"browser tests need Chromium at {CHROMIUM}: run `./dev setup` as root (it "
            "installs Debian's chromium), `apt-get install --no-install-recommends chromium`, "
            "or set BRITTLE_CHROMIUM to a Chromium executable"
        )
        # CI must prove the report in a real browser: there a missing browser is a failure.
        if os.environ.get("BRITTLE_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_log() -> PageLog:
    """Console errors, page errors, dialogs and requests of ``page``."""
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A fresh page whose errors, dialogs and requests go to ``page_log``; anything that
    would leave the machine is aborted (and still recorded)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(re.compile(r"^(https?|wss?|ftp)://"), lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("console", page_log.on_console)
    page.on("pageerror", page_log.on_pageerror)
    page.on("request", page_log.on_request)
    page.on("requestfailed", page_log.on_requestfailed)

    def on_dialog(dialog: Dialog) -> None:
        page_log.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where full-page screenshots go, for people to look at (env BRITTLE_SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding both synthetic runs (and nothing else), for the index."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory, runs_root: Path) -> Run:
    """`rect` and `lefty` (which misses everything a flip moves right) trained with hflip,
    referenced to rect: the flip augmentation backfired, a significant difference."""
    data = _make_left_dataset(tmp_path_factory.mktemp("data") / "ds")
    spec = f"{data / 'detector.py'}"
    return run_brittle(
        runs_root / "synthetic",
        "--data", str(data),
        "--model", f"rect={spec}:Rectangles", "--model", f"lefty={spec}:Lefty",
        "--suite", "quick", "--resamples", "200", "--workers", "1", "--batch-size", "4",
        "--trained-with", "lefty=hflip", "--reference", "lefty=rect",
    )  # fmt: skip


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, runs_root: Path) -> Run:
    """A hostile model (trained with hflip, referenced to `plain`) and `plain`, both the
    exact-level detector, on four hostile images of four hostile classes; every gallery image
    shown (--gallery 4); run and dataset folders with hostile names too."""
    data = make_hostile_dataset(tmp_path_factory.mktemp("data") / HOSTILE_DATASET)
    spec = f"{data / 'detector.py'}:Tri"
    return run_brittle(
        runs_root / HOSTILE_RUN,
        "--data", str(data),
        "--model", f"{HOSTILE_MODEL}={spec}", "--model", f"plain={spec}",
        "--suite", "quick", "--resamples", "200", "--workers", "1", "--gallery", "4",
        "--trained-with", f"{HOSTILE_MODEL}=hflip", "--reference", f"{HOSTILE_MODEL}=plain",
    )  # fmt: skip


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> Run:
    """yolox and FastestDet on the first 40 images of the shared dataset, quick suite."""
    models = assets / "models"
    return run_brittle(
        tmp_path_factory.mktemp("real") / "run",
        "--data", str(assets / "css-valid"),
        "--model", f"yolox={models / 'yolox_nano_coco.onnx'}",
        "--model", f"fastestdet={ROOT / 'examples' / 'fastestdet.py'}:FastestDet",
        "--class-map", str(models / "coco_to_css.yaml"),
        "--suite", "quick", "--limit", "40",
    )  # fmt: skip
