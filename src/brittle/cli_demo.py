"""``brittle demo``: the whole story on what ships inside the package, no downloads.

Renders the demo's synthetic validation scenes, runs the embedded detectors (trained by
``scripts/train_demo_models.py``, docs/demo.md) through a suite with their declared
augmentations, writes the report and prints the verdict. Registered on the main app by
:mod:`brittle.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brittle.cli import _fail, _load_models, _print_run, _progress_bar, _RichProgress, app


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/demo"),
    suite: Annotated[
        str, typer.Option("--suite", help="quick, standard, full or imagenet-c.")
    ] = "standard",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per core).", min=1)
    ] = None,
) -> None:
    """Three tiny detectors, the same clean mAP, broken differently: found and explained.

    Scenes drawn by brittle, the standard suite, a report: no dataset, model or network needed.
    """
    from brittle.data import open_dataset
    from brittle.demo import DEMO_IMAGES, REFERENCE, TRAINED_WITH, demo_models, write_demo_dataset
    from brittle.evaluate import RunOptions, run_evaluation
    from brittle.report import write_report
    from brittle.run.suites import builtin_suite
    from brittle.run.worker import usable_cores

    models = demo_models()
    if len(models) < 2:
        _fail("the demo models are missing from this installation (brittle/demo/models)")
    # The folder's name is the dataset's name in the report's title.
    data = out / "demo-scenes"
    if not (data / "data.yaml").is_file():
        write_demo_dataset(data)
    dataset = open_dataset(data)
    if len(dataset) != DEMO_IMAGES:
        _fail(f"{data} holds {len(dataset)} images, not the demo's {DEMO_IMAGES}; delete it")
    cores = usable_cores()
    n_workers = workers or cores
    threads = max(1, cores // n_workers)
    loaded = _load_models(
        [f"{name}={path}" for name, path in models.items()],
        dataset,
        formats=None,
        class_maps=None,
        input_sizes=None,
        conf=0.001,
        iou=None,
        max_det=300,
        threads=threads,
        workers=n_workers,
        trained_with=[f"{m}={','.join(a)}" for m, a in TRAINED_WITH.items() if m in models],
        reference=[f"{m}={r}" for m, r in REFERENCE.items() if m in models],
    )
    options = RunOptions(suite=builtin_suite(suite), workers=n_workers, threads=threads)
    with _progress_bar() as bar:
        results = run_evaluation(dataset, loaded, out, options, progress=_RichProgress(bar))
    report = write_report(out)
    _print_run(results, out, report)
