"""Calibration table: mean SSIM and PSNR against the clean image, for every perturbation
and severity, over the css-valid images.

Writes docs/perturbations/calibration.md (the table in the docs is this script's output)
and exits 1 if any graded perturbation's mean SSIM is not strictly decreasing in severity.

    .venv/bin/python bench/calibrate.py [--images N] [--workers 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from brittle.data.images import decode_image
from brittle.perturbations import catalogue, perturb
from brittle.perturbations.base import SEVERITIES
from brittle.perturbations.quality import psnr, ssim

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("BRITTLE_ASSETS", ROOT.parent / "shared" / "assets"))


def _one(args: tuple[str, str]) -> tuple[str, list[tuple[float, float]]]:
    name, path = args
    img = decode_image(Path(path))
    sid = Path(path).name
    rows = []
    for s in SEVERITIES:
        out = perturb(img, name, s, seed=0, sample_id=sid)
        rows.append((ssim(img, out), min(psnr(img, out), 99.0)))
    return name, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=0, help="use the first N images (0 = all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "perturbations" / "calibration.md")
    args = ap.parse_args()
    files = sorted((ASSETS / "css-valid" / "images").glob("*.jpg"))
    if not files:
        print(f"no images under {ASSETS / 'css-valid' / 'images'} (set BRITTLE_ASSETS)")
        return 2
    if args.images:
        files = files[: args.images]
    groups = catalogue()
    names = [c.name for v in groups.values() for c in v]
    jobs = [(n, str(f)) for n in names for f in files]
    t0 = time.perf_counter()
    acc: dict[str, list[list[tuple[float, float]]]] = {n: [] for n in names}
    with ProcessPoolExecutor(args.workers) as pool:
        for i, (name, rows) in enumerate(pool.map(_one, jobs, chunksize=8), 1):
            acc[name].append(rows)
            if i % 500 == 0:
                print(f"  {i}/{len(jobs)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    bad = []
    lines = [
        "# Calibration",
        "",
        f"Mean SSIM (and PSNR in dB) of the perturbed image against the clean one, over the "
        f"{len(files)} images of css-valid (640x640), seed 0. Produced by `bench/calibrate.py`;",
        "do not edit by hand. SSIM: Wang et al. 2004 on luma (`brittle/perturbations/quality.py`).",
        "Graded perturbations must have strictly decreasing SSIM with severity; hflip, vflip",
        "and rotate90 are all-or-nothing (the same at every severity).",
        "",
        "| family | perturbation | " + " | ".join(f"s{s} SSIM (PSNR)" for s in SEVERITIES) + " |",
        "|---|---|" + "---|" * len(SEVERITIES),
    ]
    for family, classes in groups.items():
        for cls in classes:
            arr = np.array(acc[cls.name])  # images x severities x 2
            m = arr.mean(axis=0)
            cells = [f"{m[k, 0]:.3f} ({m[k, 1]:.1f})" for k in range(len(SEVERITIES))]
            if cls.graded and not all(m[k, 0] > m[k + 1, 0] for k in range(len(m) - 1)):
                bad.append(cls.name)
                cells[-1] += " ⚠"
            lines.append(f"| {family} | {cls.name} | " + " | ".join(cells) + " |")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({len(jobs)} image x perturbation pairs, "
          f"{time.perf_counter() - t0:.0f} s)")  # fmt: skip
    if bad:
        print(f"NOT MONOTONIC: {', '.join(bad)}")
        return 1
    print("every graded perturbation: SSIM strictly decreasing in severity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
