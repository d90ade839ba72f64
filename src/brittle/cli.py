"""The ``brittle`` command line (typer + rich).

Heavy imports (onnxruntime, OpenCV, the metrics engine) happen inside the
commands, so ``brittle --version`` and ``--help`` answer instantly.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from brittle._version import __version__
from brittle.errors import BrittleError

if TYPE_CHECKING:
    from brittle.data.base import Dataset
    from brittle.evaluate import LoadedModel
    from brittle.results import Results
    from brittle.run.suites import Suite

app = typer.Typer(
    name="brittle",
    help="Find where a computer-vision model breaks before production does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_USAGE = 2
EXIT_INTERNAL = 3


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"brittle {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Find where a computer-vision model breaks before production does."""


def _per_model(values: list[str] | None, option: str, names: list[str]) -> dict[str | None, str]:
    """Parse repeatable ``[NAME=]VALUE`` options: a bare value applies to every model."""
    out: dict[str | None, str] = {}
    for v in values or []:
        name, sep, rest = v.partition("=")
        if sep and name in names:
            out[name] = rest
        elif sep and "/" not in name and "." not in name:
            _fail(f"{option} {v}: no model named {name!r} (models: {', '.join(names)})")
        else:
            out[None] = v
    return out


def _pick(table: dict[str | None, str], name: str) -> str | None:
    return table.get(name, table.get(None))


def _print_issues(dataset: Dataset) -> None:
    for line in dataset.issues.summary():
        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _load_models(
    specs: list[str],
    dataset: Dataset,
    *,
    formats: list[str] | None,
    class_maps: list[str] | None,
    input_sizes: list[str] | None,
    conf: float,
    iou: float | None,
    max_det: int,
    threads: int | None = None,
    workers: int = 1,
    trained_with: list[str] | None = None,
    reference: list[str] | None = None,
) -> list[LoadedModel]:
    from brittle.augmentations import parse_augmentations
    from brittle.evaluate import LoadedModel, parse_model_arg
    from brittle.models import load_predictor
    from brittle.models.classmap import build_label_map, load_class_map
    from brittle.models.http_config import is_url
    from brittle.run.worker import ModelRecipe

    parsed = [parse_model_arg(s) for s in specs]
    names = [n for n, _ in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        _fail(f"two models are called {dupes[0]!r}; name them: --model NAME=SPEC")
    fmt = _per_model(formats, "--format", names)
    cmap = _per_model(class_maps, "--class-map", names)
    size = _per_model(input_sizes, "--input-size", names)
    augs = _per_model(trained_with, "--trained-with", names)
    refs = _per_model(reference, "--reference", names)
    for given in refs.values():
        if given not in names:
            _fail(f"--reference {given}: no model named {given!r} (models: {', '.join(names)})")
    models = []
    for name, spec in parsed:
        options: dict[str, Any] = {"conf": conf, "max_det": max_det}
        if iou is not None:
            options["iou"] = iou
        if (f := _pick(fmt, name)) is not None:
            options["format"] = f
        if (s := _pick(size, name)) is not None:
            try:
                options["input_size"] = int(s)
            except ValueError:
                _fail(f"--input-size {s}: expected a whole number of pixels, e.g. 640")
        mapping = None
        if (cm := _pick(cmap, name)) is not None:
            mapping = load_class_map(Path(cm))
        if is_url(spec):
            # `--model URL` answers with class names: take them to be the dataset's.
            if mapping is not None:
                _fail(
                    f"--class-map {cm}: a model given by its URL is taken to use the dataset's "
                    "class names; describe it in NAME.http.yaml with its own class_names to "
                    "map them (docs/models.md)"
                )
            options["class_names"] = list(dataset.class_names)
        predictor, kind = load_predictor(spec, threads=threads, **options)
        target = list(dataset.class_names)
        if not target:
            # Unlabeled images: compare predictions in the mapped space, or the model's own.
            target = sorted(set(mapping.values())) if mapping else list(predictor.class_names)
        label_map = build_label_map(list(predictor.class_names), target, mapping)
        declared = _pick(augs, name)
        ref = _pick(refs, name)
        if ref == name:
            ref = None  # a bare --reference A applies to every model but A itself
        if declared is not None and ref is None:
            _fail(
                f"--trained-with {name}=...: say which model was trained without these "
                f"augmentations, e.g. --reference {name}=BASELINE"
            )
        models.append(
            LoadedModel(
                name, spec, kind, predictor, label_map, mapping,
                # A hosted model's limits are shared by the worker processes calling it.
                recipe=ModelRecipe(
                    spec,
                    {**options, "share": workers} if kind == "http" and workers > 1 else options,
                    kind,
                ),
                trained_with=tuple(parse_augmentations(declared)) if declared else (),
                reference=ref,
            )
        )  # fmt: skip
    return models


def _progress_bar() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task: Any) -> Any:
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} img/s" if speed else "… img/s", style="cyan")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


