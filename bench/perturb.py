"""How fast are brittle's perturbations, alone and against imagecorruptions?

On 640x640 css-valid images (shared assets), at severity 3:

1. the 15 ImageNet-C common corruptions in brittle and in imagecorruptions 1.1.2, in the
   same run: per-corruption median time, the ratio, and the ratio of the totals
   (goal: brittle's 15 together >= 50x faster);
2. every registered brittle perturbation: median over ``--repeats`` runs on each of
   ``--images`` images, flagging any over 25 ms (the hard limit; the target is 10 ms).

imagecorruptions is a bench-only dependency (never imported by brittle). It was written
for older numpy / scikit-image, so :func:`_load_peer` patches the few names that have
since gone (in memory only). Install it without its ``opencv-python`` dependency, which
would overwrite the ``cv2`` of ``opencv-python-headless``::

    .venv/bin/pip install --no-deps imagecorruptions==1.1.2
    .venv/bin/pip install scikit-image scipy

If it is missing, the bench still times brittle and says why the peer is absent.

Usage::

    .venv/bin/python bench/perturb.py [--images 3] [--repeats 20] [--peer-repeats 2]
        [--threads N] [--assets ../shared/assets] [--no-peer]

Exits 1 when a goal is missed (a perturbation over 25 ms, or the total ratio under 50x).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.perturbations import catalogue, get_perturbation, perturb

ROOT = Path(__file__).resolve().parents[1]
SEVERITY = 3
LIMIT_MS = 25.0
TARGET_MS = 10.0
RATIO_GOAL = 50.0
COMMON = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip

Image = NDArray[np.uint8]
Corrupt = Callable[[Image, str], Any]


def _load_images(assets: Path, n: int) -> list[Image]:
    paths = sorted((assets / "css-valid" / "images").glob("*.jpg"))
    # Spread the picks over the folder (different sites and lighting).
    picks = paths[:: max(1, len(paths) // max(n, 1))][:n]
    images = []
    for p in picks:
        bgr = cv2.imread(str(p))
        if bgr is None:
            continue
        if bgr.shape[:2] != (640, 640):
            bgr = cv2.resize(bgr, (640, 640), interpolation=cv2.INTER_AREA)
        images.append(np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8))
    return images


def _load_peer() -> tuple[Corrupt | None, str]:
    """imagecorruptions' ``corrupt``, shimmed for current libraries, or (None, why not)."""
    if "pkg_resources" not in sys.modules:
        try:
            importlib.import_module("pkg_resources")
        except ImportError:
            # setuptools >= 81 dropped pkg_resources; imagecorruptions only needs
            # resource_filename for its frost pictures.
            shim = types.ModuleType("pkg_resources")

            def resource_filename(package: str, name: str) -> str:
                mod = importlib.import_module(package)
                return str(Path(str(mod.__file__)).parent / name)

            shim.resource_filename = resource_filename  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
    if not hasattr(np, "float_"):
        # Removed in numpy 2.0; imagecorruptions' fog uses it.
        np.float_ = np.float64  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ic = importlib.import_module("imagecorruptions")
            corruptions = importlib.import_module("imagecorruptions.corruptions")
            filters = importlib.import_module("skimage.filters")
    except ImportError as exc:
        return None, (
            f"imagecorruptions not importable ({exc}); install it with "
            "`.venv/bin/pip install --no-deps imagecorruptions==1.1.2 && "
            ".venv/bin/pip install scikit-image scipy`"
        )
    version = getattr(ic, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("imagecorruptions")
        except Exception:  # pragma: no cover - metadata missing
            version = "unknown"
    sk_gaussian = filters.gaussian

    def gaussian(image: Any, *args: Any, **kwargs: Any) -> Any:
        # scikit-image 0.19 replaced multichannel=True with channel_axis=-1 (gone in 0.21).
        if kwargs.pop("multichannel", False):
            kwargs["channel_axis"] = -1
        return sk_gaussian(image, *args, **kwargs)

    corruptions.__dict__["gaussian"] = gaussian

    def corrupt(image: Image, name: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ic.corrupt(image, corruption_name=name, severity=SEVERITY)

    return corrupt, f"imagecorruptions {version}"


def _time_brittle(name: str, images: list[Image], repeats: int) -> float:
    samples = []
    for i, img in enumerate(images):
        sid = f"bench{i}"
        perturb(img, name, SEVERITY, seed=0, sample_id=sid)  # warm-up: caches, allocations
        for r in range(repeats):
            t0 = time.perf_counter()
            perturb(img, name, SEVERITY, seed=r, sample_id=sid)
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def _time_peer(corrupt: Corrupt, name: str, images: list[Image], repeats: int) -> float:
    samples = []
    for img in images:
        out = np.asarray(corrupt(img, name))
        if out.shape != img.shape:
            raise RuntimeError(f"imagecorruptions {name}: shape {out.shape} != {img.shape}")
        for _ in range(repeats):
            t0 = time.perf_counter()
            corrupt(img, name)
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def bench_common(images: list[Image], repeats: int, peer_repeats: int, use_peer: bool) -> bool:
    """brittle vs imagecorruptions on the 15 common corruptions; True when the goal is met."""
    corrupt, peer = _load_peer() if use_peer else (None, "peer skipped (--no-peer)")
    missing = [n for n in COMMON if not _registered(n)]
    print(f"ImageNet-C common corruptions, severity {SEVERITY}, {len(images)} images 640x640")
    print(f"peer: {peer}")
    if missing:
        print(f"not registered in brittle (skipped): {', '.join(missing)}")
    print(f"  {'corruption':<20}{'brittle ms':>12}{'peer ms':>12}{'ratio':>9}")
    tot_b = tot_p = 0.0
    failed = []
    for name in COMMON:
        if name in missing:
            continue
        b = _time_brittle(name, images, repeats)
        p_txt, r_txt = "-", "-"
        if corrupt is not None:
            try:
                p = _time_peer(corrupt, name, images, peer_repeats)
            except Exception as exc:  # the peer's own bugs must not stop the bench
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                tot_b += b
                tot_p += p
                p_txt, r_txt = f"{p:.2f}", f"{p / b:.0f}x"
        print(f"  {name:<20}{b:>12.2f}{p_txt:>12}{r_txt:>9}", flush=True)
    for f in failed:
        print(f"  peer failed on {f}")
    if corrupt is None or tot_b == 0:
        print("  no ratio: the peer is missing")
        return not missing
    ratio = tot_p / tot_b
    ok = ratio >= RATIO_GOAL and not missing and not failed
    verdict = "OK" if ok else "MISSED"
    print(
        f"  {'total':<20}{tot_b:>12.2f}{tot_p:>12.2f}{ratio:>8.0f}x"
        f"  (goal >= {RATIO_GOAL:.0f}x): {verdict}"
    )
    return ok


def _registered(name: str) -> bool:
    try:
        get_perturbation(name)
    except Exception:
        return False
    return True


def bench_all(images: list[Image], repeats: int) -> bool:
    """Every registered perturbation at severity 3; True when none is over the limit."""
    print(
        f"All perturbations, severity {SEVERITY}: median of {repeats} runs x {len(images)} "
        f"images (target {TARGET_MS:.0f} ms, limit {LIMIT_MS:.0f} ms)"
    )
    over = []
    n = 0
    for family, classes in catalogue().items():
        for cls in classes:
            ms = _time_brittle(cls.name, images, repeats)
            n += 1
            flag = "OVER LIMIT" if ms > LIMIT_MS else ("over target" if ms > TARGET_MS else "")
            if ms > LIMIT_MS:
                over.append(cls.name)
            print(f"  {family:<10} {cls.name:<22}{ms:>9.2f} ms  {flag}", flush=True)
    verdict = "OK" if not over else f"OVER {LIMIT_MS:.0f} ms: {', '.join(over)}"
    print(f"  {n} perturbations: {verdict}")
    return not over


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_assets = os.environ.get("BRITTLE_ASSETS", str(ROOT.parent / "shared" / "assets"))
    ap.add_argument("--assets", type=Path, default=Path(default_assets))
    ap.add_argument("--images", type=int, default=3, help="how many css-valid images")
    ap.add_argument("--repeats", type=int, default=20, help="brittle runs per image")
    ap.add_argument("--peer-repeats", type=int, default=2, help="imagecorruptions runs per image")
    ap.add_argument("--threads", type=int, default=-1, help="cv2 threads (-1: OpenCV default)")
    ap.add_argument("--no-peer", action="store_true", help="skip imagecorruptions")
    args = ap.parse_args()
    if args.threads >= 0:
        cv2.setNumThreads(args.threads)
    images = _load_images(args.assets, args.images)
    if not images:
        print(f"no images under {args.assets / 'css-valid' / 'images'} (set BRITTLE_ASSETS)")
        return 2
    print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} threads; numpy {np.__version__}")
    ok = bench_common(images, args.repeats, args.peer_repeats, not args.no_peer)
    print()
    ok = bench_all(images, args.repeats) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
