"""How fast is brittle's COCO evaluation, against pycocotools and faster-coco-eval?

Two synthetic workloads, generated in memory (no assets needed):

* ``5k``: 5,000 images, 10 classes, about 8 ground-truth boxes and 30 detections per
  image (about 40k objects, 150k detections);
* ``coco``: COCO-scale, 5,000 images, 80 classes with COCO-like skewed frequencies,
  about 7.3 objects and 100 detections per image (about 500k detections).

Boxes span all three COCO size ranges; 1% of objects are crowd regions; detections are
jittered copies of most objects (some duplicated), relabelled now and then, plus false
positives, with float32 scores.

For each workload, in the same run: brittle's ``evaluate`` (from GroundTruth /
Detections) and ``evaluate_coco`` (from the same COCO dicts the peers read),
pycocotools and faster-coco-eval (``COCO`` + ``loadRes`` + ``evaluate`` +
``accumulate`` + ``summarize``, from in-memory dicts). Times are the best of
``--repeats`` runs (peers: ``--peer-repeats``). All must give the same 12 stats.
Goals: brittle >= 25x faster than pycocotools and >= 4x faster than faster-coco-eval.

Then on the ``5k`` workload: 1,000 bootstrap resamples of mAP@[.5:.95]
(``bootstrap_map``, matching included) against one pycocotools evaluation (goal: less
than 2x), the per-resample cost of the general ``evaluate_records`` path for
comparison, and how far the weighted resample is from the listed one (score ties).

faster-coco-eval is a bench-only dependency: ``.venv/bin/pip install faster-coco-eval``.
Without it (or pycocotools) the bench says why and carries on.

Usage::

    .venv/bin/python bench/map.py [--repeats 3] [--peer-repeats 1] [--workloads 5k coco]
        [--resamples 1000] [--no-bootstrap]

Exits 1 when a goal is missed or the tools disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from brittle.coco_format import dets_to_coco, gt_to_coco
from brittle.metrics.bootstrap import bootstrap_map
from brittle.metrics.coco import WeightedAP, evaluate, evaluate_coco, evaluate_records
from brittle.metrics.matching import match_images
from brittle.types import Detections, GroundTruth

PYCOCO_GOAL = 25.0
FASTER_GOAL = 4.0
BOOTSTRAP_GOAL = 2.0

WORKLOADS: dict[str, dict[str, Any]] = {
    "5k": {"n_images": 5000, "num_classes": 10, "gt": 8.0, "dets": 30, "skew": 0.0},
    "coco": {"n_images": 5000, "num_classes": 80, "gt": 7.3, "dets": 100, "skew": 1.0},
}


def workload(
    n_images: int, num_classes: int, gt: float, dets: int, skew: float, seed: int = 0
) -> tuple[list[GroundTruth], list[Detections]]:
    """Objects with class frequencies ~ 1 / (k + 1) ** skew; per image, ``dets``
    detections on average (Poisson), at most ``dets`` * 1.5."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, num_classes + 1) ** skew
    freq /= freq.sum()
    gts, out = [], []
    for _ in range(n_images):
        ng = int(rng.poisson(gt))
        size = np.exp(rng.uniform(np.log(6), np.log(400), (ng, 2)))
        xy = rng.uniform(0, 640, (ng, 2))
        boxes = np.concatenate([xy, xy + size], 1)
        labels = rng.choice(num_classes, ng, p=freq)
        gts.append(GroundTruth(boxes, labels, rng.random(ng) < 0.01))
        nd = min(int(rng.poisson(dets)), int(dets * 1.5))
        # Hits: objects found (85%), a quarter of them twice (NMS leftovers).
        found = np.flatnonzero(rng.random(ng) < 0.85)
        found = np.concatenate([found, found[rng.random(len(found)) < 0.25]])[:nd]
        jitter = rng.normal(0, 0.07, (len(found), 4)) * size[found][:, [0, 1, 0, 1]]
        hb = boxes[found] + jitter
        hl = np.where(
            rng.random(len(found)) < 0.92,
            labels[found],
            rng.choice(num_classes, len(found), p=freq),
        )
        hs = rng.beta(5, 2, len(found))
        nf = nd - len(found)
        fsize = np.exp(rng.uniform(np.log(6), np.log(400), (nf, 2)))
        fxy = rng.uniform(0, 640, (nf, 2))
        fb = np.concatenate([fxy, fxy + fsize], 1)
        fl = rng.choice(num_classes, nf, p=freq)
        fs = rng.beta(1, 6, nf)
        perm = rng.permutation(nd)
        b = np.concatenate([hb, fb])[perm]
        out.append(Detections(b, np.concatenate([hs, fs])[perm], np.concatenate([hl, fl])[perm]))
    return gts, out


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[Any, float]:
    """The result of ``fn`` and its best wall time over ``repeats`` runs."""
    best, out = float("inf"), None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def best_peer(
    repeats: int,
    fn: Callable[[dict[str, Any], list[dict[str, Any]]], NDArray[np.float64]],
    gt: dict[str, Any],
    results: list[dict[str, Any]],
) -> tuple[NDArray[np.float64], float]:
    """Like best_of, each run on fresh copies: the peers' loadRes writes into its input."""
    best, out = float("inf"), np.zeros(0)
    for _ in range(max(repeats, 1)):
        g, r = copy.deepcopy(gt), copy.deepcopy(results)
        t0 = time.perf_counter()
        out = fn(g, r)
        best = min(best, time.perf_counter() - t0)
    return out, best


