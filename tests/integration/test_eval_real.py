"""`brittle eval` end to end on the real dataset with both real detectors.

Runs the README's main job once per session (about 5 s on 2 cores) and checks what a user
sees and what is stored: the Person AP50 the shared README promises, exact agreement of all
12 COCO stats with pycocotools on the exported predictions, and a warm re-run that reuses the
cache and writes byte-identical results.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from brittle.metrics.coco import COCO_STAT_NAMES
from brittle.results import schema_path

ROOT = Path(__file__).resolve().parents[2]


def _brittle(assets: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, as a user would."""
    env = {**os.environ, "COLUMNS": "160", "BRITTLE_ASSETS": str(assets)}
    return subprocess.run(
        [sys.executable, "-m", "brittle", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def run_dir(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "eval"
    args = [
        "eval",
        "--data", str(assets / "css-valid"),
        "--model", f"yolox={assets / 'models' / 'yolox_nano_coco.onnx'}",
        "--model", "fastestdet=examples/fastestdet.py:FastestDet",
        "--class-map", str(assets / "models" / "coco_to_css.yaml"),
        "--out", str(out),
    ]  # fmt: skip
    proc = _brittle(assets, *args)
    assert proc.returncode == 0, proc.stderr
    (out / "stdout.txt").write_text(proc.stdout)
    (out / "args.json").write_text(json.dumps(args))
    return out


def _results(run_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run_dir / "results.json").read_text())


def test_results_match_the_schema_and_the_shared_readme(run_dir: Path) -> None:
    res = _results(run_dir)
    jsonschema.validate(res, json.loads(schema_path().read_text()))
    assert res["dataset"]["image_count"] == 114
    # 697, not the 593 the shared README says: 104 label files lack a final newline, and
    # `cat labels/*.txt | wc -l` glues their last line to the next file's first.
    assert res["dataset"]["box_count"] == 697
    yolox, fastest = res["models"]["yolox"], res["models"]["fastestdet"]
    assert yolox["evaluated_classes"] == ["Person", "vehicle"]
    # The shared README: Person AP50 about 0.6 for YOLOX-nano, 0.55 for FastestDet.
    assert yolox["clean"]["per_class"]["Person"]["ap50"] == pytest.approx(0.6, abs=0.05)
    assert fastest["clean"]["per_class"]["Person"]["ap50"] == pytest.approx(0.55, abs=0.05)
    assert yolox["clean"]["per_class"]["Person"]["gt_count"] == 166


def test_the_table_is_printed(run_dir: Path) -> None:
    out = (run_dir / "stdout.txt").read_text()
    assert "yolox (onnx) on css-valid: 114 images" in out
    assert "fastestdet (python)" in out
    assert "COCO metrics (clean)" in out
    res = _results(run_dir)
    assert f"{res['models']['yolox']['clean']['map50']:.3f}" in out
    assert "excluded from its mAP): Hardhat, Mask" in out


@pytest.mark.parametrize("model", ["yolox", "fastestdet"])
def test_all_12_stats_equal_pycocotools_on_exported_predictions(
    assets: Path, run_dir: Path, model: str, tmp_path: Path
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    proc = _brittle(
        assets, "export", str(run_dir), "--model", model,
        "--coco-gt", str(gt_file), "--coco-results", str(dt_file),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        dt = gt.loadRes(str(dt_file))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    clean = _results(run_dir)["models"][model]["clean"]
    ours = [clean[name] for name in COCO_STAT_NAMES]
    assert ours == pytest.approx(list(ev.stats), abs=1e-9)
    assert len(dt.dataset["annotations"]) > 1000  # real predictions at conf 0.001, not a stub
    # `brittle score` on the same files is the same drop-in check.
    proc = _brittle(assets, "score", "--gt", str(gt_file), "--predictions", str(dt_file), "--json")
    assert proc.returncode == 0, proc.stderr
    scored = json.loads(proc.stdout)
    assert [scored[n] for n in COCO_STAT_NAMES] == pytest.approx(list(ev.stats), abs=1e-9)


def test_warm_rerun_reuses_the_cache_and_is_byte_identical(assets: Path, run_dir: Path) -> None:
    before = (run_dir / "results.json").read_bytes()
    cold = json.loads((run_dir / "run.json").read_text())
    args = json.loads((run_dir / "args.json").read_text())
    proc = _brittle(assets, *args)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "results.json").read_bytes() == before
    warm = json.loads((run_dir / "run.json").read_text())
    assert cold["inferred_predictions"] == {"yolox": 114, "fastestdet": 114}
    # A warm run sends no image to any model: everything comes from the cache.
    assert warm["inferred_predictions"] == {"yolox": 0, "fastestdet": 0}
    assert warm["cached_predictions"] == {"yolox": 114, "fastestdet": 114}


def test_mismatched_class_names_stop_before_inference(assets: Path, tmp_path: Path) -> None:
    proc = _brittle(
        assets, "eval", "--data", str(assets / "css-valid"),
        "--model", str(assets / "models" / "yolox_nano_coco.onnx"), "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--class-map" in proc.stderr
    assert not (tmp_path / "r" / "cache.sqlite").exists()
