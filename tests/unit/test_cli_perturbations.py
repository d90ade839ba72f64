"""`brittle perturbations`: the catalogue listing and the preview grid a person looks at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from brittle.perturbations import catalogue


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brittle", "perturbations", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_listing_shows_every_perturbation_by_family() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    total = sum(len(v) for v in catalogue().values())
    assert f"{total} perturbations in 7 families" in proc.stdout
    for family, classes in catalogue().items():
        assert family in proc.stdout
        for cls in classes:
            assert cls.name in proc.stdout
            assert cls.description[:30] in proc.stdout
    assert "ImageNet-C common" in proc.stdout
    assert "moves boxes" in proc.stdout


def test_preview_renders_a_grid_with_moved_boxes(tmp_path: Path) -> None:
    img = np.zeros((90, 120, 3), np.uint8)
    img[20:50, 10:40] = 255
    cv2.imwrite(str(tmp_path / "im.png"), img)
    (tmp_path / "im.txt").write_text("0 0.2083333 0.3888889 0.25 0.3333333\n")
    out = tmp_path / "grid.png"
    proc = _run(
        "--preview", str(tmp_path / "im.png"), "--labels", str(tmp_path / "im.txt"),
        "--only", "hflip", "--only", "blur", "--cell", "64", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    grid = cv2.imread(str(out))
    n_rows = 1 + len(catalogue()["blur"])
    assert grid.shape == (26 + 64 * n_rows, 170 + 64 * 6, 3)
    # hflip row, severity-1 cell: the white square moved to the right half of the thumbnail.
    cell = grid[26:90, 170 + 64 : 170 + 128]
    white = np.argwhere(cell.min(axis=2) > 200)
    assert white[:, 1].mean() > 32
    assert "wrote" in proc.stdout


def test_unknown_names_get_a_suggestion(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "im.png"), np.zeros((8, 8, 3), np.uint8))
    proc = _run("--preview", str(tmp_path / "im.png"), "--only", "motion_blurr")
    assert proc.returncode == 2
    assert "did you mean 'motion_blur'?" in proc.stderr
