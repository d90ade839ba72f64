"""Static HTML reports: one self-contained page per run, and an index of runs.

``write_report(Path("runs/first"))`` writes ``runs/first/report.html``;
``write_index(Path("runs"))`` writes ``runs/index.html``, listing every run under ``runs``.
``docs/report.md`` describes what the page shows and how it stays safe with hostile names.
"""

from __future__ import annotations

from brittle.report.page import ReportError, render_index, render_report, write_index, write_report

__all__ = ["ReportError", "render_index", "render_report", "write_index", "write_report"]
