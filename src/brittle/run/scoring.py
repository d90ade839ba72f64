"""Score one (model, condition) cell of a run from the cached predictions.

A cell's score holds what the run's tables and intervals need and nothing that grows
with the number of cells: the COCO stats with their bootstrap replicates (the AP of
every resample, computed once here so that rPC, family, risk and comparison intervals
are plain arithmetic on replicates later), and per image the behaviour-change counts
from which consistency and the affected share follow for any resample.

Every cell of a run is bootstrapped with the same resample matrix (it depends on the
number of images and the bootstrap seed only), so replicates of different cells,
models, and even runs over the same images are *paired*: the difference of two
statistics' replicates is a paired-bootstrap replicate of their difference.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from brittle.data.base import Dataset
from brittle.metrics.bootstrap import resample_weights
from brittle.metrics.coco import WeightedAP, evaluate_records
from brittle.metrics.consistency import DEFAULT_CONF, DEFAULT_STRICTNESS, behaviour_change
from brittle.metrics.matching import match_images
from brittle.models.classmap import LabelMap
from brittle.perturbations import rng_for
from brittle.perturbations.base import Params, Perturbation, transform_boxes
from brittle.run.cache import CacheKey, PredictionCache, RunImage
from brittle.types import Detections, GroundTruth

__all__ = [
    "SCORING_VERSION",
    "CellScore",
    "ScoreOptions",
    "ScoringInputs",
    "images_digest",
    "score_cell",
    "score_key",
]

#: Bump when a change here changes any number a cell score holds (invalidates the
#: score cache; predictions stay valid).
SCORING_VERSION = 2


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """How cells are scored: the operating point and the bootstrap."""

    conf: float = DEFAULT_CONF
    strictness: float = DEFAULT_STRICTNESS
    resamples: int = 1000
    bootstrap_seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_I64 = np.int64
_F64 = np.float64


@dataclass(frozen=True)
class CellScore:
    """The score of one model under one condition (clean or a suite cell).

    ``stats`` are the 12 COCO stats (empty when there is nothing to evaluate: unlabeled
    images or no evaluable class); ``class_ap`` / ``class_ap50`` per evaluated class
    (``classes``; NaN without ground truth); ``map50_95_reps`` / ``map50_reps`` the
    stat on each bootstrap resample (NaN where undefined). The per-image arrays are
    empty for the clean condition; for a cell they are the behaviour change against
    the clean predictions at the operating confidence.
    """

    n_images: int
    stats: NDArray[np.float64]
    classes: NDArray[np.int64]
    class_ap: NDArray[np.float64]
    class_ap50: NDArray[np.float64]
    map50_95_reps: NDArray[np.float64]
    map50_reps: NDArray[np.float64]
    n_clean: NDArray[np.int64]
    n_perturbed: NDArray[np.int64]
    n_matched: NDArray[np.int64]
    changed: NDArray[np.int64]
    lost: NDArray[np.int64]
    gained: NDArray[np.int64]
    f1_clean: NDArray[np.float64]
    f1_perturbed: NDArray[np.float64]
    failed: tuple[str, ...] = ()
    dropped: int = 0
    _arrays: tuple[str, ...] = field(
        default=(
            "stats", "classes", "class_ap", "class_ap50", "map50_95_reps", "map50_reps",
            "n_clean", "n_perturbed", "n_matched", "changed", "lost", "gained",
            "f1_clean", "f1_perturbed",
        ),
        init=False, repr=False, compare=False,
    )  # fmt: skip

    @property
    def labeled(self) -> bool:
        return bool(self.stats.size)

    @property
    def consistency(self) -> NDArray[np.float64]:
        """Per image: F1 of the clean/perturbed matching; 1.0 when both are empty."""
        total = self.n_clean + self.n_perturbed
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, 2.0 * self.n_matched / np.maximum(total, 1), 1.0)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps(
            {"n_images": self.n_images, "failed": list(self.failed), "dropped": self.dropped}
        )
        np.savez(buf, meta=np.array(meta), **{k: getattr(self, k) for k in self._arrays})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CellScore:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        return cls(
            n_images=meta["n_images"],
            failed=tuple(meta["failed"]),
            dropped=meta["dropped"],
            **arrays,
        )


class ScoringInputs:
    """What scoring reads once per process: the run's images, their ground truth, the
    resample matrix, and each model's clean predictions (loaded on first use)."""

    def __init__(self, cache: PredictionCache, images: Sequence[RunImage], dataset: Dataset):
        self.cache = cache
        self.images = list(images)
        self.num_classes = len(dataset.class_names)
        self.labeled = dataset.labeled
        self.gts = [im.targets if im.targets is not None else GroundTruth.empty() for im in images]
        self._weights: dict[tuple[int, int], NDArray[np.int64]] = {}
        self._clean: dict[str, list[Detections]] = {}

    @classmethod
    def from_cache(cls, path: Path, dataset: Dataset) -> ScoringInputs:
        cache = PredictionCache(path, readonly=True)
        return cls(cache, cache.run_images(), dataset)

    def weights(self, options: ScoreOptions) -> NDArray[np.int64]:
        key = (options.resamples, options.bootstrap_seed)
        if key not in self._weights:
            self._weights[key] = resample_weights(
                len(self.images), options.resamples, seed=options.bootstrap_seed
            )
        return self._weights[key]

    def predictions(
        self, fingerprint: str, label_map: LabelMap, condition: tuple[str, int, int]
    ) -> tuple[list[Detections], list[str], int]:
        """Mapped detections of every image, the ids the model failed on, and the count
        of detections dropped by the class map."""
        keys = [CacheKey(fingerprint, im.hash, *condition) for im in self.images]
        found = self.cache.get_many(keys)
        dets: list[Detections] = []
        failed: list[str] = []
        dropped = 0
        for im, key in zip(self.images, keys, strict=True):
            entry = found.get(key)
            if entry is None:
                raise RuntimeError(f"no cached prediction for {im.id} under {condition}")
            if entry.error is not None:
                failed.append(im.id)
                dets.append(Detections.empty())
                continue
            mapped, n = label_map.apply(entry.detections)
            dropped += n
            dets.append(mapped)
        return dets, failed, dropped

    def clean(self, fingerprint: str, label_map: LabelMap) -> list[Detections]:
        if fingerprint not in self._clean:
            self._clean[fingerprint] = self.predictions(fingerprint, label_map, ("", 0, 0))[0]
        return self._clean[fingerprint]


