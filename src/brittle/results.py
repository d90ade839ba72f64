"""``results.json``: the versioned, documented record of a run.

The file holds only numbers that follow from the inputs (dataset, models,
settings), never timings or dates, so the same run gives byte-identical files;
those live in ``run.json`` beside it. Its JSON Schema ships with the package
(``brittle/schemas/results.schema.json``) and a test keeps the two in sync.

>>> r = Results.model_validate(
...     {"schema_version": SCHEMA_VERSION, "brittle_version": "0.1.0",
...      "dataset": {"name": "d", "path": "d", "format": "yolo", "image_count": 0,
...                  "class_names": []},
...      "settings": {}, "models": {}})
>>> r.dataset.name
'd'
>>> Results.model_validate({**r.model_dump(), "surprise": 1})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Results
surprise
  Extra inputs are not permitted ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CI",
    "SCHEMA_VERSION",
    "CellResult",
    "ClassMetrics",
    "CleanMetrics",
    "Comparison",
    "DatasetInfo",
    "Difference",
    "FamilyResult",
    "ModelResult",
    "PerturbationResult",
    "Results",
    "RiskResult",
    "Settings",
    "Verdict",
    "dump_json",
    "schema_path",
]

SCHEMA_VERSION = "1.2"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CI = tuple[float, float] | None
"""A bootstrap confidence interval ``[low, high]`` (level in ``suite.bootstrap``); null
when the statistic is undefined on every resample."""


def _ci(what: str) -> Any:
    return Field(default=None, description=f"bootstrap confidence interval of {what}")


class ClassMetrics(_Strict):
    """AP of one dataset class; null when the class has no ground truth."""

    ap50_95: float | None = Field(description="AP averaged over IoU 0.50:0.05:0.95")
    ap50: float | None = Field(description="AP at IoU 0.50")
    gt_count: int = Field(description="ground-truth boxes of this class (crowd excluded)")


class CleanMetrics(_Strict):
    """The 12 COCO stats on clean images (-1 where COCO leaves a stat undefined)."""

    map50_95: float
    map50: float
    map75: float
    map_small: float
    map_medium: float
    map_large: float
    ar1: float
    ar10: float
    ar100: float
    ar_small: float
    ar_medium: float
    ar_large: float
    map50_95_ci: CI = _ci("map50_95")
    map50_ci: CI = _ci("map50")
    per_class: dict[str, ClassMetrics] = Field(description="every evaluated dataset class, by name")


class CellResult(_Strict):
    """One perturbation at one severity."""

    map50_95: float | None = Field(description="mAP@[.5:.95] on perturbed images (null: unlabeled)")
    map50: float | None = Field(description="mAP@.5 on perturbed images (null: unlabeled)")
    consistency: float = Field(
        description="mean matched-box F1 between clean and perturbed predictions (label-free)"
    )
    affected_fraction: float = Field(
        description="share of images whose consistency is below the strictness"
    )
    map50_95_ci: CI = _ci("map50_95")
    map50_ci: CI = _ci("map50")
    consistency_ci: CI = _ci("consistency")
    affected_fraction_ci: CI = _ci("affected_fraction")


class PerturbationResult(_Strict):
    family: str
    rpc: float | None = Field(
        description="mean over severities of mAP@[.5:.95] / clean mAP@[.5:.95]; null when "
        "unlabeled or the clean mAP is 0"
    )
    consistency: float = Field(description="mean over severities of the cells' consistency")
    affected_fraction: float = Field(description="mean over severities of the affected fraction")
    degradation: float = Field(
        description="what the risk score counts: 1 - rPC clipped to [0, 1], or 1 - "
        "consistency when rPC is undefined (docs/robustness.md)"
    )
    rpc_ci: CI = _ci("rpc")
    consistency_ci: CI = _ci("consistency")
    affected_fraction_ci: CI = _ci("affected_fraction")
    degradation_ci: CI = _ci("degradation")
    severities: dict[str, CellResult] = Field(description='by severity ("1" .. "5")')


class FamilyResult(_Strict):
    """Means over a family's perturbations in the suite (each perturbation weighs the same)."""

    rpc: float | None = Field(description="mean rPC of the family's perturbations")
    consistency: float
    affected_fraction: float
    degradation: float = Field(description="mean degradation of the family's perturbations")
    rpc_ci: CI = _ci("rpc")
    consistency_ci: CI = _ci("consistency")
    affected_fraction_ci: CI = _ci("affected_fraction")
    degradation_ci: CI = _ci("degradation")
    perturbations: list[str]


class RiskResult(_Strict):
    """The 0-100 risk score: higher is riskier (docs/robustness.md has the formula)."""

    value: float = Field(ge=0, le=100)
    ci: CI = _ci("the risk score")
    basis: Literal["rpc", "consistency"] = Field(
        description="what degradation was measured by: rPC (labeled data) or consistency"
    )


