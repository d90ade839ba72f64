"""The command line's cheap paths: version, help, and clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brittle import __version__
from brittle.evaluate import parse_model_arg


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brittle", *args], capture_output=True, text=True, cwd=cwd
    )


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"brittle {__version__}"


def test_help_lists_the_commands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("eval", "export", "data"):
        assert command in proc.stdout


def test_a_missing_dataset_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    proc = _run("eval", "--data", str(tmp_path / "nope"), "--model", "m.onnx")
    assert proc.returncode == 2
    assert "error:" in proc.stderr
    assert str(tmp_path / "nope") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_of_a_non_run_directory(tmp_path: Path) -> None:
    proc = _run(
        "export", str(tmp_path), "--model", "m", "--coco-gt", "g.json", "--coco-results", "d.json"
    )
    assert proc.returncode == 2
    assert "no results.json here; is it a brittle run directory?" in proc.stderr


def test_model_names_default_from_the_spec() -> None:
    assert parse_model_arg("a=b.onnx") == ("a", "b.onnx")
    assert parse_model_arg("dir/x.y.onnx") == ("x.y", "dir/x.y.onnx")
    assert parse_model_arg("pkg.mod:Det") == ("Det", "pkg.mod:Det")
