"""Test suites as code: a YAML file naming the data, the models, the perturbations, the
scoring options and the checks a CI build must pass.

The file is read into a strict pydantic model: unknown keys are rejected, and every error
is reported at once with its location (``perturbations.add[3].severities[1]: ...``);
unknown perturbation, augmentation and built-in suite names get "did you mean ...?".
Relative paths are relative to the suite file. ``brittle schema`` prints the JSON Schema
(for editor completion), ``brittle init`` writes a commented starter, ``brittle validate``
checks a file without running anything.

>>> suite = parse_suite('''
... dataset: {path: data/valid}
... models:
...   - {name: base, spec: models/base.onnx}
...   - {name: aug, spec: models/aug.onnx, trained_with: [blur, hflip], reference: base}
... perturbations: {base: quick, remove: [cutout], add: [{name: vflip, severities: [1, 5]}]}
... checks:
...   - {metric: risk, max: 40}
... ''', "ci.yaml")
>>> [m.name for m in suite.models], suite.resolved().severities["vflip"]
(['base', 'aug'], (1, 5))
>>> "cutout" in suite.resolved().severities
False
>>> parse_suite("dataset: {path: d}\\nmodels: [{name: a, spec: a.onnx}]\\nperturbations: "
...             "{add: [{name: gaussian_noize, severities: [9]}]}", "bad.yaml")
Traceback (most recent call last):
...
brittle.errors.ConfigError: bad.yaml: 2 problems
  perturbations.add[0].name: unknown perturbation 'gaussian_noize'; did you mean 'gaussian_noise'?
  perturbations.add[0].severities[0]: must be between 1 and 5, got 9
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from brittle.configfiles import parse_yaml_mapping, validate
from brittle.errors import ConfigError, UnknownNameError
from brittle.run.suites import Suite

__all__ = [
    "Check",
    "DatasetSpec",
    "ModelSpec",
    "PerturbationSpec",
    "PerturbationsSpec",
    "ScoringSpec",
    "SuiteFile",
    "load_suite",
    "parse_suite",
    "suite_json_schema",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _perturbation_name(name: str) -> str:
    from brittle.perturbations import get_perturbation

    try:
        get_perturbation(name)
    except UnknownNameError as exc:
        raise ValueError(str(exc.args[0]).split(" (known:")[0]) from None
    return name


class DatasetSpec(_Strict):
    path: str = Field(description="dataset folder, data.yaml or COCO json (relative to this file)")
    split: str | None = Field(default=None, description="train, val or test")
    format: Literal["yolo", "coco", "voc", "folder"] | None = Field(
        default=None, description="detected from the path when absent"
    )


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="unique model name")
    spec: str = Field(
        description="a .onnx file, an Ultralytics .pt, a hosted model's .http.yaml, a "
        ".torchvision.yaml or torchvision:ARCH, path/to/file.py:Name or module:Name "
        "(files relative to this suite file)"
    )
    format: Literal["yolov5", "yolov8", "yolox", "e2e"] | None = Field(
        default=None, description="ONNX output layout (detected when absent)"
    )
    class_map: str | None = Field(default=None, description="YAML: model class -> dataset class")
    input_size: int | None = Field(default=None, ge=1, description="model input size, pixels")
    trained_with: list[str] = Field(
        default_factory=list, description="training augmentations (blur, noise, hflip, ...)"
    )
    reference: str | None = Field(
        default=None, description="the model trained without them (for augmentation verdicts)"
    )

    @field_validator("trained_with")
    @classmethod
    def _known_augmentations(cls, value: list[str]) -> list[str]:
        from brittle.augmentations import parse_augmentations

        try:
            return parse_augmentations(",".join(value)) if value else []
        except UnknownNameError as exc:
            raise ValueError(str(exc.args[0])) from None


class PerturbationSpec(_Strict):
    name: str = Field(description="a perturbation of the catalogue (brittle perturbations)")
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=lambda: [1, 3, 5], min_length=1, description="severities 1..5"
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="drawn parameters to fix, e.g. {angle: 0} for motion_blur (brittle "
        "perturbations --preview shows the rest)",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _perturbation_name(value)

    @field_validator("severities")
    @classmethod
    def _range(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _params_work(self) -> PerturbationSpec:
        if not self.params:
            return self
        import numpy as np

        from brittle.perturbations import tuned

        try:
            pert = tuned(self.name, self.params)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        # Try the fixed values on a small image now, not half-way through a run.
        rng = np.random.default_rng(0)
        image = np.full((48, 64, 3), 128, np.uint8)
        try:
            pert.apply(image, pert.params(3, 48, 64, rng), rng)
        except Exception as exc:
            raise ValueError(
                f"params {self.params} do not work with {self.name}: {type(exc).__name__}: {exc}"
            ) from None
        return self


class PerturbationsSpec(_Strict):
    base: str | None = Field(
        default=None, description="start from a built-in suite: quick, standard, full, imagenet-c"
    )
    add: list[PerturbationSpec] = Field(
        default_factory=list, description="perturbations to add (or to run at other severities)"
    )
    remove: list[Annotated[str, AfterValidator(_perturbation_name)]] = Field(
        default_factory=list, description="perturbations to leave out"
    )

    @field_validator("base")
    @classmethod
    def _known_suite(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from brittle.run.suites import builtin_suite

        try:
            builtin_suite(value)
        except UnknownNameError as exc:
            raise ValueError(str(exc.args[0])) from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> PerturbationsSpec:
        if self.base is None and not self.add:
            raise ValueError("give a base suite, perturbations to add, or both")
        return self


class ScoringSpec(_Strict):
    seed: int = Field(default=0, description="seed of every perturbation's randomness")
    operating_conf: float = Field(default=0.3, gt=0, lt=1, description="consistency threshold")
    strictness: float = Field(default=0.75, ge=0, le=1, description="affected below this")
    resamples: int = Field(default=1000, ge=10, description="bootstrap resamples")
    conf: float = Field(default=0.001, ge=0, lt=1, description="evaluation confidence threshold")
    iou: float | None = Field(default=None, gt=0, le=1, description="NMS IoU (family default)")
    max_det: int = Field(default=300, ge=1, description="detections kept per image")


Metric = Literal["clean_map50_95", "clean_map50", "rpc", "consistency", "affected_fraction", "risk"]


class Check(_Strict):
    """One quality gate. A bound (``min`` / ``max``) on a metric, or a comparison with a
    baseline run (``no_regression`` / ``better_than_baseline``), for some models and one
    perturbation, one family, or (for rpc / consistency / affected_fraction with neither)
    every perturbation of the suite."""

    name: str | None = Field(default=None, description="label in reports (default: generated)")
    metric: Metric
    min: float | None = Field(default=None, description="fail when the value is below")
    max: float | None = Field(default=None, description="fail when the value is above")
    no_regression: float | None = Field(
        default=None,
        ge=0,
        description="vs --baseline: fail only when the paired interval shows a loss larger "
        "than this tolerance",
    )
    better_than_baseline: bool = Field(
        default=False, description="vs --baseline: pass only when significantly better"
    )
    models: list[str] | None = Field(default=None, description="default: every model")
    perturbation: str | None = None
    family: str | None = None
    on_fail: Literal["fail", "warn"] = Field(
        default="fail", description="warn: report the violation without failing the build"
    )

    @field_validator("perturbation")
    @classmethod
    def _known_perturbation(cls, value: str | None) -> str | None:
        return None if value is None else _perturbation_name(value)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        from brittle.perturbations.base import FAMILIES

        if value is not None and value not in FAMILIES:
            close = difflib.get_close_matches(value, FAMILIES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown family {value!r}{hint} (families: {', '.join(FAMILIES)})")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [
            self.min is not None or self.max is not None,
            self.no_regression is not None,
            self.better_than_baseline,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a check needs exactly one of: min/max, no_regression, better_than_baseline"
            )
        if self.perturbation and self.family:
            raise ValueError("give perturbation or family, not both")
        per_model = self.metric.startswith("clean") or self.metric == "risk"
        if per_model and (self.perturbation or self.family):
            raise ValueError(f"{self.metric} is one number per model: no perturbation/family")
        return self

    def label(self) -> str:
        if self.name:
            return self.name
        where = self.perturbation or self.family or ""
        if self.min is not None or self.max is not None:
            bounds = " ".join(
                f"{k} {v:g}" for k, v in (("min", self.min), ("max", self.max)) if v is not None
            )
            what = bounds
        elif self.no_regression is not None:
            what = f"no regression (tolerance {self.no_regression:g})"
        else:
            what = "better than baseline"
        return " ".join(x for x in (self.metric, where, what) if x)


class SuiteFile(_Strict):
    """A whole suite file."""

    version: Literal[1] = 1
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1)
    perturbations: PerturbationsSpec = Field(
        default_factory=lambda: PerturbationsSpec(base="standard")
    )
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    checks: list[Check] = Field(default_factory=list)
    output: str | None = Field(default=None, description="run directory (relative to this file)")

    @model_validator(mode="after")
    def _names(self) -> SuiteFile:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique: {', '.join(dupes)}")
        for m in self.models:
            if m.reference is not None and m.reference not in names:
                raise ValueError(f"model {m.name!r}: reference {m.reference!r} is not a model")
            if m.trained_with and m.reference is None:
                raise ValueError(f"model {m.name!r}: trained_with needs a reference model")
        for i, c in enumerate(self.checks):
            for n in c.models or []:
                if n not in names:
                    raise ValueError(f"checks[{i}].models: no model named {n!r}")
        return self

    def resolved(self) -> Suite:
        """The perturbations to run: the base suite, minus removals, plus additions."""
        from brittle.run.suites import builtin_suite

        p = self.perturbations
        severities: dict[str, tuple[int, ...]] = {}
        if p.base is not None:
            severities.update(builtin_suite(p.base).severities)
        for name in p.remove:
            severities.pop(name, None)
        overrides: dict[str, dict[str, Any]] = {}
        for spec in p.add:
            severities[spec.name] = tuple(spec.severities)
            if spec.params:
                overrides[spec.name] = dict(spec.params)
        return Suite(p.base or "custom", severities, overrides)


def _message(err: Any) -> str:
    if err["type"] in ("greater_than_equal", "less_than_equal") and "severities" in err["loc"]:
        # The same words as the rest of brittle, not pydantic's "greater than or equal to".
        return f"must be between 1 and 5, got {err['input']}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def parse_suite(text: str, source: str = "<suite>") -> SuiteFile:
    """Validate suite YAML; a ConfigError lists every problem with its location."""
    doc = parse_yaml_mapping(text, source, "a suite file is a mapping (dataset:, models:, ...)")
    return validate(SuiteFile, doc, source, _message)


def load_suite(path: Path) -> SuiteFile:
    """Read and validate a suite file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the suite file: {exc.strerror}") from None
    return parse_suite(text, str(path))


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of suite files (what ``brittle schema`` prints)."""
    schema = SuiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "brittle/suite/1"
    schema["title"] = "brittle suite"
    return schema