def images_digest(images: Sequence[RunImage]) -> str:
    """Identifies the images of a run and their ground truth (part of score keys)."""
    h = hashlib.blake2b(digest_size=16)
    for im in images:
        h.update(f"{im.id}\0{im.hash}\0{im.width}x{im.height}\0".encode())
        if im.targets is not None:
            for a in (im.targets.boxes, im.targets.labels, im.targets.iscrowd):
                h.update(np.ascontiguousarray(a).tobytes())
        h.update(b"\1")
    return h.hexdigest()


def score_key(
    images: str,
    fingerprint: str,
    label_map: LabelMap,
    condition: tuple[str, int, int],
    options: ScoreOptions,
    failed: Sequence[str] = (),
) -> str:
    """The score cache key of a cell: everything its numbers depend on.

    ``failed``: the hashes of the cell's images whose prediction failed. A later run
    retries them, so the same cell can be scored with and without them.
    """
    blob = json.dumps(
        {
            "v": SCORING_VERSION,
            "images": images,
            "model": fingerprint,
            "map": [list(label_map.dataset_names), label_map.index.tolist()],
            "condition": list(condition),
            "options": options.as_dict(),
            **({"failed": sorted(failed)} if failed else {}),
        },
        sort_keys=True,
    )
    return hashlib.blake2b(blob.encode(), digest_size=20).hexdigest()


