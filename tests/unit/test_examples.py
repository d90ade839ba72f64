"""The files in examples/ stay valid: every suite, hosted-model and torchvision config loads
with brittle's own readers, names model kinds brittle knows, and is listed in the index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brittle.cli_suite import model_spec
from brittle.models import predictor_kind
from brittle.models.http import load_http_config
from brittle.models.torchvision_model import load_torchvision_config
from brittle.suitefile import load_suite

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SUITES = sorted(EXAMPLES.glob("*.suite.yaml"))
HTTP = sorted(EXAMPLES.glob("*.http.yaml"))
TORCHVISION = sorted(EXAMPLES.glob("*.torchvision.yaml"))


def test_the_examples_are_there() -> None:
    # The parametrised tests below would pass vacuously on an empty glob.
    assert {p.name for p in SUITES} >= {
        "hosted.suite.yaml",
        "ultralytics.suite.yaml",
        "torchvision.suite.yaml",
    }
    assert {p.name for p in HTTP} >= {"roboflow.http.yaml"}
    assert {p.name for p in TORCHVISION} >= {"fasterrcnn.torchvision.yaml"}


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_suite_validates_and_names_loadable_model_kinds(path: Path) -> None:
    suite = load_suite(path)
    assert suite.models
    assert suite.checks, "an example suite should show at least one check"
    assert suite.resolved().cells()
    for model in suite.models:
        spec = model_spec(path.parent, model.spec)
        kind = predictor_kind(spec)  # a ConfigError for a spec brittle cannot load
        # A config the suite refers to ships with it and is itself valid.
        if kind == "http":
            load_http_config(spec)
        elif kind == "torchvision" and not spec.startswith("torchvision:"):
            assert load_torchvision_config(spec).arch


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_brittle_validate_accepts_the_suite(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brittle", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    n = len(load_suite(path).models)
    assert f"valid: {n} models" in " ".join(proc.stdout.split())


def _kinds(name: str) -> dict[str, str]:
    path = EXAMPLES / name
    models = load_suite(path).models
    return {m.name: predictor_kind(model_spec(path.parent, m.spec)) for m in models}


def test_each_suite_pairs_the_model_kinds_it_is_about() -> None:
    assert _kinds("hosted.suite.yaml") == {"hosted": "http", "local": "onnx"}
    assert sorted(_kinds("ultralytics.suite.yaml").values()) == ["onnx", "ultralytics"]
    assert sorted(_kinds("torchvision.suite.yaml").values()) == ["torchvision", "torchvision"]


def test_hosted_suite_gates_the_hosted_model_against_a_baseline() -> None:
    suite = load_suite(EXAMPLES / "hosted.suite.yaml")
    gated = [c for c in suite.checks if c.no_regression is not None]
    assert gated
    assert all(c.models == ["hosted"] for c in gated)
    # The local model is evaluated from the confidence the hosted one is asked for
    # (Roboflow's `confidence: 1`, in percent).
    params = load_http_config(EXAMPLES / "roboflow.http.yaml").request.params
    assert suite.scoring.conf == pytest.approx(float(params["confidence"]) / 100)


@pytest.mark.parametrize("path", HTTP, ids=lambda p: p.name)
def test_http_config_loads(path: Path) -> None:
    config = load_http_config(path)
    assert config.url.startswith("https://")
    assert config.class_names


@pytest.mark.parametrize("path", TORCHVISION, ids=lambda p: p.name)
def test_torchvision_config_loads(path: Path) -> None:
    config = load_torchvision_config(path)
    assert config.class_names
    assert Path(config.weights).suffix == ".pth"  # own weights: a state dict file


def test_the_index_lists_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text()
    files = sorted(p.name for p in EXAMPLES.iterdir() if p.is_file() and p.name != "README.md")
    assert files
    missing = [name for name in files if f"]({name})" not in index]
    assert not missing, f"examples/README.md does not link {missing}"
