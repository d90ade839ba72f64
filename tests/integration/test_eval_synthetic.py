"""`brittle eval` end to end without the shared assets: a generated YOLO dataset of drawn
rectangles and a real (if simple) Python detector that finds them with OpenCV contours.

Covers what a user relies on when things go wrong: a model error on one image is recorded and
the run goes on; Ctrl-C mid-run loses nothing and the same command resumes, calling the model
only for what is missing, and ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

DETECTOR = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    import cv2
    import numpy as np

    from brittle.types import Detections


    class Rectangles:
        """Finds filled rectangles: white ones are class 'light', gray ones 'dark'."""

        class_names = ("light", "dark")
        fingerprint = "rectangles-v1"

        def predict(self, images):
            log = os.environ.get("CALL_LOG")
            out = []
            for im in images:
                if log:
                    with open(log, "a") as f:
                        f.write("call\\n")
                    n = sum(1 for _ in open(log))
                    if n == int(os.environ.get("INTERRUPT_AT", "0")):
                        raise KeyboardInterrupt
                if im[0, 0, 0] == 7:
                    raise RuntimeError("this image always fails")
                boxes, labels = [], []
                for label, level in ((0, 255), (1, 128)):
                    mask = (im[:, :, 0] == level).astype(np.uint8)
                    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                    for c in contours:
                        x, y, w, h = cv2.boundingRect(c)
                        boxes.append([x, y, x + w, y + h])
                        labels.append(label)
                scores = np.linspace(0.9, 0.5, len(boxes)) if boxes else np.zeros(0)
                out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, labels))
            return out
    '''
)


def _make_dataset(root: Path, n: int = 10, fail_one: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = 48, 64
        img = np.zeros((h, w, 3), np.uint8)
        lines = []
        for k in range(2):
            x1, y1 = int(rng.integers(0, 20)) + 32 * k, int(rng.integers(0, 20))
            x2, y2 = x1 + int(rng.integers(6, 12)), y1 + int(rng.integers(6, 20))
            level, label = ((255, 0), (128, 1))[k]
            img[y1:y2, x1:x2] = level
            cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
            lines.append(f"{label} {cx} {cy} {(x2 - x1) / w} {(y2 - y1) / h}")
        if fail_one and i == 3:
            img[0, 0] = 7
        cv2.imwrite(str(root / "images" / f"im{i:02d}.png"), img)
        (root / "labels" / f"im{i:02d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\nval: images\nnames: [light, dark]\n")
    (root / "detector.py").write_text(DETECTOR)
    return root


def _eval(data: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "brittle", "eval", "--data", str(data),
        "--model", f"rect={data / 'detector.py'}:Rectangles",
        "--out", str(out), "--batch-size", "2", "--workers", "1",
    ]  # fmt: skip
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160", **env},
    )


def test_a_perfect_detector_scores_exactly_one(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "ds")
    proc = _eval(data, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    clean = res["models"]["rect"]["clean"]
    # COCO divides by (tp + fp + eps), so a perfect score is 1 - 1e-16, as in pycocotools.
    assert clean["map50_95"] == pytest.approx(1.0, abs=1e-12)
    dark = clean["per_class"]["dark"]
    assert dark["gt_count"] == 10
    assert dark["ap50"] == pytest.approx(1.0, abs=1e-12)


def test_a_failing_image_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "ds", fail_one=True)
    proc = _eval(data, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["models"]["rect"]["failed_images"] == ["im03.png"]
    assert "model failed on 1 images" in proc.stdout
    # The failure scores as no detections: the other 9 images are perfect.
    assert res["models"]["rect"]["clean"]["ar100"] == pytest.approx(0.9)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "ds")
    log = tmp_path / "calls.log"
    proc = _eval(data, tmp_path / "run", CALL_LOG=str(log), INTERRUPT_AT="7")
    assert proc.returncode == 130
    assert "run the same command (with the same --out) to resume" in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()
    log.unlink()
    proc = _eval(data, tmp_path / "run", CALL_LOG=str(log))
    assert proc.returncode == 0, proc.stderr
    # Three batches of 2 were committed before the interrupt: only 4 images remain.
    assert len(log.read_text().splitlines()) == 4
    fresh = _eval(data, tmp_path / "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "run" / "results.json").read_bytes() == (
        tmp_path / "fresh" / "results.json"
    ).read_bytes()


def _run(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-m", "brittle", "run", "--data", str(data),
        "--model", f"rect={data / 'detector.py'}:Rectangles",
        "--out", str(out), "--batch-size", "4", *extra,
    ]  # fmt: skip
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip


def test_run_separates_an_invariance_from_a_fragility(tmp_path: Path) -> None:
    """The rectangle finder is exactly flip-equivariant (it thresholds exact levels, and a
    flip moves pixels without changing them) and fragile to noise (noise breaks the levels)."""
    data = _make_dataset(tmp_path / "ds")
    proc = _run(data, tmp_path / "run", "--suite", "quick")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["suite"]["name"] == "quick"
    pert = res["models"]["rect"]["perturbations"]
    assert pert["hflip"]["rpc"] == pytest.approx(1.0, abs=1e-12)
    assert pert["hflip"]["consistency"] == 1.0
    assert pert["hflip"]["affected_fraction"] == 0.0
    assert pert["gaussian_noise"]["rpc"] < 0.2
    assert pert["gaussian_noise"]["consistency"] < 0.5
    assert pert["gaussian_noise"]["affected_fraction"] == 1.0
    assert set(pert["gaussian_noise"]["severities"]) == {"3"}
    assert "Robustness by family" in proc.stdout
    assert "Risk score" in proc.stdout
    fams = res["models"]["rect"]["families"]
    assert set(fams) == {"noise", "blur", "weather", "light", "digital", "geometric", "occlusion"}
    assert fams["noise"]["rpc"] == pert["gaussian_noise"]["rpc"]
    assert fams["geometric"]["perturbations"] == ["hflip", "rotate"]
    assert fams["geometric"]["consistency"] == pytest.approx(
        (pert["hflip"]["consistency"] + pert["rotate"]["consistency"]) / 2
    )


def test_run_is_deterministic_and_a_warm_rerun_only_rescores(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "ds")
    first = _run(data, tmp_path / "a", "--suite", "quick", "--seed", "7")
    assert first.returncode == 0, first.stderr
    again = _run(data, tmp_path / "a", "--suite", "quick", "--seed", "7")
    assert again.returncode == 0, again.stderr
    other = _run(data, tmp_path / "b", "--suite", "quick", "--seed", "7")
    assert other.returncode == 0, other.stderr
    a = (tmp_path / "a" / "results.json").read_bytes()
    assert a == (tmp_path / "b" / "results.json").read_bytes()
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["inferred_predictions"] == {"rect": 0}
    assert run["cached_predictions"] == {"rect": 10 * (1 + 8)}  # clean + 8 quick cells


def test_run_on_unlabeled_images_reports_label_free_measures(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "ds")
    folder = tmp_path / "production"
    folder.mkdir()
    for f in (data / "images").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    args = [
        sys.executable, "-m", "brittle", "run", "--data", str(folder),
        "--model", f"rect={data / 'detector.py'}:Rectangles",
        "--out", str(tmp_path / "run"), "--suite", "quick",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["dataset"]["format"] == "folder"
    model = res["models"]["rect"]
    assert model["clean"] is None
    assert model["perturbations"]["hflip"]["rpc"] is None
    assert model["perturbations"]["hflip"]["consistency"] == 1.0
    assert model["perturbations"]["gaussian_noise"]["consistency"] < 0.5
