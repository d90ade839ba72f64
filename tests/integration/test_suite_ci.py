"""Suites as code and the CI gate, end to end through the command line on generated data:
a suite that holds exits 0, an impossible threshold exits 1 with a JUnit file naming the
failing check, a malformed suite exits 2 listing every error with its location, and a
baseline check fails only when the paired interval says the regression is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from junitparser import JUnitXml
from test_eval_synthetic import ROOT
from test_run_synthetic import _make_left_dataset

ENV = {**os.environ, "COLUMNS": "200"}


def _brittle(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brittle", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**ENV, **env},
    )  # fmt: skip


def _suite(folder: Path, data: Path, detector: str, checks: str, name: str) -> Path:
    """A suite file next to ``data`` (relative paths, as users write them)."""
    text = textwrap.dedent(
        f"""\
        version: 1
        dataset: {{path: {data.name}}}
        models:
          - {{name: rect, spec: "{data.name}/detector.py:{detector}"}}
        perturbations: {{base: quick}}
        scoring: {{resamples: 200}}
        output: runs/{name}
        checks:
        """
    ) + textwrap.indent(textwrap.dedent(checks), "  ")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder with a left-third rectangles dataset (its detector.py has Rectangles and
    Lefty, which loses every object a horizontal flip moves right), and a baseline run."""
    root = tmp_path_factory.mktemp("ci")
    data = _make_left_dataset(root / "data")
    suite = _suite(root, data, "Rectangles", "- {metric: risk, max: 100}\n", "baseline")
    proc = _brittle("run", "--suite", str(suite), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    return root, data


def test_a_suite_that_holds_exits_0(project: tuple[Path, Path]) -> None:
    root, data = project
    checks = """\
        - {metric: clean_map50_95, min: 0.9}
        - {metric: rpc, perturbation: hflip, min: 0.99}
        - {metric: consistency, family: geometric, min: 0.5, on_fail: warn}
        - {metric: risk, max: 95}
    """
    suite = _suite(root, data, "Rectangles", checks, "holds")
    proc = _brittle("run", "--suite", str(suite), "--workers", "1", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed" in proc.stdout
    assert "0 failed" in proc.stdout
    assert (root / "runs" / "holds" / "results.json").is_file()


def test_an_impossible_threshold_exits_1_with_a_junit_file_naming_it(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    root, data = project
    checks = """\
        - {metric: risk, max: 100}
        - {name: impossible accuracy, metric: clean_map50_95, min: 1.5}
    """
    suite = _suite(root, data, "Rectangles", checks, "impossible")
    junit = tmp_path / "brittle.xml"
    proc = _brittle(
        "run", "--suite", str(suite), "--workers", "1", "--check", "--junit", str(junit),
        GITHUB_ACTIONS="true",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    xml = JUnitXml.fromfile(str(junit))
    cases = {case.name: case for suite_ in xml for case in suite_}
    assert set(cases) == {"risk max 100", "impossible accuracy"}
    assert cases["risk max 100"].is_passed
    failed = cases["impossible accuracy"]
    assert not failed.is_passed
    message = failed.result[0].message
    assert "< min 1.5" in message
    assert "rect" in message
    assert "::error title=brittle check::impossible accuracy" in proc.stdout
    # `brittle check` on the finished run gives the same verdict without running anything.
    again = _brittle("check", str(root / "runs" / "impossible"), "--suite", str(suite))
    assert again.returncode == 1
    assert "impossible accuracy" in again.stdout


def test_a_malformed_suite_exits_2_listing_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            version: 1
            dataset: {path: data, colour: blue}
            models:
              - {name: a, spec: a.onnx, trained_with: [blurr], reference: a}
            perturbations:
              base: standrad
              add:
                - {name: motion_blur, severities: [1, 7]}
            checks:
              - {metric: rpc, family: geometrik, min: 0.5}
              - {metric: risk, perturbation: hflip, max: 10}
            """
        )
    )
    for cmd in (("validate", str(bad)), ("run", "--suite", str(bad))):
        proc = _brittle(*cmd)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr
        for expected in (
            "dataset.colour: Extra inputs are not permitted",
            "models[0].trained_with: unknown augmentation 'blurr'; did you mean 'blur'?",
            "perturbations.base: unknown suite 'standrad'; did you mean 'standard'?",
            "perturbations.add[0].severities[1]: must be between 1 and 5, got 7",
            "checks[0].family: unknown family 'geometrik'; did you mean 'geometric'?",
            "checks[1]: risk is one number per model",
        ):
            assert expected in err, (expected, err)


def test_a_baseline_check_fails_only_on_a_real_regression(project: tuple[Path, Path]) -> None:
    root, data = project
    baseline = root / "runs" / "baseline"
    checks = """\
        - {metric: rpc, perturbation: hflip, no_regression: 0.02}
        - {metric: rpc, perturbation: gaussian_noise, no_regression: 0.02}
    """
    # The same model again: every paired difference is exactly zero, nothing regresses.
    same = _suite(root, data, "Rectangles", checks, "same")
    proc = _brittle(
        "run", "--suite", str(same), "--workers", "1", "--check", "--baseline", str(baseline)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Lefty under the same name loses every flipped object: a real, large regression on
    # hflip, while noise, which moves nothing, stays as it was.
    worse = _suite(root, data, "Lefty", checks, "worse")
    proc = _brittle(
        "run", "--suite", str(worse), "--workers", "1", "--check", "--baseline", str(baseline)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "FAIL" in line]
    assert len(lines) == 1
    assert "hflip" in lines[0]


def test_init_writes_a_valid_starter_and_schema_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "brittle.yaml"
    proc = _brittle("init", "--data", "data/valid", "--model", "m=models/m.onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _brittle("validate", str(out)).returncode == 0
    again = _brittle("init", "--data", "d", "--model", "m.onnx", "--out", str(out))
    assert again.returncode == 2
    assert "--force" in again.stderr
    schema = _brittle("schema")
    assert schema.returncode == 0
    assert '"title": "brittle suite"' in schema.stdout


def test_parameter_overrides_reach_the_workers_and_the_results(
    project: tuple[Path, Path],
) -> None:
    root, data = project
    suite = root / "tuned.yaml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            dataset: {{path: {data.name}}}
            models: [{{name: rect, spec: "{data.name}/detector.py:Rectangles"}}]
            perturbations:
              add:
                - {{name: translate, severities: [3], params: {{shift: [8, 0]}}}}
            scoring: {{resamples: 100}}
            output: runs/tuned
            """
        )
    )
    proc = _brittle("run", "--suite", str(suite), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((root / "runs" / "tuned" / "results.json").read_text())
    assert res["suite"]["overrides"] == {"translate": {"shift": [8, 0]}}
    # The detector is exact: a known shift of the pixels keeps every box found, and the
    # ground truth moves with it, so the model is unaffected.
    assert res["models"]["rect"]["perturbations"]["translate"]["consistency"] == 1.0


def test_validate_reads_the_model_configs_a_suite_names(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "frcnn.torchvision.yaml").write_text(
        "arch: fasterrcnn_mobilenet_v3_large_fpn\nweights: ppe.pth\nclass_names: [a, b]\n"
    )
    (tmp_path / "models" / "api.http.yaml").write_text(
        "url: https://api.example.test/m/1\nformat: roboflow\nclass_names: names.txt\nretries: 99\n"
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            version: 1
            dataset: {path: data}
            models:
              - {name: frcnn, spec: models/frcnn.torchvision.yaml}
              - {name: api, spec: models/api.http.yaml}
            """
        )
    )
    proc = _brittle("validate", str(suite))
    # The hosted model's config is invalid: located, and the exit code says bad input.
    assert proc.returncode == 2, proc.stderr
    assert "models[api]:" in proc.stderr
    assert "api.http.yaml: 1 problem" in proc.stderr
    assert "retries: Input should be less than or equal to 20" in proc.stderr
    # Files named inside the configs, resolved relative to each config, are looked for.
    assert f"{tmp_path / 'models' / 'ppe.pth'} does not exist" in proc.stderr
    (tmp_path / "models" / "api.http.yaml").write_text(
        "url: https://api.example.test/m/1\nformat: roboflow\nclass_names: names.txt\n"
    )
    proc = _brittle("validate", str(suite))
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp_path / 'models' / 'names.txt'} does not exist" in proc.stderr
    assert "valid: 2 models" in proc.stdout


def test_init_writes_nothing_when_the_starter_would_be_invalid(tmp_path: Path) -> None:
    out = tmp_path / "brittle.yaml"
    proc = _brittle("init", "--data", "data", "--model", "m[x]=m.onnx", "--out", str(out))
    assert proc.returncode == 2
    assert "models[0].name" in proc.stderr
    assert not out.exists()  # so the next init needs no --force
    proc = _brittle("init", "--data", "data", "--model", "mx=m.onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _brittle("validate", str(out)).returncode == 0