def run_pycocotools(gt: dict[str, Any], results: list[dict[str, Any]]) -> NDArray[np.float64]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, np.float64)


def run_faster(gt: dict[str, Any], results: list[dict[str, Any]]) -> NDArray[np.float64]:
    # Imported by name: the package has no type information for mypy.
    fce = importlib.import_module("faster_coco_eval")
    COCO, COCOeval_faster = fce.COCO, fce.COCOeval_faster

    def quiet(*_: Any) -> None:
        return None

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt, print_function=quiet)
        ev = COCOeval_faster(
            coco_gt, coco_gt.loadRes(results), iouType="bbox", print_function=quiet
        )
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12], np.float64)


def peer(name: str) -> str | None:
    """Why the peer cannot run here, or None."""
    module = {"pycocotools": "pycocotools.cocoeval", "faster-coco-eval": "faster_coco_eval"}[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{name} is not installed ({exc}); pip install {name}"
    return None


def agree(ours: NDArray[np.float64], theirs: NDArray[np.float64]) -> str:
    diff = float(np.abs(ours - theirs).max())
    return "equal" if diff == 0 else f"max |diff| {diff:.1e}"


def bench_workload(name: str, args: argparse.Namespace) -> tuple[bool, float | None]:
    spec = WORKLOADS[name]
    gts, dets = workload(**spec)
    names = [f"c{k}" for k in range(spec["num_classes"])]
    gt_dict, results = gt_to_coco(gts, names), dets_to_coco(dets)
    n_gt, n_dt = len(gt_dict["annotations"]), len(results)
    print(f"\n== {name}: {len(gts)} images, {spec['num_classes']} classes, "
          f"{n_gt} objects, {n_dt} detections")  # fmt: skip
    ev, t_eval = best_of(args.repeats, lambda: evaluate(gts, dets, spec["num_classes"]))
    ev_coco, t_coco = best_of(args.repeats, lambda: evaluate_coco(gt_dict, results))
    rows = [
        ("brittle evaluate (GroundTruth/Detections)", t_eval, "reference"),
        ("brittle evaluate_coco (COCO dicts)", t_coco, agree(ev_coco.stats, ev.stats)),
    ]
    ok = np.array_equal(ev_coco.stats, ev.stats)
    times: dict[str, float] = {}
    for tool, fn in (("pycocotools", run_pycocotools), ("faster-coco-eval", run_faster)):
        why = peer(tool)
        if why:
            print(f"  {tool}: skipped: {why}")
            continue
        stats, t = best_peer(args.peer_repeats, fn, gt_dict, results)
        times[tool] = t
        verdict = agree(stats, ev.stats)
        ok &= verdict == "equal"
        rows.append((tool, t, verdict))
    print(f"  {'tool':<44}{'seconds':>9}  stats vs brittle")
    for label, t, verdict in rows:
        print(f"  {label:<44}{t:>9.3f}  {verdict}")
    print(f"  mAP@[.5:.95] {ev.stat('map50_95'):.4f}, AP50 {ev.stat('map50'):.4f}")
    for tool, goal in (("pycocotools", PYCOCO_GOAL), ("faster-coco-eval", FASTER_GOAL)):
        if tool in times:
            r, r_coco = times[tool] / t_eval, times[tool] / t_coco
            met = r >= goal and r_coco >= goal
            ok &= met
            print(f"  speed-up vs {tool}: {r:.1f}x (evaluate), {r_coco:.1f}x (evaluate_coco); "
                  f"goal >= {goal:g}x: {'met' if met else 'MISSED'}")  # fmt: skip
    return bool(ok), times.get("pycocotools")


def bench_bootstrap(args: argparse.Namespace, t_pycoco: float | None) -> bool:
    spec = WORKLOADS["5k"]
    gts, dets = workload(**spec)
    n = len(gts)
    print(f"\n== bootstrap: {args.resamples} resamples of mAP@[.5:.95], 5k workload")
    records, t_match = best_of(1, lambda: match_images(gts, dets, spec["num_classes"]))
    ci, t_boot = best_of(1, lambda: bootstrap_map(records, n=args.resamples))
    total = t_match + t_boot
    print(f"  match_images (once)                 {t_match:8.3f} s")
    print(f"  bootstrap_map, {args.resamples} resamples       {t_boot:8.3f} s "
          f"({t_boot / args.resamples * 1e3:.2f} ms per resample)")  # fmt: skip
    print(f"  interval: {ci}")
    rng = np.random.default_rng(5)
    draws = [rng.integers(0, n, n) for _ in range(5)]
    _, t_general = best_of(1, lambda: [evaluate_records(records, d) for d in draws])
    print(f"  general path, evaluate_records(records, indices): {t_general / 5 * 1e3:.0f} ms "
          f"per resample, {t_general / 5 * args.resamples:.1f} s for {args.resamples}")  # fmt: skip
    # Weighted vs listed: equal for copies side by side unless an image has tied scores
    # within a class; the draw order (copies apart) moves ties across images too.
    wap = WeightedAP.from_records(records)
    w = np.stack([np.bincount(d, minlength=n) for d in draws])
    got = wap.ap(w)
    side = [evaluate_records(records, np.sort(d)).stat("map50_95") for d in draws]
    drawn = [evaluate_records(records, d).stat("map50_95") for d in draws]
    print(f"  weighted vs listed mAP, 5 resamples: max |diff| {np.abs(got - side).max():.1e} "
          f"(copies side by side), {np.abs(got - drawn).max():.1e} (in draw order)")  # fmt: skip
    if t_pycoco is None:
        print("  no pycocotools time to compare with")
        return True
    ratio = total / t_pycoco
    met = ratio < BOOTSTRAP_GOAL
    verdict = "met" if met else "MISSED"
    print(f"  matching + {args.resamples} resamples = {ratio:.2f}x one pycocotools evaluation "
          f"({t_pycoco:.2f} s); goal < {BOOTSTRAP_GOAL:g}x: {verdict}")  # fmt: skip
    return met


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="brittle runs per timing (best)")
    ap.add_argument("--peer-repeats", type=int, default=1, help="peer runs per timing (best)")
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["5k", "coco"])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--no-bootstrap", action="store_true")
    args = ap.parse_args()
    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)
    ok, t_pycoco_5k = True, None
    for name in args.workloads:
        good, t_pycoco = bench_workload(name, args)
        ok &= good
        if name == "5k":
            t_pycoco_5k = t_pycoco
    if not args.no_bootstrap:
        if t_pycoco_5k is None and "5k" not in args.workloads and peer("pycocotools") is None:
            gts, dets = workload(**WORKLOADS["5k"])
            names = [f"c{k}" for k in range(10)]
            _, t_pycoco_5k = best_of(
                1, lambda: run_pycocotools(gt_to_coco(gts, names), dets_to_coco(dets))
            )
        ok &= bench_bootstrap(args, t_pycoco_5k)
    print("\nall goals met" if ok else "\nSOME GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