class Difference(_Strict):
    """A paired difference between two models (``a`` minus ``b``) on the same images."""

    metric: Literal["rpc", "consistency", "risk", "map50_95"]
    a: float
    b: float
    difference: float
    ci: CI = _ci("the difference")
    better: str | None = Field(
        default=None,
        description="the better model (more robust; for map50_95 more accurate), stated only "
        "when the interval excludes 0",
    )


class Comparison(_Strict):
    a: str
    b: str
    clean: Difference | None = Field(
        default=None, description="clean mAP@[.5:.95], when both models have labels"
    )
    risk: Difference | None = None
    families: dict[str, Difference] = Field(default_factory=dict)
    perturbations: dict[str, Difference] = Field(default_factory=dict)


class Verdict(_Strict):
    """Did a training augmentation protect against what it should?"""

    model: str
    reference: str
    augmentation: str
    perturbations: list[str] = Field(description="suite perturbations it should protect against")
    outcome: Literal["intended effect", "no measurable effect", "backfired", "not tested"]
    difference: Difference | None = Field(
        default=None, description="model minus reference, mean over the perturbations"
    )
    details: dict[str, Difference] = Field(default_factory=dict, description="per perturbation")


class ModelResult(_Strict):
    spec: str = Field(description="how the model was given on the command line")
    kind: str = Field(description="predictor kind, e.g. onnx or python")
    fingerprint: str = Field(description="identifies weights and decoding options")
    class_names: list[str] = Field(description="the classes the model itself predicts")
    class_map: dict[str, str] | None = Field(
        description="model class name -> dataset class name, when a class map was given"
    )
    evaluated_classes: list[str] = Field(
        description="dataset classes the model can predict; mAP averages over these"
    )
    unevaluated_classes: list[str] = Field(
        description="dataset classes no model class maps to (excluded from mAP)"
    )
    dropped_detections: int = Field(
        description="detections of model classes outside the dataset's classes (dropped)"
    )
    failed_images: list[str] = Field(
        default_factory=list, description="image ids on which the model raised an error"
    )
    clean: CleanMetrics | None = Field(description="null for unlabeled datasets")
    perturbations: dict[str, PerturbationResult] = Field(
        default_factory=dict, description="by perturbation name (brittle run)"
    )
    families: dict[str, FamilyResult] = Field(
        default_factory=dict, description="by family, in catalogue order (brittle run)"
    )
    risk: RiskResult | None = Field(default=None, description="null without a suite")
    trained_with: list[str] = Field(
        default_factory=list, description="declared training augmentations"
    )
    reference: str | None = Field(
        default=None, description="the model trained without them, for augmentation verdicts"
    )


class DatasetInfo(_Strict):
    name: str
    path: str
    format: str
    split: str | None = None
    image_count: int = Field(description="images evaluated")
    class_names: list[str]
    box_count: int = Field(default=0, description="ground-truth boxes in evaluated images")
    issues: dict[str, int] = Field(
        default_factory=dict, description="count of each kind of dataset problem"
    )
    skipped_images: list[str] = Field(
        default_factory=list, description="ids of images that could not be decoded"
    )


class SuiteInfo(_Strict):
    name: str
    seed: int
    operating_conf: float = Field(description="confidence threshold of the consistency measures")
    strictness: float = Field(description="consistency below this counts an image as affected")
    perturbations: dict[str, list[int]] = Field(description="perturbation -> severities run")
    versions: dict[str, int] = Field(description="perturbation -> implementation version")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="perturbation -> drawn parameters fixed by the suite"
    )
    bootstrap: BootstrapInfo


class BootstrapInfo(_Strict):
    resamples: int = Field(description="bootstrap resamples (of images, with replacement)")
    seed: int
    level: float = Field(description="confidence level of every interval")
    method: Literal["percentile"] = "percentile"


class Settings(_Strict):
    conf_threshold: float | None = Field(
        default=None, description="evaluation confidence threshold"
    )
    nms_iou: float | None = None
    max_det: int | None = None
    max_dets: list[int] = Field(default_factory=lambda: [1, 10, 100])


class Results(_Strict):
    """The whole ``results.json``."""

    schema_version: Literal["1.2"]
    brittle_version: str
    dataset: DatasetInfo
    settings: Settings
    suite: SuiteInfo | None = Field(default=None, description="null for a clean-only eval")
    models: dict[str, ModelResult]
    ranking: list[str] = Field(
        default_factory=list, description="models by risk score, least risky first"
    )
    comparisons: list[Comparison] = Field(
        default_factory=list, description="every pair of models, in ranking order"
    )
    verdicts: list[Verdict] = Field(default_factory=list)


def schema_path() -> Path:
    """Where the packaged JSON Schema of ``results.json`` lives."""
    return Path(__file__).parent / "schemas" / "results.schema.json"


def results_json_schema() -> dict[str, object]:
    """The JSON Schema generated from :class:`Results` (what the packaged file must equal)."""
    schema = Results.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"brittle/results/{SCHEMA_VERSION}"
    return schema


def dump_json(obj: object, path: Path) -> None:
    """Write JSON deterministically (sorted keys, fixed indent) via a temp file + rename,
    so an interrupted write never leaves a half file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
    tmp.replace(path)
