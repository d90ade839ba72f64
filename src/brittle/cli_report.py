"""The commands that look at finished runs: ``report``, ``show`` and ``serve``.

Registered on the main typer app by :mod:`brittle.cli` (kept apart so that neither module
grows past what one person reads in a sitting).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from brittle.cli import _fail, app, console, err_console

if TYPE_CHECKING:
    from brittle.results import Results

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _results(run_dir: Path) -> Results:
    from brittle.results import Results

    path = run_dir / "results.json"
    if not path.is_file():
        _fail(f"{run_dir}: no results.json; is this a brittle run directory?")
    try:
        return Results.model_validate(json.loads(path.read_text()))
    except ValueError as exc:
        _fail(f"{path}: not a results.json this brittle can read: {exc}")


@app.command("report")
def report_cmd(
    path: Annotated[
        Path, typer.Argument(help="A run directory (or, with --index, a folder of runs).")
    ],
    index: Annotated[
        bool, typer.Option("--index", help="Write an index page of every run under PATH.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the HTML (default: inside PATH).")
    ] = None,
) -> None:
    """Write the self-contained HTML report of a run (or an index of runs)."""
    from brittle.report import write_index, write_report

    if not path.is_dir():
        _fail(f"{path}: not a directory")
    if index:
        written = write_index(path, out)
    else:
        _results(path)
        written = write_report(path, out)
    console.print(f"report: {written}", highlight=False, markup=False)


@app.command("show")
def show_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
) -> None:
    """Print a run's verdict and main tables in the terminal."""
    from brittle.summary import print_clean, print_robustness, print_verdict

    results = _results(run_dir)
    print_clean(console, results)
    print_robustness(console, results)
    print_verdict(console, results)


@app.command("serve")
def serve_cmd(
    directory: Annotated[Path, typer.Argument(help="The folder to serve (runs, reports).")],
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8000,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Only loopback by default; any other address makes "
            "the folder readable from the network and must be asked for explicitly."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve a folder of runs and reports over HTTP (read-only), on 127.0.0.1 by default."""
    import functools
    import http.server

    if not directory.is_dir():
        _fail(f"{directory}: not a directory")
    if host not in LOOPBACK:
        err_console.print(
            f"[yellow]warning:[/] serving {escape(str(directory))} on {escape(host)}: anyone who "
            "can reach this address can read every file under it",
            highlight=False,
            soft_wrap=True,
        )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}; try another --port")
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"serving {directory} at http://{shown}:{server.server_address[1]}/ (Ctrl-C stops)",
        highlight=False,
        markup=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