class _RichProgress:
    """A run's phases as successive bars of one rich Progress."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[-1].total)
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if n:
            self.bar.advance(self.task, n)


def eval_cmd(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset: folder, data.yaml or COCO json."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="[NAME=]SPEC: a .onnx file, an Ultralytics .pt, a hosted model's .http.yaml, "
            "torchvision:ARCH or a .torchvision.yaml, path/to/file.py:Name or module:Name "
            "(docs/models.md). Repeatable.",
        ),
    ] = None,
    class_map: Annotated[
        list[str] | None,
        typer.Option("--class-map", help="[NAME=]FILE: YAML of model class -> dataset class."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/eval-<time>).")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Dataset split: train, val or test.")
    ] = None,
    data_format: Annotated[
        str | None,
        typer.Option("--data-format", help="Dataset format: yolo, coco, voc, folder (auto)."),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", help="[NAME=]LAYOUT of ONNX output: yolov5, yolov8, yolox, e2e."),
    ] = None,
    input_size: Annotated[
        list[str] | None, typer.Option("--input-size", help="[NAME=]PIXELS model input size.")
    ] = None,
    conf: Annotated[float, typer.Option(help="Evaluation confidence threshold.")] = 0.001,
    iou: Annotated[
        float | None, typer.Option(help="NMS IoU threshold (default: the family's).")
    ] = None,
    max_det: Annotated[int, typer.Option(help="Maximum detections per image.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 8,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat bad labels and unreadable images as errors.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first model error.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json to stdout.")] = False,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Perturbation suite: quick, standard, full, imagenet-c, or a suite file "
            "(YAML: data, models, perturbations, scoring, checks) (run: default standard).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every perturbation's randomness.")] = 0,
    operating_conf: Annotated[
        float, typer.Option(help="Confidence of the label-free consistency measures.")
    ] = 0.3,
    strictness: Annotated[
        float, typer.Option(help="Consistency below this counts an image as affected.")
    ] = 0.75,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: one per core; 1 runs in this process).",
            min=1,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N images (dataset order).", min=1)
    ] = None,
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples behind every interval.", min=10)
    ] = 1000,
    trained_with: Annotated[
        list[str] | None,
        typer.Option(
            "--trained-with",
            help="NAME=AUG,AUG...: training augmentations of a model (e.g. "
            "B=blur,noise,hflip), judged against its --reference.",
        ),
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference",
            help="[NAME=]REF: the model trained without NAME's augmentations.",
        ),
    ] = None,
    gallery: Annotated[
        int, typer.Option(help="Failure gallery: images per model and perturbation.", min=0)
    ] = 2,
    check: Annotated[
        bool,
        typer.Option("--check", help="Then apply the suite file's checks (exit 1 on failure)."),
    ] = False,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="With --check: an earlier run to compare.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="With --check: write JUnit XML here.")
    ] = None,
) -> None:
    """Evaluate models: exact COCO mAP per model and class (eval), plus robustness under a
    suite of perturbations (run)."""
    import dataclasses

    from brittle.data import open_dataset
    from brittle.evaluate import RESULTS_FILE, RunOptions, run_evaluation
    from brittle.results import Settings
    from brittle.run.scoring import ScoreOptions
    from brittle.run.suites import builtin_suite
    from brittle.run.worker import usable_cores

    suite_file = None
    if suite is not None and (suite.endswith((".yaml", ".yml")) or Path(suite).is_file()):
        from brittle.cli_suite import model_spec, resolve
        from brittle.suitefile import load_suite

        if data is not None or model:
            _fail(
                f"--suite {suite} names the dataset and models; drop --data/--model "
                "(or drop the suite file)"
            )
        suite_file = load_suite(Path(suite))
        base = Path(suite).parent
        sf = suite_file
        data = resolve(base, sf.dataset.path)
        split, data_format = sf.dataset.split, sf.dataset.format
        model = [f"{m.name}={model_spec(base, m.spec)}" for m in sf.models]
        class_map = [f"{m.name}={resolve(base, m.class_map)}" for m in sf.models if m.class_map]
        fmt = [f"{m.name}={m.format}" for m in sf.models if m.format]
        input_size = [f"{m.name}={m.input_size}" for m in sf.models if m.input_size]
        trained_with = [f"{m.name}={','.join(m.trained_with)}" for m in sf.models if m.trained_with]
        reference = [f"{m.name}={m.reference}" for m in sf.models if m.reference]
        seed, resamples = sf.scoring.seed, sf.scoring.resamples
        operating_conf, strictness = sf.scoring.operating_conf, sf.scoring.strictness
        conf, iou, max_det = sf.scoring.conf, sf.scoring.iou, sf.scoring.max_det
        if out is None and sf.output is not None:
            out = resolve(base, sf.output)
    elif check:
        _fail("--check needs a suite file: --suite brittle.yaml (its checks are applied)")
    if data is None or not model:
        _fail("give --data and --model (or a suite file: --suite brittle.yaml)")
    chosen: Suite | None
    if suite_file is not None:
        chosen = suite_file.resolved()
    else:
        suite_name = suite or ("standard" if ctx.info_name == "run" else None)
        chosen = builtin_suite(suite_name) if suite_name else None
    dataset = open_dataset(data, format=data_format, split=split, strict=strict)
    if len(dataset) == 0:
        _fail(f"{data}: the dataset has no images")
    if limit is not None:
        dataset = dataclasses.replace(dataset, records=dataset.records[:limit])
    _print_issues(dataset)
    cores = usable_cores()
    n_workers = workers or cores
    threads = max(1, cores // n_workers)
    models = _load_models(
        model,
        dataset,
        formats=fmt,
        class_maps=class_map,
        input_sizes=input_size,
        conf=conf,
        iou=iou,
        max_det=max_det,
        threads=threads,
        workers=n_workers,
        trained_with=trained_with,
        reference=reference,
    )
    out_dir = out or Path("runs") / f"{ctx.info_name}-{datetime.now():%Y%m%d-%H%M%S}"
    settings = Settings(conf_threshold=conf, nms_iou=iou, max_det=max_det)
    options = RunOptions(
        suite=chosen,
        seed=seed,
        scoring=ScoreOptions(conf=operating_conf, strictness=strictness, resamples=resamples),
        batch_size=batch_size,
        workers=n_workers,
        threads=threads,
        fail_fast=fail_fast,
        gallery=gallery,
        settings=settings,
    )
    with _progress_bar() as bar:
        try:
            results = run_evaluation(dataset, models, out_dir, options, progress=_RichProgress(bar))
        except KeyboardInterrupt:
            bar.stop()
            err_console.print(
                f"[yellow]interrupted.[/] Finished work is cached in {escape(str(out_dir))}; "
                "run the same command (with the same --out) to resume.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
    from brittle.report import write_report

    report = write_report(out_dir)
    if as_json:
        sys.stdout.write((out_dir / RESULTS_FILE).read_text())
    else:
        _print_run(results, out_dir, report)
    if check and suite_file is not None:
        from brittle.cli_suite import EXIT_CHECK_FAILED, apply_checks

        if apply_checks(out_dir, suite_file, baseline, junit):
            raise typer.Exit(EXIT_CHECK_FAILED)


def _print_run(results: Results, out_dir: Path, report: Path) -> None:
    from brittle.evaluate import RESULTS_FILE
    from brittle.summary import print_clean, print_robustness, print_verdict

    if results.dataset.skipped_images:
        shown = escape(", ".join(results.dataset.skipped_images[:5]))
        more = len(results.dataset.skipped_images) - 5
        err_console.print(
            f"[yellow]warning:[/] {len(results.dataset.skipped_images)} images could not be "
            f"read and were skipped: {shown}{f' and {more} more' if more > 0 else ''}",
            highlight=False,
            soft_wrap=True,
        )
    print_clean(console, results)
    print_robustness(console, results)
    print_verdict(console, results)
    console.print(f"results: {out_dir / RESULTS_FILE}", highlight=False, markup=False)
    console.print(f"report:  {report}", highlight=False, markup=False)


app.command(
    "eval", help="Evaluate models on clean images: exact COCO mAP per model and per class."
)(eval_cmd)
app.command(
    "run",
    help="Evaluate models on clean images and under a suite of perturbations (default: "
    "standard): rPC, consistency and affected share per perturbation and family.",
)(eval_cmd)


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (of brittle run).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the merged results.json into this directory."),
    ] = None,
    trained_with: Annotated[
        list[str] | None,
        typer.Option("--trained-with", help="NAME=AUG,AUG...: a model's training augmentations."),
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option("--reference", help="NAME=REF: the model trained without them."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the merged results.json.")] = False,
) -> None:
    """Compare models across runs over the same images: paired intervals, ranking, verdicts."""
    import json

    from brittle.augmentations import parse_augmentations
    from brittle.compare import compare_runs, write_comparison
    from brittle.summary import print_robustness, print_verdict

    def pairs(values: list[str] | None, option: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for v in values or []:
            name, sep, rest = v.partition("=")
            if not sep or not name or not rest:
                _fail(f"{option} {v}: expected NAME=VALUE")
            out[name] = rest
        return out

    augs = {k: parse_augmentations(v) for k, v in pairs(trained_with, "--trained-with").items()}
    results = compare_runs(runs, trained_with=augs, reference=pairs(reference, "--reference"))
    if out is not None:
        from brittle.report import write_report

        path = write_comparison(results, out)
        report = write_report(out)
    if as_json:
        sys.stdout.write(json.dumps(results.model_dump(mode="json"), indent=2, sort_keys=True))
        sys.stdout.write("\n")
        return
    print_robustness(console, results)
    print_verdict(console, results)
    if out is not None:
        console.print(f"comparison: {path}\nreport:     {report}", highlight=False, markup=False)


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by brittle.")],
    model: Annotated[str, typer.Option("--model", help="Model name in the run.")],
    coco_gt: Annotated[Path, typer.Option("--coco-gt", help="Where to write the ground truth.")],
    coco_results: Annotated[
        Path, typer.Option("--coco-results", help="Where to write the model's predictions.")
    ],
) -> None:
    """Write a run's ground truth and one model's predictions as COCO JSON (for pycocotools)."""
    from brittle.export import export_coco

    n_images, n_dets = export_coco(run_dir, model, coco_gt, coco_results)
    console.print(
        f"wrote {coco_gt} ({n_images} images) and {coco_results} ({n_dets} detections)",
        highlight=False,
        markup=False,
    )


def _read_json(path: Path, what: str) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        _fail(f"{path}: {what} file not found")
    except json.JSONDecodeError as exc:
        _fail(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")


@app.command("score")
def score_cmd(
    gt: Annotated[Path, typer.Option("--gt", help="COCO instances JSON (ground truth).")],
    predictions: Annotated[
        Path, typer.Option("--predictions", help="COCO results JSON (a list of detections).")
    ],
    per_class: Annotated[
        bool, typer.Option("--per-class", help="Also print AP per class.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    max_dets: Annotated[
        str, typer.Option("--max-dets", help="Three detection limits, e.g. 1,10,100.")
    ] = "1,10,100",
) -> None:
    """Score precomputed COCO-format predictions: the 12 COCO stats, equal to pycocotools."""
    import json

    from brittle.metrics.coco import COCO_STAT_NAMES, evaluate_coco
    from brittle.summary import fmt

    try:
        md = tuple(int(x) for x in max_dets.split(","))
    except ValueError:
        _fail(f"--max-dets {max_dets}: expected three whole numbers, e.g. 1,10,100")
    if len(md) != 3:
        _fail(f"--max-dets {max_dets}: expected three whole numbers, e.g. 1,10,100")
    gt_doc = _read_json(gt, "ground-truth")
    dt_doc = _read_json(predictions, "predictions")
    if isinstance(dt_doc, dict) and isinstance(dt_doc.get("annotations"), list):
        dt_doc = dt_doc["annotations"]
    if not isinstance(gt_doc, dict) or not isinstance(dt_doc, list):
        _fail(
            f"expected {gt} to be a COCO instances object and {predictions} a list of "
            "detections ({image_id, category_id, bbox, score})"
        )
    ev = evaluate_coco(gt_doc, dt_doc, max_dets=(md[0], md[1], md[2]))
    cats = sorted(gt_doc.get("categories", []), key=lambda c: c["id"])
    names = [str(c.get("name", c["id"])) for c in cats]
    ap, ap50 = ev.per_class_ap(), ev.per_class_ap50()
    if as_json:
        doc: dict[str, Any] = {
            name: float(v) for name, v in zip(COCO_STAT_NAMES, ev.stats, strict=True)
        }
        if per_class:
            doc["per_class"] = {names[c]: {"ap50_95": ap[c], "ap50": ap50.get(c)} for c in ap}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    labels = {
        "map50_95": "AP @[.50:.95] all", "map50": "AP @.50", "map75": "AP @.75",
        "map_small": "AP small", "map_medium": "AP medium", "map_large": "AP large",
        "ar1": f"AR maxDets={md[0]}", "ar10": f"AR maxDets={md[1]}",
        "ar100": f"AR maxDets={md[2]}", "ar_small": "AR small", "ar_medium": "AR medium",
        "ar_large": "AR large",
    }  # fmt: skip
    for name, v in zip(COCO_STAT_NAMES, ev.stats, strict=True):
        table.add_row(labels[name], f"{v:.4f}" if v >= 0 else "—")
    console.print(table)
    if per_class:
        pc = Table()
        pc.add_column("class")
        pc.add_column("AP50-95", justify="right")
        pc.add_column("AP50", justify="right")
        for c in ap:
            pc.add_row(Text(names[c]), fmt(ap[c]), fmt(ap50.get(c)))
        console.print(pc)


@app.command("data")
def data_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset: folder, data.yaml or COCO json.")],
    split: Annotated[str | None, typer.Option("--split")] = None,
    data_format: Annotated[str | None, typer.Option("--data-format")] = None,
    strict: Annotated[bool, typer.Option("--strict")] = False,
) -> None:
    """Check a dataset: what was found and every problem, without running a model."""
    from brittle.data import open_dataset

    dataset = open_dataset(data, format=data_format, split=split, strict=strict)
    split_note = f", split {dataset.split}" if dataset.split else ""
    console.print(
        f"[bold]{escape(dataset.name)}[/] ({escape(dataset.format + split_note)}): "
        f"{len(dataset)} images at {escape(str(dataset.root))}",
        highlight=False,
    )
    table = Table()
    table.add_column("class")
    table.add_column("boxes", justify="right")
    counts = [0] * len(dataset.class_names)
    for r in dataset.records:
        if r.targets is not None:
            for c in r.targets.labels.tolist():
                counts[c] += 1
    for name, n in zip(dataset.class_names, counts, strict=True):
        table.add_row(Text(name), str(n))
    console.print(table)
    if not dataset.issues:
        console.print("no problems found")
    for kind, n in dataset.issues.counts().items():
        console.print(f"[yellow]{kind}[/]: {n}", highlight=False)
        for issue in dataset.issues.examples(kind):
            console.print(f"  {issue}", highlight=False, soft_wrap=True, markup=False)


@app.command("perturbations")
def perturbations_cmd(
    preview: Annotated[
        Path | None,
        typer.Option("--preview", help="Render IMAGE under every perturbation and severity."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the preview grid (PNG or JPEG).")
    ] = Path("perturbations.png"),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Perturbation or family names to include. Repeatable."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="YOLO label file for IMAGE: draw its boxes (they move)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cell: Annotated[int, typer.Option(help="Thumbnail size in pixels.")] = 160,
) -> None:
    """List the perturbation catalogue by family, or render a preview grid of an image."""
    from brittle.perturbations import catalogue

    groups = catalogue()
    if preview is None:
        total = sum(len(v) for v in groups.values())
        console.print(f"[bold]{total} perturbations[/] in {len(groups)} families, severities 1-5")
        for family, classes in groups.items():
            table = Table(title=f"{family}", title_justify="left", show_header=False)
            table.add_column("name", style="bold")
            table.add_column("description")
            table.add_column("notes", style="dim")
            for cls in classes:
                notes = []
                if cls.imagenet_c:
                    notes.append(f"ImageNet-C {cls.imagenet_c}")
                if cls.geometric:
                    notes.append("moves boxes")
                if not cls.graded:
                    notes.append("same at every severity")
                table.add_row(cls.name, cls.description, ", ".join(notes))
            console.print(table)
        return
    _render_preview(preview, out, only, labels, seed, cell, groups)


def _render_preview(
    image_path: Path,
    out: Path,
    only: list[str] | None,
    labels: Path | None,
    seed: int,
    cell: int,
    groups: dict[str, list[Any]],
) -> None:
    import cv2
    import numpy as np

    from brittle.data.images import decode_image
    from brittle.perturbations import get_perturbation
    from brittle.perturbations.preview import preview_grid

    image = decode_image(image_path)
    names: list[str] = []
    for sel in only or [c.name for v in groups.values() for c in v]:
        if sel in groups:
            names += [c.name for c in groups[sel]]
        else:
            names.append(get_perturbation(sel).name)
    boxes = None
    if labels is not None:
        from brittle.data.base import IssueLog
        from brittle.data.yolo import parse_label_file

        if not labels.is_file():
            _fail(f"{labels}: label file not found")
        gt = parse_label_file(labels, image.shape[1], image.shape[0], None, IssueLog())
        boxes = None if gt is None else np.asarray(gt.boxes)
    grid = preview_grid(image, names, boxes=boxes, seed=seed, cell=cell)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if out.suffix.lower() in {".jpg", ".jpeg"} else []
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), params):
        _fail(f"{out}: could not write the image (use a .png or .jpg name)")
    console.print(
        f"wrote {out}: {len(names)} perturbations x severities 1-5 of {image_path}",
        highlight=False,
        markup=False,
    )


# report, show and serve live in their own module; importing it registers them on `app`.
from brittle import cli_demo, cli_report, cli_suite  # noqa: E402, F401


def main() -> None:
    """Console entry point: brittle errors become one clear line and exit code 2."""
    try:
        app(standalone_mode=True)
    except BrittleError as exc:
        message = escape(str(exc))  # messages quote user text: "models[api]" is no markup
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a bug in brittle: say so, keep the traceback for the report
        import traceback

        traceback.print_exc()
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(please report this)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