def _map_replicates(
    records: Any, weights: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """mAP@[.5:.95] and mAP@.5 on every resample, from one precision table."""
    wap = WeightedAP.from_records(records)
    p = wap.precision(weights)  # (B, T, R, K), -1 where a class has no ground truth
    t50 = int(np.flatnonzero(wap.iou_thresholds == 0.5)[0])

    def mean_defined(x: NDArray[np.float64]) -> NDArray[np.float64]:
        flat = x.reshape(len(x), -1)
        undefined = np.count_nonzero(flat == -1.0, axis=1)
        n = flat.shape[1] - undefined
        # Undefined entries are exactly -1: adding their count back removes them from the
        # sum without building a masked copy of the (B, T, R, K) table.
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, (flat.sum(axis=1) + undefined) / n, np.nan)

    return mean_defined(p), mean_defined(p[:, t50])


def _empty(dtype: Any) -> NDArray[Any]:
    return np.zeros(0, dtype)


def score_cell(
    inputs: ScoringInputs,
    *,
    fingerprint: str,
    label_map: LabelMap,
    perturbation: Perturbation | None,
    severity: int,
    seed: int,
    options: ScoreOptions,
) -> CellScore:
    """Score one model under one condition (``perturbation=None``: the clean images)."""
    condition = ("", 0, 0) if perturbation is None else perturbation.cache_condition(severity, seed)
    dets, failed, dropped = inputs.predictions(fingerprint, label_map, condition)
    gts = inputs.gts
    params: list[Params] = []
    sizes = [(im.height, im.width) for im in inputs.images]
    if perturbation is not None:
        for im, (h, w) in zip(inputs.images, sizes, strict=True):
            rng = rng_for(seed, perturbation.name, severity, im.id)
            params.append(perturbation.params(severity, h, w, rng))
        if perturbation.geometric:
            gts = [
                _moved(perturbation, g, p, s) for g, p, s in zip(gts, params, sizes, strict=True)
            ]

    evaluable = list(label_map.evaluable)
    stats = class_ap = class_ap50 = reps = reps50 = _empty(_F64)
    classes = _empty(_I64)
    if inputs.labeled and evaluable:
        records = match_images(gts, dets, inputs.num_classes, classes=evaluable)
        ev = evaluate_records(records)
        stats = np.asarray(ev.stats, _F64)
        classes = np.asarray(ev.classes, _I64)
        nan = float("nan")
        class_ap = np.array([nan if v is None else v for v in ev.per_class_ap().values()])
        class_ap50 = np.array([nan if v is None else v for v in ev.per_class_ap50().values()])
        reps, reps50 = _map_replicates(records, inputs.weights(options))

    ints = _empty(_I64)
    behaviour: dict[str, NDArray[Any]] = {
        "n_clean": ints, "n_perturbed": ints, "n_matched": ints, "changed": ints,
        "lost": ints, "gained": ints, "f1_clean": _empty(_F64), "f1_perturbed": _empty(_F64),
    }  # fmt: skip
    if perturbation is not None:
        b = behaviour_change(
            inputs.clean(fingerprint, label_map),
            dets,
            inputs.gts if inputs.labeled else None,
            conf=options.conf,
            strictness=options.strictness,
            perturbation=perturbation,
            params=params,
            sizes=sizes,
        )
        c = b.consistency
        behaviour = {
            "n_clean": c.n_clean, "n_perturbed": c.n_perturbed, "n_matched": c.n_matched,
            "changed": b.changed, "lost": b.lost, "gained": b.gained,
            "f1_clean": b.f1_clean, "f1_perturbed": b.f1_perturbed,
        }  # fmt: skip
    return CellScore(
        n_images=len(inputs.images),
        stats=stats,
        classes=classes,
        class_ap=class_ap,
        class_ap50=class_ap50,
        map50_95_reps=reps,
        map50_reps=reps50,
        failed=tuple(failed),
        dropped=dropped,
        **{k: np.asarray(v) for k, v in behaviour.items()},
    )


def _moved(
    pert: Perturbation, gt: GroundTruth, params: Params, size: tuple[int, int]
) -> GroundTruth:
    if not len(gt):
        return gt
    boxes, kept = transform_boxes(pert, gt.boxes, params, *size)
    return GroundTruth(boxes, gt.labels[kept], gt.iscrowd[kept])
