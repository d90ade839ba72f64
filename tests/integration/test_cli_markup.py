"""Text that users choose reaches the terminal as written: rich reads ``[word]`` as markup,
so a model called ``m[bold]x``, a dataset folder ``data[v2]``, a class ``[red]cone`` or an
image ``[blue]bad.png`` must not lose their brackets (or restyle what follows) in any
command's output, while brittle's own styling stays markup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_eval_synthetic import ROOT

from brittle.demo import demo_models, write_demo_dataset

ENV = {**os.environ, "COLUMNS": "200"}
MODEL = "m[bold]x"
OTHER = "n[i]y"
CLASS = "[red]cone"


def _brittle(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brittle", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("markup")
    data = write_demo_dataset(root / "data[v2]", n=6)
    yaml = data / "data.yaml"
    yaml.write_text(yaml.read_text().replace("2: triangle", f"2: '{CLASS}'"))
    # a label the reader rejects (its message names the file) and an image it cannot decode
    with (data / "labels" / "00000.txt").open("a") as f:
        f.write("9 0.5 0.5 0.1 0.1\n")
    (data / "images" / "[blue]bad.png").write_bytes(b"not a png")
    (data / "labels" / "[blue]bad.txt").write_text("")
    cmap = root / "map[c].yaml"
    cmap.write_text(f"circle: circle\nsquare: square\ntriangle: '{CLASS}'\n")
    models = demo_models()
    out = root / "run[ci]"  # "run[1]" would print fine: a tag starts with a letter, #, / or @
    proc = _brittle(
        "run", "--data", data, "--model", f"{MODEL}={models['plain']}",
        "--model", f"{OTHER}={models['augmented']}", "--class-map", cmap,
        "--suite", "quick", "--resamples", "50", "--workers", "1", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (root / "run.stdout").write_text(proc.stdout)
    (root / "run.stderr").write_text(proc.stderr)
    return {"root": root, "data": data, "run": out}


def test_run_prints_names_and_paths_literally(case: dict[str, Path]) -> None:
    stdout = (case["root"] / "run.stdout").read_text()
    stderr = (case["root"] / "run.stderr").read_text()
    assert f"{MODEL} (onnx) on data[v2]" in stdout  # the heading of the clean metrics
    assert f"{MODEL} worst:" in stdout
    assert f"{OTHER} worst:" in stdout
    assert CLASS in stdout  # the per-class table
    assert f"results: {case['run'] / 'results.json'}" in stdout
    assert f"report:  {case['run'] / 'report.html'}" in stdout
    assert "data[v2]" in stderr  # the label warning names its file
    assert "skipped: [blue]bad" in stderr


def test_show_prints_names_literally(case: dict[str, Path]) -> None:
    proc = _brittle("show", case["run"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{MODEL} (onnx) on data[v2]" in out
    assert f"│ {CLASS} " in out  # the per-class table
    assert f"│ {MODEL} " in out  # the COCO and risk tables
    assert f"{MODEL} ┃" in out  # a column of the robustness table
    assert f"{MODEL} worst:" in out
    assert re.search(r"(recommended|lowest risk): (m\[bold\]x|n\[i\]y)", out), out
    verdicts = [line for line in out.splitlines() if "significant" in line]
    assert verdicts, out
    assert all(MODEL in line and OTHER in line for line in verdicts), verdicts
    assert "[bold]" not in out.replace(MODEL, "")  # brittle's own markup is still markup


def test_data_prints_the_dataset_literally(case: dict[str, Path]) -> None:
    proc = _brittle("data", case["data"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("data[v2] (yolo"), proc.stdout
    assert f"images at {case['data']}" in proc.stdout
    assert CLASS in proc.stdout
    assert str(case["data"] / "labels" / "00000.txt") in proc.stdout  # an issue's file


def test_export_and_score_print_paths_and_classes_literally(case: dict[str, Path]) -> None:
    gt, dt = case["root"] / "gt[a].json", case["root"] / "dt[a].json"
    proc = _brittle("export", case["run"], "--model", MODEL, "--coco-gt", gt, "--coco-results", dt)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {gt} (" in proc.stdout
    assert f"and {dt} (" in proc.stdout
    proc = _brittle("score", "--gt", gt, "--predictions", dt, "--per-class")
    assert proc.returncode == 0, proc.stderr
    assert CLASS in proc.stdout


def test_suite_commands_print_names_literally(case: dict[str, Path]) -> None:
    suite = case["root"] / "suite[ci].yaml"  # suite files name models plainly
    models = demo_models()
    proc = _brittle(
        "init", "--data", case["data"], "--model", f"plain={models['plain']}", "--out", suite
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {suite}; edit it, then: brittle validate {suite}" in proc.stdout
    proc = _brittle("validate", suite)
    assert proc.returncode == 0, proc.stderr
    assert f"{suite}: valid: 1 models" in proc.stdout
    proc = _brittle("check", case["run"], "--suite", suite)  # its checks cover the run's models
    assert proc.returncode in (0, 1), proc.stderr
    assert f"closest: {MODEL}:" in proc.stdout or f"closest: {OTHER}:" in proc.stdout, proc.stdout


def test_report_prints_its_path_literally(case: dict[str, Path]) -> None:
    proc = _brittle("report", case["run"])
    assert proc.returncode == 0, proc.stderr
    assert f"report: {case['run'] / 'report.html'}" in proc.stdout
