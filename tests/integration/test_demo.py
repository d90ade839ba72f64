"""The embedded demo end to end, with nothing from ../shared: the packaged detectors run
through the real CLI on a few of the demo's own scenes, with their declared augmentations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_eval_synthetic import ROOT

from brittle.demo import REFERENCE, TRAINED_WITH, demo_models, write_demo_dataset


def test_the_packaged_detectors_run_through_brittle_on_demo_scenes(tmp_path: Path) -> None:
    models = demo_models()
    assert set(models) == {"plain", "augmented", "flipped"}
    data = write_demo_dataset(tmp_path / "data", n=12)
    args = [sys.executable, "-m", "brittle", "run", "--data", str(data), "--suite", "quick",
            "--resamples", "100", "--workers", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    for name, path in models.items():
        args += ["--model", f"{name}={path}"]
    for name, augs in TRAINED_WITH.items():
        args += [
            "--trained-with",
            f"{name}={','.join(augs)}",
            "--reference",
            f"{name}={REFERENCE[name]}",
        ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    for name in models:
        assert res["models"][name]["clean"]["map50"] > 0.8  # trained detectors, not noise
    assert {(v["model"], v["augmentation"]) for v in res["verdicts"]} == {
        ("augmented", "blur"),
        ("augmented", "noise"),
        ("flipped", "flip"),
    }
    assert (tmp_path / "run" / "report.html").is_file()


def test_a_model_that_predicts_nothing_is_listed_unrated_not_recommended(tmp_path: Path) -> None:
    (tmp_path / "nothing.py").write_text(
        "from brittle.types import Detections\n"
        "class Nothing:\n"
        "    class_names = ('circle', 'square', 'triangle')\n"
        "    fingerprint = 'nothing-v1'\n"
        "    def predict(self, images):\n"
        "        return [Detections.empty() for _ in images]\n"
    )
    models = demo_models()
    data = write_demo_dataset(tmp_path / "data", n=12)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "brittle", "run", "--data", str(data), "--suite", "quick",
            "--resamples", "100", "--workers", "1", "--out", str(out),
            "--model", f"plain={models['plain']}", "--model", f"augmented={models['augmented']}",
            "--model", f"nothing={tmp_path / 'nothing.py'}:Nothing"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["nothing"]["risk"] is None
    assert res["models"]["plain"]["risk"] is not None
    assert "nothing: no risk score" in proc.stdout
    verdict = [ln for ln in proc.stdout.splitlines() if "lowest risk" in ln or "recommended" in ln]
    assert verdict
    assert all("nothing" not in ln for ln in verdict), verdict
    report = (out / "report.html").read_text()
    assert "no risk score: its clean mAP is not above 0" in report
    assert "risk not significantly lower than nothing" not in report


def test_the_demo_command_tells_its_story_and_resumes(tmp_path: Path) -> None:
    """README's first command, on the quick suite to stay fast: the verdict, where the
    report is, the scenes named in its title; the same command again predicts nothing."""
    out = tmp_path / "demo"
    args = [sys.executable, "-m", "brittle", "demo", "--suite", "quick", "--out", str(out)]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "recommended:" in proc.stdout
    assert f"report:  {out / 'report.html'}" in proc.stdout
    first = (out / "results.json").read_bytes()
    res = json.loads(first)
    assert set(res["models"]) == {"plain", "augmented", "flipped"}
    for name in res["models"]:
        assert res["models"][name]["clean"]["map50"] > 0.9
    report = (out / "report.html").read_text()
    assert "<h1>demo-scenes</h1>" in report
    run = json.loads((out / "run.json").read_text())
    assert sum(run["inferred_predictions"].values()) == 3 * 100 * 9  # clean + 8 quick cells

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    rerun = json.loads((out / "run.json").read_text())
    assert rerun["inferred_predictions"] == {"plain": 0, "augmented": 0, "flipped": 0}
    assert (out / "results.json").read_bytes() == first
