"""`brittle run` end to end on generated data: what the worker pool, the cache and the
statistics promise, checked through the command line.

Reuses the drawn-rectangles dataset and the exact-level `Rectangles` detector of
test_eval_synthetic.py, plus two variants appended to the dataset's detector.py: `Slow`
(sleeps SLOW seconds per image, so a run can be stopped half-way) and `Lefty` (reports
only boxes centred in the left 60% of the image, so a horizontal flip costs it objects).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

# pytest's default (prepend) import mode puts this folder on sys.path.
from test_eval_synthetic import DETECTOR, ROOT, _make_dataset

from brittle.data import open_dataset
from brittle.run.suites import builtin_suite

VARIANTS = textwrap.dedent(
    '''

    import time


    class Slow(Rectangles):
        """Rectangles that takes SLOW seconds per image: slow enough to stop half-way."""

        def predict(self, images):
            time.sleep(float(os.environ.get("SLOW", "0")) * len(images))
            return super().predict(images)


    class Lefty(Rectangles):
        """Rectangles that reports only boxes centred in the left 60% of the image."""

        fingerprint = "lefty-v1"

        def predict(self, images):
            out = []
            for im, dets in zip(images, super().predict(images)):
                cx = (dets.boxes[:, 0] + dets.boxes[:, 2]) / 2
                out.append(dets.select(cx < 0.6 * im.shape[1]))
            return out
    '''
)

N_IMAGES = 24
QUICK_CELLS = 8  # the quick suite: 8 perturbations at severity 3
TOTAL = N_IMAGES * (1 + QUICK_CELLS)  # predictions of one model: clean + every cell
ENV = {**os.environ, "COLUMNS": "160", "SLOW": "0"}
RESUME_HINT = "run the same command (with the same --out) to resume"


def _dataset(root: Path, n: int = N_IMAGES) -> Path:
    data = _make_dataset(root, n)
    (data / "detector.py").write_text(DETECTOR + VARIANTS)
    return data


def _make_left_dataset(root: Path, n: int = N_IMAGES) -> Path:
    """Like _make_dataset, but both rectangles of every image lie in its left third
    (light above, dark below), so a horizontal flip moves every object into the right half."""
    data = _dataset(root, n)
    rng = np.random.default_rng(1)
    h, w = 48, 64
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        lines = []
        for k, (level, label) in enumerate(((255, 0), (128, 1))):
            x1, y1 = int(rng.integers(0, 10)), int(rng.integers(0, 8)) + 24 * k
            x2, y2 = x1 + int(rng.integers(6, 12)), y1 + int(rng.integers(6, 16))
            img[y1:y2, x1:x2] = level
            cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
            lines.append(f"{label} {cx} {cy} {(x2 - x1) / w} {(y2 - y1) / h}")
        cv2.imwrite(str(data / "images" / f"im{i:02d}.png"), img)
        (data / "labels" / f"im{i:02d}.txt").write_text("\n".join(lines) + "\n")
    return data


def _args(
    data: Path, out: Path, *extra: str, models: tuple[str, ...] = ("rect=Rectangles",)
) -> list[str]:
    args = [
        sys.executable, "-m", "brittle", "run", "--data", str(data), "--out", str(out),
        "--batch-size", "4", "--suite", "quick", "--resamples", "200",
    ]  # fmt: skip
    for m in models:
        name, cls = m.split("=")
        args += ["--model", f"{name}={data / 'detector.py'}:{cls}"]
    return [*args, *extra]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**ENV, **env}
    )


def _predictions(run: Path) -> int:
    """Predictions committed to the run's cache so far (read-only: the run may be writing)."""
    db = run / "cache.sqlite"
    if not db.is_file():
        return 0
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return int(con.execute("SELECT count(*) FROM predictions").fetchone()[0])
        finally:
            con.close()
    except sqlite3.DatabaseError:  # not created yet
        return 0


def _stop_half_way(args: list[str], out: Path, sig: signal.Signals, logs: Path) -> tuple[int, str]:
    """Start a slow run in its own process group, send ``sig`` to the group once about
    half of the predictions are committed, and return its exit code and stderr."""
    with open(logs / "stdout", "w") as so, open(logs / "stderr", "w") as se:
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**ENV, "SLOW": "0.02"}, stdout=so, stderr=se, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while _predictions(out) < TOTAL // 2:
                assert proc.poll() is None, f"the run ended before half-way: {proc.returncode}"
                assert time.monotonic() < deadline, "the run never got half-way"
                time.sleep(0.02)
            os.killpg(proc.pid, sig)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return code, (logs / "stderr").read_text()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One `rect` run of the quick suite with two workers: (dataset, run directory)."""
    root = tmp_path_factory.mktemp("quick")
    data = _dataset(root / "ds")
    proc = _run(_args(data, root / "run", "--workers", "2"))
    assert proc.returncode == 0, proc.stderr
    return data, root / "run"


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The `Slow` detector's dataset and the results.json of an uninterrupted run."""
    root = tmp_path_factory.mktemp("slow")
    data = _dataset(root / "ds")
    proc = _run(_args(data, root / "run", "--workers", "2", models=("rect=Slow",)))
    assert proc.returncode == 0, proc.stderr
    return data, (root / "run" / "results.json").read_bytes()


