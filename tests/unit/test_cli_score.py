"""`brittle score`: a drop-in check of any pipeline's COCO-format predictions."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brittle.metrics.coco import COCO_STAT_NAMES


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    images, anns, dets = [], [], []
    for i in range(1, 41):
        images.append({"id": i * 7, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 500, 2).round(2)
            w, h = rng.uniform(4, 200, 2).round(2)
            cat = int(rng.choice([3, 8, 11]))
            anns.append({"id": len(anns) + 1, "image_id": i * 7, "category_id": cat,
                         "bbox": [x, y, w, h], "area": float(w * h), "iscrowd": 0})  # fmt: skip
            for _ in range(2):
                jit = rng.normal(0, 0.1 * max(w, h) ** 0.5, 4).round(3)
                dets.append({"image_id": i * 7, "category_id": cat,
                             "bbox": [x + jit[0], y + jit[1], abs(w + jit[2]), abs(h + jit[3])],
                             "score": round(float(rng.uniform()), 3)})  # fmt: skip
    cats = [{"id": c, "name": n} for c, n in ((3, "car"), (8, "truck"), (11, "sign"))]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dt = tmp_path / "dt.json"
    dt.write_text(json.dumps(dets))
    return gt, dt


def _score(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brittle", "score", *args], capture_output=True, text=True
    )


def test_score_json_equals_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = _files(tmp_path)
    proc = _score("--gt", str(gt), "--predictions", str(dt), "--json", "--per-class")
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt))
        ev = COCOeval(coco, coco.loadRes(str(dt)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert [ours[k] for k in COCO_STAT_NAMES] == pytest.approx(list(ev.stats), abs=1e-12)
    assert set(ours["per_class"]) == {"car", "truck", "sign"}
    # Per-class AP50 from pycocotools' precision table: mean over recall of IoU=0.5, area all.
    p = ev.eval["precision"][0, :, 0, 0, 2]
    assert ours["per_class"]["car"]["ap50"] == pytest.approx(float(p[p > -1].mean()), abs=1e-12)


def test_score_table_and_errors(tmp_path: Path) -> None:
    gt, dt = _files(tmp_path)
    proc = _score("--gt", str(gt), "--predictions", str(dt))
    assert proc.returncode == 0, proc.stderr
    assert "AP @[.50:.95] all" in proc.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  oops]}')
    proc = _score("--gt", str(bad), "--predictions", str(dt))
    assert proc.returncode == 2
    assert f"{bad}:2:3: not valid JSON" in proc.stderr
    proc = _score("--gt", str(gt), "--predictions", str(dt), "--max-dets", "1,10")
    assert proc.returncode == 2
    assert "expected three whole numbers" in proc.stderr
