"""Shared fixtures: where the real assets are, and a skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__import__("os").environ.get("BRITTLE_ASSETS", ROOT.parent / "shared" / "assets"))
CSS_VALID = ASSETS / "css-valid"
MODELS = ASSETS / "models"


@pytest.fixture(scope="session")
def assets() -> Path:
    """The shared real assets folder; tests using it skip when it is absent."""
    if not (CSS_VALID / "data.yaml").is_file() or not (MODELS / "yolox_nano_coco.onnx").is_file():
        pytest.skip(
            f"real assets not found at {ASSETS} (set BRITTLE_ASSETS to the shared/assets folder)"
        )
    return ASSETS
