"""Failure mining: per model and perturbation, the images whose predictions changed most.

For each (model, perturbation) the images are ranked by their largest behaviour change
over the perturbation's severities: ``1 - consistency`` first, then the drop in F1
against the ground truth, then the number of lost + gained + changed detections, then
dataset order (an image is shown at the mildest severity where its change is largest).
The top ``k`` (only images that changed at all) are drawn as
before/after pairs (:func:`brittle.gallery.draw_pair`: ground truth, clean predictions,
perturbed predictions) into ``gallery/`` and listed in ``gallery/index.json`` for the
report. A pair whose inputs have not changed since the last run is not drawn again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from brittle.gallery import GT_COLOR, draw_pair, encode_jpeg
from brittle.perturbations import rng_for
from brittle.perturbations.base import Perturbation
from brittle.results import dump_json
from brittle.run.cache import CacheKey, PredictionCache, RunImage
from brittle.run.scoring import CellScore
from brittle.types import GroundTruth

if TYPE_CHECKING:
    from brittle.data.base import Dataset
    from brittle.evaluate import LoadedModel, RunOptions
    from brittle.run.suites import Suite

__all__ = [
    "GALLERY_DIR",
    "GALLERY_INDEX",
    "PREVIEW_DIR",
    "select",
    "write_gallery",
    "write_preview",
]

GALLERY_DIR = "gallery"
GALLERY_INDEX = "index.json"
_PAIR_SIDE = 400


def select(by_severity: Mapping[int, CellScore], k: int) -> list[tuple[int, int]]:
    """The top ``k`` (image index, severity) pairs of one model under one perturbation.

    >>> import numpy as np
    >>> from brittle.run.scoring import CellScore
    >>> def cell(n_matched, n_clean):
    ...     e, i = np.zeros(0), np.array(n_clean) * 0
    ...     return CellScore(3, e, e.astype(int), e, e, e, e, np.array(n_clean),
    ...                      np.array(n_clean), np.array(n_matched), i, i, i,
    ...                      np.full(3, np.nan), np.full(3, np.nan))
    >>> select({1: cell([2, 1, 2], [2, 2, 2]), 5: cell([2, 0, 1], [2, 2, 2])}, k=5)
    [(1, 5), (2, 5)]
    """
    # Among equal changes the mildest severity wins: "already at severity 1" says more.
    best: dict[int, tuple[float, float, int, int]] = {}
    for sev in sorted(by_severity, reverse=True):
        c = by_severity[sev]
        score = 1.0 - c.consistency
        drop = c.f1_clean - c.f1_perturbed
        events = c.lost + c.gained + c.changed
        for i in range(c.n_images):
            d = float(drop[i]) if np.isfinite(drop[i]) else -np.inf
            cand = (float(score[i]), d, int(events[i]), -sev)
            if i not in best or cand >= best[i]:
                best[i] = cand
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], -kv[1][2], kv[0]))
    return [(i, -v[3]) for i, v in ranked if v[0] > 0][:k]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "model"


def write_gallery(
    out_dir: Path,
    dataset: Dataset,
    models: Sequence[LoadedModel],
    images: Sequence[RunImage],
    cells: Mapping[tuple[str, str, int], CellScore],
    opts: RunOptions,
) -> None:
    """Draw the top ``opts.gallery`` pairs per (model, perturbation); write the index."""
    suite = opts.suite
    assert suite is not None
    gallery = out_dir / GALLERY_DIR
    gallery.mkdir(exist_ok=True)
    index_path = gallery / GALLERY_INDEX
    previous: dict[str, str] = {}
    if index_path.is_file():
        try:
            previous = {e["file"]: e["key"] for e in json.loads(index_path.read_text())}
        except (ValueError, KeyError, TypeError):
            previous = {}
    records = {r.id: r for r in dataset.records}
    entries: list[dict[str, Any]] = []
    with PredictionCache(out_dir / "cache.sqlite", readonly=True) as cache:
        for mi, m in enumerate(models):
            by_pert: dict[str, dict[int, CellScore]] = {}
            for (name, pname, sev), cell in cells.items():
                if name == m.name:
                    by_pert.setdefault(pname, {})[sev] = cell
            for pert_name, by_sev in by_pert.items():
                for rank, (i, sev) in enumerate(select(by_sev, opts.gallery), start=1):
                    im = images[i]
                    cell = by_sev[sev]
                    pert = suite.perturbation(pert_name)
                    file = f"{mi:02d}_{_safe(m.name)}/{pert_name}-{rank}.jpg"
                    key = hashlib.blake2b(
                        json.dumps(
                            [m.predictor.fingerprint, m.label_map.index.tolist(), pert_name,
                             pert.tag, sev, opts.seed, im.id, im.hash, opts.scoring.conf],
                        ).encode(),
                        digest_size=16,
                    ).hexdigest()  # fmt: skip
                    path = gallery / file
                    if previous.get(file) != key or not path.is_file():
                        jpeg = _render(dataset, records[im.id], im, m, cache, pert_name, sev, opts)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(jpeg)
                    entries.append(
                        {
                            "model": m.name,
                            "perturbation": pert_name,
                            "family": pert.family,
                            "severity": sev,
                            "rank": rank,
                            "image": im.id,
                            "file": file,
                            "key": key,
                            "consistency": float(cell.consistency[i]),
                            "n_clean": int(cell.n_clean[i]),
                            "n_perturbed": int(cell.n_perturbed[i]),
                            "lost": int(cell.lost[i]),
                            "gained": int(cell.gained[i]),
                            "changed": int(cell.changed[i]),
                            "f1_clean": _num(cell.f1_clean[i]),
                            "f1_perturbed": _num(cell.f1_perturbed[i]),
                        }
                    )
    keep = {e["file"] for e in entries}
    for old in gallery.glob("*/*.jpg"):
        if old.relative_to(gallery).as_posix() not in keep:
            old.unlink()
    dump_json(entries, index_path)


def _perturbed(
    pert: Perturbation,
    image: NDArray[np.uint8],
    severity: int,
    seed: int,
    image_id: str,
    gt: GroundTruth,
) -> tuple[NDArray[np.uint8], GroundTruth]:
    """The image as the run's cell saw it (same generator as the workers), and its ground
    truth moved with the pixels when the perturbation is geometric."""
    rng = rng_for(seed, pert.name, severity, image_id)
    boxes = gt.boxes if pert.geometric and len(gt) else None
    out, moved, kept, _ = pert(image, severity, rng, boxes)
    if moved is None or kept is None:
        return out, gt
    return out, GroundTruth(moved, gt.labels[kept], gt.iscrowd[kept])


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _render(
    dataset: Dataset,
    record: Any,
    im: RunImage,
    model: LoadedModel,
    cache: PredictionCache,
    pert_name: str,
    severity: int,
    opts: RunOptions,
) -> bytes:
    assert opts.suite is not None
    pert = opts.suite.perturbation(pert_name)
    clean_img: NDArray[np.uint8] = dataset.load(record).image
    gt = im.targets if im.targets is not None else GroundTruth.empty()
    if len(gt):
        # Only the classes this model is scored on: the rest would be noise in the picture.
        keep = np.isin(gt.labels, list(model.label_map.evaluable))
        gt = GroundTruth(gt.boxes[keep], gt.labels[keep], gt.iscrowd[keep])
    pert_img, moved = _perturbed(pert, clean_img, severity, opts.seed, im.id, gt)
    fp = model.predictor.fingerprint
    perturbed_key = CacheKey(fp, im.hash, *pert.cache_condition(severity, opts.seed))
    keys = [CacheKey(fp, im.hash), perturbed_key]
    found = cache.get_many(keys)
    dets = [model.label_map.apply(found[k].detections)[0] for k in keys]
    pair = draw_pair(
        clean_img,
        pert_img,
        gt_clean=gt,
        gt_perturbed=moved,
        dets_clean=dets[0],
        dets_perturbed=dets[1],
        class_names=dataset.class_names or model.label_map.dataset_names,
        conf=opts.scoring.conf,
        titles=(f"{im.id}: clean", f"{pert.name} severity {severity}"),
        max_side=_PAIR_SIDE,
    )
    # Sized for a report of a few hundred pairs to stay well under 15 MB.
    return encode_jpeg(pair, quality=72)


PREVIEW_DIR = "preview"
_PREVIEW_SIDE = 200


def write_preview(
    out_dir: Path,
    dataset: Dataset,
    images: Sequence[RunImage],
    suite: Suite,
    seed: int,
) -> None:
    """One dataset image under every (perturbation, severity) of the suite, as thumbnails
    (``preview/<perturbation>-<severity>.jpg``, ground truth drawn and moved with the
    pixels), listed in ``preview/index.json`` for the report.

    The image is the one with the most ground-truth boxes among the first 50 (the first
    image on unlabeled data): the preview should show objects, not an empty frame.
    """
    if not images:
        return
    head = images[:50]
    pick = max(range(len(head)), key=lambda i: (len(head[i].targets or ()), -i))
    im = head[pick]
    folder = out_dir / PREVIEW_DIR
    severities = suite.severities
    versions = {n: suite.perturbation(n).tag for n in severities}
    key = hashlib.blake2b(
        json.dumps(
            [im.id, im.hash, seed, {n: list(s) for n, s in severities.items()}, versions]
        ).encode(),
        digest_size=16,
    ).hexdigest()
    index_path = folder / GALLERY_INDEX
    if index_path.is_file():
        try:
            if json.loads(index_path.read_text()).get("key") == key:
                return  # the same thumbnails as last time: a warm re-run draws nothing
        except (ValueError, AttributeError):
            pass
    record = next(r for r in dataset.records if r.id == im.id)
    clean = dataset.load(record).image
    gt = im.targets if im.targets is not None else GroundTruth.empty()
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()

    def thumb(image: NDArray[np.uint8], boxes: GroundTruth) -> bytes:
        scale = min(1.0, _PREVIEW_SIDE / max(image.shape[:2]))
        small = np.ascontiguousarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8
        )
        # Thin ground-truth outlines only: at thumbnail size labels would hide the picture.
        for x1, y1, x2, y2 in np.rint(boxes.boxes * scale).astype(int):
            cv2.rectangle(small, (x1, y1), (x2, y2), GT_COLOR, 1)
        return encode_jpeg(small, quality=72)

    entries: dict[str, Any] = {
        "image": im.id,
        "key": key,
        "clean": f"{PREVIEW_DIR}/clean.jpg",
        "perturbations": {},
    }
    (folder / "clean.jpg").write_bytes(thumb(clean, gt))
    for name, sevs in severities.items():
        pert = suite.perturbation(name)
        files = {}
        for sev in sevs:
            image, moved = _perturbed(pert, clean, sev, seed, im.id, gt)
            file = f"{name}-{sev}.jpg"
            (folder / file).write_bytes(thumb(image, moved))
            files[str(sev)] = f"{PREVIEW_DIR}/{file}"
        entries["perturbations"][name] = {"family": pert.family, "severities": files}
    dump_json(entries, folder / GALLERY_INDEX)
