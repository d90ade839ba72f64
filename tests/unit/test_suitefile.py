"""Suite files: strict validation with locations, resolution, parameter overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brittle.errors import ConfigError
from brittle.perturbations import rng_for, tuned
from brittle.perturbations.base import transform_boxes
from brittle.suitefile import parse_suite, suite_json_schema

HEAD = "dataset: {path: d}\nmodels: [{name: a, spec: a.onnx}]\n"


def _errors(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_suite(HEAD + text, "s.yaml")
    return str(err.value)


def test_every_error_is_listed_with_its_location() -> None:
    msg = _errors(
        "perturbations: {base: quick, add: [{name: fog, severities: [0, 3]}], remove: [hflp]}\n"
        "scoring: {strictness: 2, bogus: 1}\n"
        "checks: [{metric: rpc}, {metric: risk, max: 1, min: 0, no_regression: 0.1}]\n"
    )
    assert msg.startswith("s.yaml: 6 problems")
    for expected in (
        "perturbations.add[0].severities[0]: must be between 1 and 5, got 0",
        "perturbations.remove[0]: unknown perturbation 'hflp'; did you mean 'hflip'?",
        "scoring.strictness: Input should be less than or equal to 1",
        "scoring.bogus: Extra inputs are not permitted",
        "checks[0]: a check needs exactly one of",
        "checks[1]: a check needs exactly one of",
    ):
        assert expected in msg, (expected, msg)


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"s.yaml:\d+:\d+: not valid YAML"):
        parse_suite("dataset: {path: d}\nmodels:\n  - {name: a, spec: [\n", "s.yaml")


def test_models_references_and_augmentations_are_checked() -> None:
    msg = _errors(
        "models: [{name: a, spec: a.onnx}, {name: a, spec: b.onnx, trained_with: [noise]}]\n"
    )
    assert "duplicate" not in msg  # a YAML key repeated is YAML's business; here: names
    assert "model names must be unique: a" in msg
    with pytest.raises(ConfigError, match="trained_with needs a reference model"):
        parse_suite(
            "dataset: {path: d}\nmodels: [{name: b, spec: b.onnx, trained_with: [noise]}]\n"
        )


def test_resolution_starts_from_the_base_suite() -> None:
    s = parse_suite(
        HEAD + "perturbations: {base: quick, remove: [fog], add: [{name: fog, severities: [5]},"
        " {name: vflip}]}\n"
    ).resolved()
    assert s.severities["fog"] == (5,)  # removed, then added back at other severities
    assert s.severities["vflip"] == (1, 3, 5)
    assert s.severities["gaussian_noise"] == (3,)


def test_parameter_overrides_fix_what_is_drawn_and_change_the_cache_tag() -> None:
    s = parse_suite(
        HEAD + "perturbations: {add: [{name: motion_blur, params: {angle: 0.0}}]}\n"
    ).resolved()
    pert = s.perturbation("motion_blur")
    for image_id in ("a", "b", "c"):
        assert pert.params(3, 64, 64, rng_for(0, "motion_blur", 3, image_id))["angle"] == 0.0
    assert pert.tag.startswith("motion_blur@")
    assert pert.tag != tuned("motion_blur").tag
    assert pert.tag != tuned("motion_blur", {"angle": 30.0}).tag
    # A horizontal streak leaves a horizontal edge (rows constant) untouched.
    image = np.zeros((64, 64, 3), np.uint8)
    image[32:] = 255
    out = pert.apply(
        image, pert.params(5, 64, 64, np.random.default_rng(0)), np.random.default_rng(0)
    )
    assert np.array_equal(out[:, 10], out[:, 50])


def test_overrides_of_geometry_move_the_boxes_the_same_way() -> None:
    pert = tuned("translate", {"shift": [10, 0]})
    params = pert.params(3, 100, 100, np.random.default_rng(0))
    boxes, kept = transform_boxes(pert, np.array([[20.0, 20.0, 40.0, 40.0]]), params, 100, 100)
    assert kept.tolist() == [True]
    np.testing.assert_allclose(boxes, [[30.0, 20.0, 50.0, 40.0]], atol=1e-6)


def test_overrides_that_would_do_nothing_or_break_are_refused() -> None:
    msg = _errors("perturbations: {add: [{name: rotate, params: {angle: 10}}]}\n")
    assert "overriding 'angle' has no effect" in msg
    msg = _errors("perturbations: {add: [{name: gaussian_noise, params: {sigma: oops}}]}\n")
    assert "sigma='oops' does not work" in msg
    msg = _errors("perturbations: {add: [{name: motion_blur, params: {angel: 0}}]}\n")
    assert "did you mean 'angle'?" in msg


def test_the_json_schema_describes_every_section() -> None:
    schema = suite_json_schema()
    assert set(schema["properties"]) >= {"dataset", "models", "perturbations", "checks"}
    assert schema["additionalProperties"] is False


def test_model_files_in_a_suite_are_relative_to_it() -> None:
    from brittle.cli_suite import model_spec

    base = Path("/suites")
    assert model_spec(base, "m.onnx") == "/suites/m.onnx"
    assert model_spec(base, "weights/best.pt") == "/suites/weights/best.pt"
    assert model_spec(base, "api/rf.http.yaml") == "/suites/api/rf.http.yaml"
    assert model_spec(base, "tv/ppe.torchvision.yml") == "/suites/tv/ppe.torchvision.yml"
    assert model_spec(base, "det.py:Det") == "/suites/det.py:Det"
    # Not files: left alone.
    assert model_spec(base, "torchvision:fcos_resnet50_fpn") == "torchvision:fcos_resnet50_fpn"
    assert model_spec(base, "my_package.models:Det") == "my_package.models:Det"
    assert model_spec(base, "/abs/m.onnx") == "/abs/m.onnx"
