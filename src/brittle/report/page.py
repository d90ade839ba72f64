"""The run report (``report.html``) and the runs index (``index.html``): one static file each.

A report holds everything inline: CSS and JS in the page, images as ``data:`` URIs, charts
as SVG drawn by :mod:`brittle.report.charts`. Nothing is fetched, so the file can be mailed,
archived or hosted anywhere, and a Content-Security-Policy forbids any request at all.

Every user-supplied string (dataset, class, model and image names, specs) reaches the page
only through Jinja2's autoescaping or :func:`markupsafe.escape`; the one script carries a
nonce derived from the page's own content, so the same run gives the same bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, ValidationError

from brittle.errors import BrittleError
from brittle.perturbations.base import FAMILIES
from brittle.report import charts
from brittle.results import CI, Comparison, Difference, Results
from brittle.run.aggregate import UNRATED, listing

__all__ = ["ReportError", "render_index", "render_report", "write_index", "write_report"]

RESULTS = "results.json"
RUN_INFO = "run.json"
REPORT = "report.html"
INDEX = "index.html"
_MAX_IMAGE_BYTES = 8 << 20
_NONCE_SLOT = "brittle-nonce-slot"


class ReportError(BrittleError, ValueError):
    """A run directory cannot be reported on (no or unreadable ``results.json``)."""


# --------------------------------------------------------------------- inputs


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GalleryEntry(_Loose):
    """One before/after pair of ``gallery/index.json``."""

    model: str
    perturbation: str
    family: str = ""
    severity: int
    rank: int = 0
    image: str
    file: str
    consistency: float | None = None
    n_clean: int | None = None
    n_perturbed: int | None = None
    lost: int = 0
    gained: int = 0
    changed: int = 0
    f1_clean: float | None = None
    f1_perturbed: float | None = None


class PreviewPerturbation(_Loose):
    family: str = ""
    severities: dict[str, str]


class PreviewIndex(_Loose):
    """``preview/index.json``: one image under every (perturbation, severity)."""

    image: str
    clean: str
    perturbations: dict[str, PreviewPerturbation] = {}


@dataclass(frozen=True)
class Image:
    uri: str
    width: int
    height: int


def _image(base: Path, rel: str, inside: Path | None = None) -> Image | None:
    """``base/rel`` as a data URI when it is a JPEG inside ``inside`` (default ``base``).

    Paths come from index files in the run directory: nothing outside its gallery and
    preview folders is read, symlinks are followed before checking, and only JPEGs embed.
    """
    try:
        path = (base / rel).resolve()
        if not path.is_relative_to((inside or base).resolve()) or not path.is_file():
            return None
        if path.stat().st_size > _MAX_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            w, h = im.size
            if im.format != "JPEG":
                return None
    except (OSError, ValueError):
        return None
    return Image("data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), w, h)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_results(run_dir: Path) -> Results:
    path = run_dir / RESULTS
    if not path.is_file():
        raise ReportError(f"{path}: not found; is {run_dir} a run directory of brittle?")
    try:
        return Results.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ReportError(f"{path}: cannot be read: {exc}") from exc


def _gallery(run_dir: Path) -> list[tuple[GalleryEntry, Image]]:
    raw = _read_json(run_dir / "gallery" / "index.json")
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            entry = GalleryEntry.model_validate(item)
        except ValidationError:
            continue
        img = _image(run_dir / "gallery", entry.file)
        if img is not None:
            out.append((entry, img))
    return out


def _preview(run_dir: Path, groups: Mapping[str, list[str]]) -> dict[str, Any] | None:
    """The preview thumbnails by family, in catalogue order, severities ascending."""
    try:
        index = PreviewIndex.model_validate(_read_json(run_dir / "preview" / "index.json"))
    except ValidationError:
        return None
    folder = run_dir / "preview"
    clean = _image(run_dir, index.clean, folder)
    if clean is None:
        return None
    fam_of = {p: f for f, ps in groups.items() for p in ps}
    families: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(index.perturbations):
        thumbs = []
        for sev, rel in index.perturbations[name].severities.items():
            img = _image(run_dir, rel, folder)
            if img is not None and sev.isdigit():
                thumbs.append((int(sev), img))
        if thumbs:
            fam = fam_of.get(name) or index.perturbations[name].family or "other"
            families.setdefault(fam, []).append({"name": name, "thumbs": sorted(thumbs)})
    return {
        "image": index.image,
        "clean": clean,
        "families": [
            {"family": f, "title": FAMILIES.get(f, ""), "rows": families[f]}
            for f in charts.family_order(list(families))
        ],
    }


# --------------------------------------------------------------------- formatting


def f3(v: float | None, digits: int = 3) -> str:
    """A metric, '—' when undefined (None or COCO's -1).

    >>> f3(0.12345), f3(None), f3(-1.0), f3(12.34, 1)
    ('0.123', '—', '—', '12.3')
    """
    return "—" if v is None or v < 0 else f"{v:.{digits}f}"


def _num(v: float, digits: int) -> str:
    """A number for text: a real minus sign, and no '-0.000'."""
    text = f"{v:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "\u2212")


def ci_text(ci: CI, digits: int = 3) -> str:
    """An interval as text, with real minus signs.

    >>> ci_text((-0.1, 0.25)), ci_text((-0.0001, 0.5), 2), ci_text(None)
    ('[\u22120.100, 0.250]', '[0.00, 0.50]', '')
    """
    return "" if ci is None else f"[{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def signed(v: float, digits: int = 3) -> str:
    """A signed difference as text.

    >>> signed(0.5), signed(-0.25, 2), signed(-0.0001)
    ('+0.500', '\u22120.25', '+0.000')
    """
    text = _num(v, digits)
    return text if text.startswith("\u2212") else "+" + text


def _flip(ci: CI) -> CI:
    return None if ci is None else (-ci[1], -ci[0])


METRIC_NAMES = {"rpc": "rPC", "consistency": "consistency", "risk": "risk", "map50_95": "mAP50-95"}


# --------------------------------------------------------------------- view model


@dataclass(frozen=True)
class Check:
    ok: bool
    text: str


@dataclass(frozen=True)
class DiffRow:
    """One paired difference as shown: label, values, interval and significance."""

    label: str
    kind: str  # "clean" | "risk" | "family" | "perturbation"
    metric: str
    a: str
    b: str
    difference: str
    ci: str
    better: str | None
    bar: Markup


def _diff_row(
    label: str, kind: str, d: Difference, span: float, models: Mapping[str, charts.ModelView]
) -> DiffRow:
    digits = 1 if d.metric == "risk" else 3
    better = models.get(d.better) if d.better is not None else None
    colour = better.colour if better is not None else "#9aa3af"
    return DiffRow(
        label=label,
        kind=kind,
        metric=METRIC_NAMES.get(d.metric, d.metric),
        a=f3(d.a, digits),
        b=f3(d.b, digits),
        difference=signed(d.difference, digits),
        ci=ci_text(d.ci, digits),
        better=d.better,
        bar=charts.diff_bar(d.difference, d.ci, span=span, colour=colour),
    )


def _span(diffs: Sequence[Difference]) -> float:
    ends = [abs(v) for d in diffs for v in (d.difference, *(d.ci or ()))]
    return max(ends, default=1.0) or 1.0


def _comparison_rows(
    c: Comparison, fams: Mapping[str, list[str]], models: Mapping[str, charts.ModelView]
) -> list[DiffRow]:
    rows = []
    if c.clean is not None:
        rows.append(_diff_row("clean mAP50-95", "clean", c.clean, _span([c.clean]), models))
    if c.risk is not None:
        rows.append(_diff_row("risk score", "risk", c.risk, _span([c.risk]), models))
    span = _span([*c.families.values(), *c.perturbations.values()])
    for f, perts in fams.items():
        if f in c.families:
            rows.append(_diff_row(f, "family", c.families[f], span, models))
        rows.extend(
            _diff_row(p, "perturbation", c.perturbations[p], span, models)
            for p in perts
            if p in c.perturbations
        )
    return rows


@dataclass(frozen=True)
class Recommendation:
    best: str | None
    recommended: bool
    headline: str
    summary: str
    checks: list[Check]


def recommendation(results: Results) -> Recommendation | None:
    """Mirror of :func:`brittle.summary.print_verdict`: the recommended model, or what
    stops one from being recommended."""
    rated = [n for n in results.ranking if results.models[n].risk is not None]
    if not rated:
        return None
    if len(rated) == 1:
        risk = results.models[rated[0]].risk
        assert risk is not None
        summary = f"Only one model was rated: risk score {risk.value:.1f}."
        return Recommendation(rated[0], False, rated[0], summary, [])
    best, rest = rated[0], rated[1:]
    mine = [c for c in results.comparisons if c.a == best and c.b in rest]
    firm = [c.b for c in mine if c.risk is not None and c.risk.better == best]
    tied = [c for c in mine if c.b not in firm]
    more_accurate = [c for c in mine if c.clean is not None and c.clean.better == c.b]
    checks = []
    if len(firm) == len(rest):
        checks.append(Check(True, f"risk significantly lower than {listing(rest)}"))
    for c in tied:
        d = c.risk
        how = f" ({signed(d.difference, 1)} {ci_text(d.ci, 1)})" if d is not None else ""
        checks.append(Check(False, f"risk not significantly lower than {c.b}'s{how}"))
    if not more_accurate:
        checks.append(Check(True, "no other model is significantly more accurate on clean images"))
    for c in more_accurate:
        d = c.clean
        assert d is not None
        checks.append(
            Check(
                False,
                f"{c.b} is significantly more accurate on clean images: mAP50-95 "
                f"{d.b:.3f} vs {d.a:.3f} ({signed(-d.difference)} {ci_text(_flip(d.ci))})",
            )
        )
    risk = results.models[best].risk
    assert risk is not None
    lowest = f"{best} has the lowest risk score ({risk.value:.1f})"
    if len(firm) == len(rest) and not more_accurate:
        return Recommendation(
            best, True, f"Recommended: {best}",
            f"{lowest}, significantly lower than {listing(rest)}, without being "
            "significantly less accurate.", checks,
        )  # fmt: skip
    if len(firm) == len(rest):
        others = listing([c.b for c in more_accurate])
        return Recommendation(
            best, False, "A trade-off: robustness or accuracy",
            f"{lowest}, but {others} {'is' if len(more_accurate) == 1 else 'are'} "
            "significantly more accurate on clean images.", checks,
        )  # fmt: skip
    others = listing([c.b for c in tied])
    return Recommendation(
        best, False, "No clear winner",
        f"{lowest}, but not significantly lower than {others} on these images: "
        "see where they differ below.", checks,
    )  # fmt: skip


@dataclass(frozen=True)
class Win:
    """One family where one model is significantly more robust than another."""

    winner: str
    loser: str
    family: str
    metric: str
    difference: str  # winner minus loser
    ci: str


def _significant(results: Results) -> tuple[list[Win], list[str]]:
    """Every (pair, family) with a significant difference, largest first; and the ties."""
    wins: list[Win] = []
    ties: list[str] = []
    for c in results.comparisons:
        for winner, loser, sign in ((c.a, c.b, 1.0), (c.b, c.a, -1.0)):
            won = sorted(
                ((f, d) for f, d in c.families.items() if d.better == winner),
                key=lambda kv: (-abs(kv[1].difference), kv[0]),
            )
            wins.extend(
                Win(winner, loser, f, METRIC_NAMES.get(d.metric, d.metric),
                    signed(sign * d.difference), ci_text(d.ci if sign > 0 else _flip(d.ci)))
                for f, d in won
            )  # fmt: skip
        tie = [f for f in charts.family_order(list(c.families)) if c.families[f].better is None]
        if tie:
            ties.append(f"{c.a} vs {c.b}: no significant difference on {', '.join(tie)}")
    return wins, ties


def _when(run_info: Any) -> tuple[str, str]:
    """(machine, human) start time of the run, from run.json."""
    raw = run_info.get("started_at") if isinstance(run_info, dict) else None
    if not isinstance(raw, str):
        return "", ""
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        return "", raw
    zone = t.strftime("%z")
    zone = "UTC" if zone == "+0000" else (f"UTC{zone[:3]}:{zone[3:]}" if zone else "")
    return raw, f"{t:%Y-%m-%d %H:%M} {zone}".strip()


def _ordered(present: Sequence[str], order: Sequence[str]) -> list[str]:
    """The distinct names of ``present``: those in ``order`` first, in that order."""
    seen = set(present)
    return [n for n in order if n in seen] + sorted(seen - set(order))


def _gallery_groups(
    entries: Sequence[GalleryEntry], groups: Mapping[str, list[str]]
) -> list[tuple[str, list[str]]]:
    """The gallery's perturbations by family, for the filter's option groups."""
    out = []
    for f in charts.family_order([e.family for e in entries]):
        perts = _ordered([e.perturbation for e in entries if e.family == f], groups.get(f, []))
        out.append((f, perts))
    return out


def _duration(run_info: Any) -> str:
    """The last run's wall time from run.json, for people, saying what the cache supplied.

    A re-run that found every prediction cached takes seconds; without saying so, a
    report would suggest the whole evaluation took that long.

    >>> _duration({"seconds": 181.07}), _duration({"seconds": 4.2}), _duration({})
    ('3 min 1 s', '4.2 s', '')
    >>> _duration({"seconds": 1.9, "inferred_predictions": {"a": 0},
    ...            "cached_predictions": {"a": 9700}})
    '1.9 s, every prediction from the cache'
    >>> _duration({"seconds": 65, "inferred_predictions": {"a": 300, "b": 0},
    ...            "cached_predictions": {"a": 9400, "b": 9700}})
    '1 min 5 s: 300 predictions made, 19,100 from the cache'
    >>> _duration({"seconds": 65, "inferred_predictions": {"a": 9100},
    ...            "shared_predictions": {"a": 600}})
    '1 min 5 s: 9,100 predictions made, 600 shared by cells showing the same image'
    """
    s = run_info.get("seconds") if isinstance(run_info, dict) else None
    if not isinstance(s, int | float) or isinstance(s, bool) or s < 0:
        return ""
    if s < 60:
        text = f"{s:.1f} s"
    else:
        m, sec = divmod(round(s), 60)
        text = f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min {sec} s"
    made, cached, shared = (
        _total(run_info.get(f"{k}_predictions")) for k in ("inferred", "cached", "shared")
    )
    if cached and not made:
        return f"{text}, every prediction from the cache"
    parts = [f"{made:,} predictions made"] if cached or shared else []
    if cached:
        parts.append(f"{cached:,} from the cache")
    if shared:
        parts.append(f"{shared:,} shared by cells showing the same image")
    return f"{text}: {', '.join(parts)}" if parts else text


def _total(counts: Any) -> int:
    """The sum of run.json's per-model counts (0 when absent or malformed)."""
    if not isinstance(counts, dict):
        return 0
    return sum(v for v in counts.values() if isinstance(v, int) and not isinstance(v, bool))


def report_context(run_dir: Path) -> dict[str, Any]:
    """Everything the report template shows, computed from the run directory."""
    results = load_results(run_dir)
    run_info = _read_json(run_dir / RUN_INFO)
    models = charts.model_views(results)
    by_name = {mv.name: mv for mv in models}
    groups = charts.perturbation_groups(results)
    rec = recommendation(results)
    machine, human = _when(run_info)
    level = results.suite.bootstrap.level if results.suite else 0.95
    evaluated = _ordered(
        [c for m in results.models.values() if m.clean for c in m.clean.per_class],
        results.dataset.class_names,
    )
    ctx: dict[str, Any] = {
        "r": results,
        "run": run_info if isinstance(run_info, dict) else {},
        "started": machine,
        "started_human": human,
        "duration": _duration(run_info),
        "severities": sorted(
            {s for v in (results.suite.perturbations.values() if results.suite else []) for s in v}
        ),
        # A column per class while that stays readable; the per-class section has them all.
        "clean_classes": [] if len(evaluated) > 8 else evaluated,
        "level_pct": f"{100 * level:.0f}%",
        "models": models,
        "by_name": by_name,
        "groups": groups,
        "robust": False,
        "rec": rec,
        "comparisons": [],
        "verdicts": [],
        "gallery": [],
        "preview": None,
        "clean_chart": charts.clean_chart(results, models),
        "clean_diffs": [
            (c, _diff_row(f"{c.a} − {c.b}", "clean", c.clean, _span([c.clean]), by_name))
            for c in results.comparisons
            if c.clean is not None
        ],
        "classes": _classes(results, models),
        "metric_names": METRIC_NAMES,
    }
    if results.suite is None or not any(m.perturbations for m in results.models.values()):
        return ctx  # brittle eval: header, clean metrics and metadata only
    wins, ties = _significant(results)
    gallery = _gallery(run_dir)
    fam_rank = {f: i for i, f in enumerate(groups)}
    gallery.sort(
        key=lambda ei: (
            fam_rank.get(ei[0].family, len(fam_rank)),
            ei[0].perturbation,
            by_name[ei[0].model].index if ei[0].model in by_name else len(models),
            ei[0].model,
            ei[0].rank,
            ei[0].file,
        )
    )
    verdicts = []
    for v in results.verdicts:
        span = _span(list(v.details.values()))
        details = [_diff_row(p, "perturbation", d, span, by_name) for p, d in v.details.items()]
        verdicts.append((v, details))
    recommended = rec.best if rec is not None and rec.recommended else None
    ctx |= {
        "robust": True,
        "risk_chart": charts.risk_chart(results, models, recommended),
        "unrated": [n for n, m in results.models.items() if m.risk is None and m.families],
        "unrated_reason": UNRATED,
        "wins": wins,
        "ties": ties,
        "heat": charts.heat_section(results, models, groups),
        "curves": charts.curves(results, models, groups),
        "comparisons": [(c, _comparison_rows(c, groups, by_name)) for c in results.comparisons],
        "verdicts": verdicts,
        "gallery": gallery,
        "gallery_models": _ordered([e.model for e, _ in gallery], [mv.name for mv in models]),
        "gallery_perts": _gallery_groups([e for e, _ in gallery], groups),
        "preview": _preview(run_dir, groups),
    }
    return ctx


def _classes(results: Results, models: list[charts.ModelView]) -> list[dict[str, Any]]:
    """Per dataset class: GT boxes and each model's AP (None: not evaluated for it)."""
    labeled = [mv for mv in models if results.models[mv.name].clean is not None]
    rows = []
    evaluated = {c for mv in labeled for c in results.models[mv.name].evaluated_classes}
    names = results.dataset.class_names
    for cls in [c for c in names if c in evaluated] + [c for c in names if c not in evaluated]:
        gt: int | None = None
        cells = []
        for mv in labeled:
            clean = results.models[mv.name].clean
            assert clean is not None
            pc = clean.per_class.get(cls)
            if pc is not None:
                gt = max(gt or 0, pc.gt_count)
            cells.append((mv, pc, charts.value_bar(pc.ap50_95 if pc else None, mv.colour)))
        rows.append({"name": cls, "gt": gt, "cells": cells})
    return rows


# --------------------------------------------------------------------- rendering


def _asset(name: str) -> Markup:
    """A CSS or JS file of the package, inlined verbatim (trusted, never data)."""
    text = resources.files("brittle.report").joinpath("templates", name).read_text("utf-8")
    if re.search(r"</(script|style)", text, re.IGNORECASE):
        raise AssertionError(f"{name} must not close its own element")
    return Markup(text)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("brittle.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(f3=f3, ci=ci_text, signed=signed, urlpath=_urlpath)
    env.globals.update(css=_asset("report.css"), js=_asset("report.js"), families=FAMILIES)
    return env


def _with_nonce(render: Any) -> str:
    """Render with a nonce that is a hash of the page rendered without one."""
    draft: str = render(_NONCE_SLOT)
    nonce = hashlib.sha256(draft.encode("utf-8")).hexdigest()[:32]
    page: str = render(nonce)
    return page


def render_report(run_dir: Path) -> str:
    """The HTML of ``run_dir``'s report."""
    ctx = report_context(run_dir)
    template = _env().get_template("report.html.j2")
    return _with_nonce(lambda nonce: template.render(**ctx, nonce=nonce))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    tmp.replace(path)
    return path


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``run_dir``'s self-contained report (default ``run_dir/report.html``)."""
    run_dir = Path(run_dir)
    return _write(Path(out) if out is not None else run_dir / REPORT, render_report(run_dir))


# --------------------------------------------------------------------- index


def _urlpath(rel: str) -> str:
    """A relative path as a URL path: every segment percent-encoded (':' too).

    >>> _urlpath("runs/a b/javascript:x/report.html")
    'runs/a%20b/javascript%3Ax/report.html'
    """
    return "/".join(quote(part, safe="") for part in rel.split("/"))


def find_runs(root: Path) -> list[Path]:
    """Every directory under ``root`` (any depth, ``root`` too) holding a results.json;
    hidden directories and symlinked ones are skipped."""
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RESULTS in files:
            found.append(Path(here))
    return sorted(found)


def index_context(root: Path, out: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for run_dir in find_runs(root):
        rel = Path(os.path.relpath(run_dir / REPORT, out.parent)).as_posix()
        name = run_dir.relative_to(root).as_posix() if run_dir != root else "."
        try:
            results = load_results(run_dir)
        except ReportError as exc:
            rows.append({"name": name, "error": str(exc), "started": "", "started_human": ""})
            continue
        machine, human = _when(_read_json(run_dir / RUN_INFO))
        rec = recommendation(results)
        models = []
        for mv in charts.model_views(results):
            m = results.models[mv.name]
            models.append(
                {
                    "view": mv,
                    "risk": m.risk,
                    "clean": m.clean.map50_95 if m.clean else None,
                    "bar": charts.value_bar(m.risk.value / 100 if m.risk else None, mv.colour),
                    "recommended": bool(rec and rec.recommended and rec.best == mv.name),
                }
            )
        rows.append(
            {"name": name, "error": "", "r": results, "href": rel, "models": models,
             "started": machine, "started_human": human}
        )  # fmt: skip
    rows.sort(key=lambda r: (r["started"] == "", _neg(r["started"]), r["name"]))
    return {"rows": rows, "root_name": root.resolve().name or str(root)}


def _neg(s: str) -> tuple[int, ...]:
    """Sort key putting later ISO timestamps first."""
    return tuple(-ord(c) for c in s)


def render_index(root: Path, out: Path | None = None) -> str:
    root = Path(root)
    out = Path(out) if out is not None else root / INDEX
    ctx = index_context(root, out)
    template = _env().get_template("index.html.j2")
    return _with_nonce(lambda nonce: template.render(**ctx, nonce=nonce))


def write_index(root: Path, out: Path | None = None) -> Path:
    """Write a static page listing every run under ``root`` (default ``root/index.html``),
    writing each run's report.html first when it is missing or older than its results."""
    root = Path(root)
    for run_dir in find_runs(root):
        report, results = run_dir / REPORT, run_dir / RESULTS
        try:
            stale = not report.is_file() or report.stat().st_mtime < results.stat().st_mtime
        except OSError:
            stale = True
        if stale:
            with contextlib.suppress(ReportError):  # listed as unreadable on the index
                write_report(run_dir)
    out = Path(out) if out is not None else root / INDEX
    return _write(out, render_index(root, out))
