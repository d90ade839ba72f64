"""Suite files and the CI gate: ``schema``, ``init``, ``validate`` and ``check``.

Registered on the main typer app by :mod:`brittle.cli`. Exit codes (every command): 0 all
checks passed (warnings allowed), 1 a check failed, 2 usage or configuration error, 3
internal error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from brittle.cli import _fail, app, console, err_console
from brittle.errors import ConfigError

if TYPE_CHECKING:
    from brittle.suitefile import SuiteFile

EXIT_CHECK_FAILED = 1


@app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of suite files (point your editor's YAML support at it)."""
    from brittle.suitefile import suite_json_schema

    sys.stdout.write(json.dumps(suite_json_schema(), indent=2, sort_keys=True) + "\n")


@app.command("validate")
def validate_cmd(
    suite: Annotated[Path, typer.Argument(help="A suite file (YAML).")],
) -> None:
    """Check a suite file without running anything: every problem, with its location."""
    from brittle.suitefile import load_suite

    sf = load_suite(suite)
    cells = sf.resolved().cells()
    paths, problems = _paths(sf, suite.parent)
    for p in paths:
        if not p.exists():
            shown = escape(str(p))
            err_console.print(f"[yellow]warning:[/] {shown} does not exist (yet)", highlight=False)
    if problems:
        raise ConfigError("\n".join(problems))
    console.print(
        f"{suite}: valid: {len(sf.models)} models, {len(cells)} perturbation cells, "
        f"{len(sf.checks)} checks",
        highlight=False,
        markup=False,
    )


def _paths(sf: SuiteFile, base: Path) -> tuple[list[Path], list[str]]:
    """The files a suite names, resolved (dataset, model files, class maps, and the files
    named inside hosted-model and torchvision configs), and the problems of those configs.
    """
    out = [resolve(base, sf.dataset.path)]
    problems: list[str] = []
    for m in sf.models:
        spec = model_spec(base, m.spec)
        if spec.lower().endswith(_MODEL_FILES) or ".py:" in spec:
            out.append(Path(spec.rsplit(":", 1)[0] if ".py:" in spec else spec))
        try:
            out += _config_files(Path(spec))
        except ConfigError as exc:
            problems.append(f"models[{m.name}]: {exc}")
        if m.class_map:
            out.append(resolve(base, m.class_map))
    return out, problems


def _config_files(spec: Path) -> list[Path]:
    """Files a model config names (validating the config), for an existing config file."""
    low = spec.name.lower()
    if not spec.is_file():
        return []
    if low.endswith((".http.yaml", ".http.yml")):
        from brittle.models.http_config import load_http_config

        names = load_http_config(spec).class_names
        return [resolve(spec.parent, names)] if isinstance(names, str) else []
    if low.endswith((".torchvision.yaml", ".torchvision.yml")):
        from brittle.models.torchvision_model import load_torchvision_config, weights_is_file

        weights = load_torchvision_config(spec).weights
        return [resolve(spec.parent, weights)] if weights_is_file(weights) else []
    return []


def resolve(base: Path, path: str) -> Path:
    """A path from a suite file: relative to the file's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


#: Model specs that are a file (the rest: module:Name, torchvision:ARCH, plugins' own).
_MODEL_FILES = (
    ".onnx", ".pt", ".http.yaml", ".http.yml", ".torchvision.yaml", ".torchvision.yml",
)  # fmt: skip


def model_spec(base: Path, spec: str) -> str:
    """A model spec from a suite file with its file part made relative to the suite."""
    if spec.lower().endswith(_MODEL_FILES):
        return str(resolve(base, spec))
    module, sep, attr = spec.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{resolve(base, module)}:{attr}"
    return spec


_STARTER = """\
# brittle suite: what to test, how, and what must hold. `brittle validate {name}` checks it,
# `brittle run --suite {name} --check` runs it and gates, `brittle schema` has every key.
version: 1

dataset:
  path: {data}               # folder, data.yaml or COCO json (relative to this file)
  # split: val
  # format: yolo             # yolo | coco | voc | folder (detected when absent)