def test_results_do_not_depend_on_the_worker_count(
    quick: tuple[Path, Path], tmp_path: Path
) -> None:
    data, two = quick
    one = tmp_path / "one"
    proc = _run(_args(data, one, "--workers", "1"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((two / "run.json").read_text())["workers"] == 2
    assert json.loads((one / "run.json").read_text())["workers"] == 1
    assert (one / "results.json").read_bytes() == (two / "results.json").read_bytes()
    a, b = pq.read_table(one / "images.parquet"), pq.read_table(two / "images.parquet")
    assert a.num_rows == N_IMAGES * QUICK_CELLS
    assert a.equals(b)


def test_images_parquet_and_the_gallery_follow_the_suite_order(
    quick: tuple[Path, Path],
) -> None:
    """records.py: rows are ordered by model, then the suite's cell order, then the
    dataset's image order; whatever the worker count (the quick run has two)."""
    data, run = quick
    cells = builtin_suite("quick").cells()
    images = [r.id for r in open_dataset(data).records]
    table = pq.read_table(run / "images.parquet").to_pylist()
    rows = [(r["perturbation"], r["severity"], r["image"]) for r in table]
    assert rows == [(p, s, im) for p, s in cells for im in images]
    index = json.loads((run / "gallery" / "index.json").read_text())
    shown = list(dict.fromkeys(e["perturbation"] for e in index))
    assert shown == [p for p, _ in cells if p in shown]


def test_kill_9_half_way_resumes_with_only_the_missing_predictions(
    slow_reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    data, reference = slow_reference
    out = tmp_path / "run"
    args = _args(data, out, "--workers", "2", models=("rect=Slow",))
    code, _ = _stop_half_way(args, out, signal.SIGKILL, tmp_path)
    assert code == -signal.SIGKILL
    assert not (out / "results.json").exists()
    done = _predictions(out)
    assert 0 < done < TOTAL
    proc = _run(args, SLOW="0.02")
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.json").read_bytes() == reference
    run = json.loads((out / "run.json").read_text())
    # Every committed prediction survived the kill; only the rest was computed.
    assert run["inferred_predictions"] == {"rect": TOTAL - done}
    assert run["cached_predictions"] == {"rect": done}


def test_ctrl_c_with_workers_says_how_to_resume_and_resumes(
    slow_reference: tuple[Path, bytes], tmp_path: Path
) -> None:
    data, reference = slow_reference
    out = tmp_path / "run"
    args = _args(data, out, "--workers", "2", models=("rect=Slow",))
    code, stderr = _stop_half_way(args, out, signal.SIGINT, tmp_path)
    assert code == 130, stderr
    assert RESUME_HINT in stderr
    assert "Traceback" not in stderr
    assert not (out / "results.json").exists()
    done = _predictions(out)
    assert 0 < done < TOTAL
    proc = _run(args, SLOW="0.02")
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.json").read_bytes() == reference
    run = json.loads((out / "run.json").read_text())
    assert run["inferred_predictions"] == {"rect": TOTAL - done}


def test_an_invariance_and_a_fragility_with_their_intervals(quick: tuple[Path, Path]) -> None:
    """Rectangles is exactly flip-equivariant and fragile to noise: the intervals must say
    so, not only the point values."""
    _, run = quick
    model = json.loads((run / "results.json").read_text())["models"]["rect"]
    hflip = model["perturbations"]["hflip"]
    assert hflip["rpc"] == pytest.approx(1.0, abs=1e-12)
    assert hflip["consistency"] == 1.0
    # Every image is unchanged, so every resample is too: a degenerate interval.
    assert hflip["consistency_ci"] == [1.0, 1.0]
    assert hflip["degradation"] == pytest.approx(0.0, abs=1e-12)
    noise = model["perturbations"]["gaussian_noise"]
    assert noise["rpc_ci"][1] < 1.0
    assert noise["consistency_ci"][1] < 1.0
    assert noise["rpc_ci"][0] <= noise["rpc"] <= noise["rpc_ci"][1]
    assert noise["degradation"] > 0
    risk = model["risk"]
    assert risk["basis"] == "rpc"
    assert 0 <= risk["value"] <= 100
    assert risk["ci"][0] <= risk["value"] <= risk["ci"][1]


def test_a_flip_augmentation_that_backfired(tmp_path: Path) -> None:
    """Lefty loses every object a flip moves to the right: versus Rectangles (its declared
    reference, equivariant to the flip) the hflip augmentation backfired."""
    data = _make_left_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    proc = _run(
        _args(
            data, out, "--workers", "1",
            "--trained-with", "lefty=hflip,mosaic", "--reference", "lefty=rect",
            models=("rect=Rectangles", "lefty=Lefty"),
        )
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert sorted(res["ranking"]) == ["lefty", "rect"]
    assert res["models"]["lefty"]["perturbations"]["hflip"]["rpc"] == pytest.approx(0.0)
    assert res["models"]["rect"]["perturbations"]["hflip"]["rpc"] == pytest.approx(1.0)
    [comparison] = res["comparisons"]
    assert [comparison["a"], comparison["b"]] == res["ranking"]
    flip = comparison["perturbations"]["hflip"]
    assert flip["metric"] == "rpc"
    assert flip["better"] == "rect"
    assert not flip["ci"][0] <= 0 <= flip["ci"][1]
    verdicts = {v["augmentation"]: v for v in res["verdicts"]}
    assert set(verdicts) == {"hflip", "mosaic"}
    backfired = verdicts["hflip"]
    assert (backfired["model"], backfired["reference"]) == ("lefty", "rect")
    assert backfired["outcome"] == "backfired"
    assert backfired["perturbations"] == ["hflip"]
    assert backfired["difference"]["better"] == "rect"
    assert backfired["difference"]["difference"] < 0  # lefty minus rect
    assert set(backfired["details"]) == {"hflip"}
    # mosaic protects against no single perturbation: nothing in the suite can judge it.
    assert verdicts["mosaic"]["outcome"] == "not tested"
    assert verdicts["mosaic"]["perturbations"] == []
    assert verdicts["mosaic"]["difference"] is None
    assert "backfired" in proc.stdout
    assert "not tested" in proc.stdout
    assert "rect is significantly more robust than lefty to: geometric" in proc.stdout


def test_images_parquet_is_the_evidence_behind_the_aggregates(quick: tuple[Path, Path]) -> None:
    data, run = quick
    rows = pq.read_table(run / "images.parquet").to_pylist()
    res = json.loads((run / "results.json").read_text())
    perts = res["models"]["rect"]["perturbations"]
    keys = {(r["model"], r["perturbation"], r["severity"], r["image"]) for r in rows}
    assert len(keys) == len(rows) == N_IMAGES * QUICK_CELLS
    images = {p.name for p in (data / "images").iterdir()}
    assert keys == {("rect", p, 3, im) for p in perts for im in images}
    flips = [r for r in rows if r["perturbation"] == "hflip"]
    assert all(r["consistency"] == 1.0 and not r["affected"] for r in flips)
    for p, result in perts.items():
        mine = [r for r in rows if r["perturbation"] == p]
        assert {r["family"] for r in mine} == {result["family"]}
        mean = sum(r["consistency"] for r in mine) / len(mine)
        assert mean == pytest.approx(result["consistency"], abs=1e-12), p
        affected = sum(r["affected"] for r in mine) / len(mine)
        assert affected == pytest.approx(result["affected_fraction"], abs=1e-12), p


def test_the_gallery_shows_what_changed_and_only_that(
    quick: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = quick
    gallery = run / "gallery"
    index = json.loads((gallery / "index.json").read_text())
    noise = [e for e in index if (e["model"], e["perturbation"]) == ("rect", "gaussian_noise")]
    assert [e["rank"] for e in noise] == [1, 2]  # the default --gallery 2
    assert all(e["consistency"] < 1.0 for e in noise)
    assert not [e for e in index if e["perturbation"] == "hflip"]  # nothing changed
    for e in index:
        path = gallery / e["file"]
        assert path.read_bytes()[:3] == b"\xff\xd8\xff", e["file"]
        img = cv2.imread(str(path))
        assert img is not None, e["file"]
        assert img.shape[0] > 0, e["file"]
        assert img.shape[1] > 0, e["file"]
    on_disk = {p.relative_to(gallery).as_posix() for p in gallery.rglob("*.jpg")}
    assert on_disk == {e["file"] for e in index}
    none = tmp_path / "none"
    proc = _run(_args(data, none, "--workers", "1", "--gallery", "0"))
    assert proc.returncode == 0, proc.stderr
    assert (none / "results.json").is_file()
    assert not (none / "gallery" / "index.json").exists()


def _with_broken_image(root: Path, damage: str) -> Path:
    """An 8-image dataset plus broken.png (labeled): ``bytes`` is random bytes (found when
    the dataset is indexed), ``pixels`` a well-formed PNG whose compressed pixel data is
    scrambled (found only when a worker decodes it)."""
    data = _dataset(root, 8)
    if damage == "bytes":
        blob = np.random.default_rng(0).bytes(500)
    else:
        png = bytearray((data / "images" / "im00.png").read_bytes())
        at = png.find(b"IDAT")
        size = int.from_bytes(png[at - 4 : at], "big")
        for k in range(at + 6, at + 4 + size):  # keep the zlib header, scramble the rest
            png[k] ^= 0x5A
        blob = bytes(png)
    (data / "images" / "broken.png").write_bytes(blob)
    (data / "labels" / "broken.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return data


@pytest.mark.parametrize("damage", ["bytes", "pixels"])
def test_an_unreadable_image_is_skipped_unless_strict(tmp_path: Path, damage: str) -> None:
    data = _with_broken_image(tmp_path / "ds", damage)
    proc = _run(_args(data, tmp_path / "run", "--workers", "2"))
    assert proc.returncode == 0, proc.stderr
    dataset = json.loads((tmp_path / "run" / "results.json").read_text())["dataset"]
    assert dataset["image_count"] == 8
    assert dataset["issues"] == {"unreadable_image": 1}
    assert dataset["skipped_images"] == ["broken.png"]
    strict = _run(_args(data, tmp_path / "strict", "--workers", "2", "--strict"))
    assert strict.returncode == 2, strict.stderr
    assert "broken.png" in strict.stderr
    assert "--strict" in strict.stderr
    assert not (tmp_path / "strict" / "results.json").exists()


def test_an_image_unreadable_at_indexing_is_listed_as_skipped(tmp_path: Path) -> None:
    data = _with_broken_image(tmp_path / "ds", "bytes")
    proc = _run(_args(data, tmp_path / "run", "--workers", "1"))
    assert proc.returncode == 0, proc.stderr
    dataset = json.loads((tmp_path / "run" / "results.json").read_text())["dataset"]
    assert dataset["skipped_images"] == ["broken.png"]


def test_cells_showing_the_same_image_share_one_prediction(tmp_path: Path) -> None:
    """hflip looks the same at every severity and draws nothing at random: its three
    cells cost one prediction per image, and a run with another seed reuses it (and the
    clean one) while gaussian_noise, which is random, is predicted again."""
    data = _make_left_dataset(tmp_path / "ds")
    suite = tmp_path / "suite.yaml"

    def run(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
        suite.write_text(
            textwrap.dedent(
                f"""\
                version: 1
                dataset: {{path: {data}}}
                models:
                  - {{name: lefty, spec: "{data / "detector.py"}:Lefty"}}
                perturbations:
                  add:
                    - {{name: hflip, severities: [1, 3, 5]}}
                    - {{name: gaussian_noise, severities: [2]}}
                scoring: {{resamples: 200, seed: {seed}}}
                output: {tmp_path / "run"}
                """
            )
        )
        proc = _run([sys.executable, "-m", "brittle", "run", "--suite", str(suite),
                     "--workers", "1"])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "run"
        return (json.loads((out / "run.json").read_text()),
                json.loads((out / "results.json").read_text()))  # fmt: skip

    info, res = run(0)
    # clean + hflip once + gaussian_noise: 3 predictions per image, not 5.
    assert info["inferred_predictions"] == {"lefty": 3 * N_IMAGES}
    assert info["shared_predictions"] == {"lefty": 2 * N_IMAGES}
    assert info["cached_predictions"] == {"lefty": 0}
    flip = res["models"]["lefty"]["perturbations"]["hflip"]
    # Lefty loses every object a flip moves right, at every severity alike.
    assert flip["rpc"] == pytest.approx(0.0)
    per_severity = [s["map50_95"] for s in flip["severities"].values()]
    assert len(per_severity) == 3
    assert len(set(per_severity)) == 1

    info, res = run(1)
    assert info["inferred_predictions"] == {"lefty": N_IMAGES}  # gaussian_noise only
    assert info["cached_predictions"] == {"lefty": 2 * N_IMAGES}
    assert res["models"]["lefty"]["perturbations"]["hflip"] == flip
