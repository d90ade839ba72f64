"""results.json: the packaged JSON Schema matches the pydantic model, and validates real files."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from brittle.results import SCHEMA_VERSION, Results, results_json_schema, schema_path


def _minimal() -> dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "brittle_version": "0.1.0",
        "dataset": {
            "name": "css",
            "path": "/data/css",
            "format": "yolo",
            "image_count": 2,
            "class_names": ["Person", "vehicle"],
        },
        "settings": {"conf_threshold": 0.001},
        "models": {
            "m": {
                "spec": "m.onnx",
                "kind": "onnx",
                "fingerprint": "abc",
                "class_names": ["person", "car"],
                "class_map": {"person": "Person", "car": "vehicle"},
                "evaluated_classes": ["Person", "vehicle"],
                "unevaluated_classes": [],
                "dropped_detections": 0,
                "clean": {
                    **dict.fromkeys(
                        "map50_95 map50 map75 map_small map_medium map_large "
                        "ar1 ar10 ar100 ar_small ar_medium ar_large".split(),
                        0.5,
                    ),
                    "per_class": {
                        "Person": {"ap50_95": 0.4, "ap50": 0.6, "gt_count": 3},
                        "vehicle": {"ap50_95": None, "ap50": None, "gt_count": 0},
                    },
                },
            }
        },
    }


def test_packaged_schema_is_up_to_date() -> None:
    committed = json.loads(schema_path().read_text())
    assert committed == results_json_schema(), (
        "brittle/schemas/results.schema.json is stale: run `python scripts/gen_schemas.py`"
    )


def test_schema_accepts_a_valid_file_and_pydantic_agrees() -> None:
    doc = _minimal()
    jsonschema.validate(doc, json.loads(schema_path().read_text()))
    assert Results.model_validate(doc).models["m"].clean is not None


def test_unknown_keys_are_rejected_by_both() -> None:
    doc = _minimal()
    doc["dataset"]["surprise"] = 1  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        jsonschema.validate(doc, json.loads(schema_path().read_text()))
    with pytest.raises(ValidationError, match=r"dataset\.surprise"):
        Results.model_validate(doc)


def test_schema_version_is_pinned() -> None:
    doc = _minimal()
    doc["schema_version"] = "0.9"
    with pytest.raises(ValidationError, match="schema_version"):
        Results.model_validate(doc)