models:
{models}
scoring:
  seed: 0                    # seed of every perturbation's randomness
  operating_conf: 0.3        # confidence of the label-free consistency measures
  strictness: 0.75           # consistency below this counts an image as affected
  resamples: 1000            # bootstrap resamples behind every interval

perturbations:
  base: standard             # quick | standard | full | imagenet-c
  # remove: [vflip]
  # add:
  #   - {{name: motion_blur, severities: [1, 2, 3, 4, 5]}}

checks:
  - metric: clean_map50_95   # clean accuracy must stay above a floor
    min: 0.0
  - metric: risk             # 0-100, higher = riskier
    max: 60
  - metric: rpc              # relative mAP under each blur perturbation
    family: blur
    min: 0.5
    on_fail: warn            # report, do not fail the build
  # With --baseline RUN_DIR: fail only when the paired interval shows a real loss
  # - {{metric: rpc, family: geometric, no_regression: 0.02}}

# output: runs/ci            # run directory (relative to this file)
"""


@app.command("init")
def init_cmd(
    data: Annotated[str, typer.Option("--data", help="Dataset path (as the suite should say).")],
    model: Annotated[list[str], typer.Option("--model", help="[NAME=]SPEC; repeatable.")],
    out: Annotated[Path, typer.Option("--out", help="Suite file to write.")] = Path("brittle.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter suite for a dataset and models."""
    from brittle.evaluate import parse_model_arg
    from brittle.suitefile import parse_suite

    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to overwrite it")
    lines = []
    for arg in model:
        name, spec = parse_model_arg(arg)
        lines.append(f"  - name: {json.dumps(name)}\n    spec: {json.dumps(spec)}")
        lines.append("    # class_map: coco_to_mine.yaml   # model class -> dataset class")
        lines.append("    # trained_with: [blur, noise, hflip]\n    # reference: baseline")
    text = _STARTER.format(name=out.name, data=json.dumps(data), models="\n".join(lines) + "\n")
    parse_suite(text, str(out))  # a starter that would not validate is not written
    out.write_text(text)
    console.print(
        f"wrote {out}; edit it, then: brittle validate {out}", highlight=False, markup=False
    )


def apply_checks(run_dir: Path, sf: SuiteFile, baseline: Path | None, junit: Path | None) -> int:
    """Evaluate the suite's checks on a run, print them, write JUnit; the exit code."""
    from brittle.checks import exit_code, github_annotations, junit_xml, load_run, run_checks

    if not sf.checks:
        console.print("no checks in the suite: nothing to gate", highlight=False)
        return 0
    outcomes = run_checks(
        sf.checks, load_run(run_dir), load_run(baseline) if baseline is not None else None
    )
    table = Table(title="checks", title_justify="left")
    for col in ("", "check", "result"):
        table.add_column(col)
    marks = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
    for o in outcomes:
        detail = o.message + "".join(f"\n  {d}" for d in o.details[:5])
        if len(o.details) > 5:
            detail += f"\n  ... and {len(o.details) - 5} more"
        table.add_row(marks[o.status], Text(o.label), Text(detail))
    console.print(table)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(outcomes))
        console.print(f"JUnit: {junit}", highlight=False, markup=False)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(outcomes):
            sys.stdout.write(line + "\n")
    code = exit_code(outcomes)
    failed = sum(o.status == "fail" for o in outcomes)
    warned = sum(o.status == "warn" for o in outcomes)
    summary = f"{len(outcomes) - failed - warned} passed, {warned} warned, {failed} failed"
    console.print(("[bold red]" if code else "[bold green]") + summary + "[/]", highlight=False)
    return code


@app.command("check")
def check_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (of brittle run).")],
    suite: Annotated[
        Path, typer.Option("--suite", help="The suite file whose checks to apply.")
    ] = Path("brittle.yaml"),
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="An earlier run to compare with (no_regression)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML (one test case per check).")
    ] = None,
) -> None:
    """Gate a run on the suite's checks: exit 0 all passed, 1 a check failed."""
    from brittle.suitefile import load_suite

    if not (run_dir / "results.json").is_file():
        _fail(f"{run_dir}: no results.json; is this a brittle run directory?")
    code = apply_checks(run_dir, load_suite(suite), baseline, junit)
    if code:
        raise typer.Exit(EXIT_CHECK_FAILED)
