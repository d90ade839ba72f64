"""Inline SVG charts for the HTML report, drawn in Python (no JavaScript, no fonts, no files),
and the functions that build them from a run's :class:`~brittle.results.Results`.

Every text and attribute value goes through :func:`markupsafe.escape` (via :func:`el`):
model, class and perturbation names come from users and may hold markup.

>>> print(el("text", {"x": 1.5, "class": 'a"b'}, "<script>"))
<text x="1.5" class="a&#34;b">&lt;script&gt;</text>
>>> sequential(0.0), sequential(1.0), ink(sequential(0.0)), ink(sequential(1.0))
('#081d58', '#ffffd9', '#ffffff', '#1d2433')
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from brittle.perturbations.base import FAMILIES
from brittle.results import CellResult, PerturbationResult, Results

__all__ = [
    "COLUMN_ROOM",
    "HEAT_METRICS",
    "INK",
    "LABEL_ROOM",
    "MIN_PLOT",
    "OKABE_ITO",
    "SEQUENTIAL",
    "Bar",
    "HeatRow",
    "HeatValue",
    "ModelView",
    "Series",
    "clean_chart",
    "contrast",
    "curves",
    "diff_bar",
    "el",
    "family_order",
    "fit",
    "heat_map",
    "heat_section",
    "ink",
    "interval_chart",
    "line_chart",
    "marker_symbol",
    "model_colour",
    "model_views",
    "num",
    "perturbation_groups",
    "risk_chart",
    "sequential",
    "text_width",
    "value_bar",
]

#: Okabe-Ito, for model lines and bars (safe for the common colour-vision deficiencies).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
#: ColorBrewer YlGnBu (9 classes, colour-blind safe, lightness monotonic), worst -> best:
#: what breaks is dark and draws the eye, what holds up recedes into the page.
SEQUENTIAL = (
    "#081d58", "#253494", "#225ea8", "#1d91c0", "#41b6c4",
    "#7fcdbb", "#c7e9b4", "#edf8b1", "#ffffd9",
)  # fmt: skip
INK = "#1d2433"
MUTED = "#5b6472"
GRID = "#e3e6eb"

# Font sizes (px) of the texts whose room is computed: keep in step with report.css.
_ROW_LABEL, _NOTE, _VALUE, _ROW_NOTE, _TICK, _AXIS_LABEL, _COL_LABEL, _FAMILY_LABEL = (
    13.5,
    12.0,
    12.5,
    11.0,
    11.0,
    11.5,
    11.5,
    12.0,
)
#: The widest a model name may be as a chart's row label (px); longer ones end in "…".
LABEL_ROOM = 180.0
#: The widest a perturbation name may be as a heat-map column label (px).
COLUMN_ROOM = 130.0
#: The narrowest plot area of an interval chart (px).
MIN_PLOT = 240.0
#: Clear space kept at a chart's edge (px).
_PAD = 4.0

CI = tuple[float, float] | None
_VOID = {"rect", "circle", "line", "path", "polygon", "polyline", "stop"}


def num(x: float, digits: int = 2) -> str:
    """A coordinate or value for an attribute: fixed precision, no trailing zeros.

    >>> num(1.0), num(0.125, 2), num(-0.0001), num(12.3456, 1)
    ('1', '0.12', '0', '12.3')
    """
    s = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """One element; attribute values and text children are escaped, Markup children kept.

    ``tag`` and attribute names are constants of this module, never data; floats are
    written with :func:`num`, so the same numbers give the same bytes.
    """
    a = Markup("").join(
        Markup(' {}="{}"').format(Markup(k), num(v) if isinstance(v, float) else v)
        for k, v in (attrs or {}).items()
        if v is not None
    )
    if not children and tag in _VOID:
        return Markup("<{}{}/>").format(Markup(tag), a)
    body = Markup("").join(escape(c) for c in children)
    return Markup("<{0}{1}>{2}</{0}>").format(Markup(tag), a, body)


def _e(tag: str, *children: object, **attrs: object) -> Markup:
    """:func:`el` with keyword attributes: ``class_`` -> ``class``, ``_`` -> ``-``."""
    return el(tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}, *children)


def _text(x: float, y: float, s: str, cls: str, anchor: str = "start", **kw: object) -> Markup:
    return _e("text", s, x=x, y=y, class_=cls, text_anchor=anchor, **kw)


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, **kw: object) -> Markup:
    return _e("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, **kw)


def _svg(width: float, height: float, label: str, *children: Markup, cls: str = "chart") -> Markup:
    box = f"0 0 {num(width)} {num(height)}"
    return _e(
        "svg", *children, class_=cls, viewBox=box, width=width, height=height, role="img",
        aria_label=label,
    )  # fmt: skip


def model_colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def sequential(g: float) -> str:
    """The heat-map colour of ``g`` in [0, 1] (0 = worst, 1 = unaffected), clipped."""
    g = 0.0 if math.isnan(g) else min(1.0, max(0.0, g))
    pos = g * (len(SEQUENTIAL) - 1)
    i = min(int(pos), len(SEQUENTIAL) - 2)
    t = pos - i
    a, b = _rgb(SEQUENTIAL[i]), _rgb(SEQUENTIAL[i + 1])
    r, gg, bb = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{gg:02x}{bb:02x}"


def _luminance(colour: str) -> float:
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours.

    >>> round(contrast("#ffffff", "#000000"), 1), contrast("#0072b2", "#0072b2")
    (21.0, 1.0)
    """
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def ink(fill: str) -> str:
    """The text colour, white or ink, with the higher contrast on ``fill`` (at least 3.9:1
    on any fill)."""
    return "#ffffff" if contrast("#ffffff", fill) > contrast(INK, fill) else INK


_NARROW = frozenset(" !'(),-./:;I[]`fijlrt|")
_WIDE = frozenset("%@MWmw…")
_SYMBOL = frozenset("&<>=+~#_^*$")


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """A conservative estimate of the width of ``text`` at ``size`` px in the report's sans
    font (none is embedded, so it errs on the wide side, DejaVu Sans being the widest likely
    one): 0.66 em a character, more for capitals, symbols, wide letters and East Asian
    characters, 0.4 em for narrow ones; bold is 10 % wider.

    >>> text_width("", 10), text_width("abc", 10), text_width("abc", 10, bold=True)
    (0.0, 19.8, 21.8)
    """
    em = 0.0
    for c in text:
        if unicodedata.east_asian_width(c) in "WF":
            em += 1.05
        elif c in _WIDE:
            em += 1.0
        elif c in _NARROW:
            em += 0.4
        elif c in _SYMBOL:
            em += 0.84
        elif c.isupper():
            em += 0.76
        else:
            em += 0.66
    return round(em * size * (1.1 if bold else 1.0), 1)


def fit(text: str, size: float, room: float, *, bold: bool = False) -> str:
    """``text``, shortened with "…" until :func:`text_width` says it fits in ``room`` px.

    >>> fit("resnet", 10, 100), fit("a-very-long-model-name", 10, 60)
    ('resnet', 'a-very-lo…')
    """
    if text_width(text, size, bold=bold) <= room:
        return text
    for n in range(len(text) - 1, 0, -1):
        short = text[:n].rstrip() + "…"
        if text_width(short, size, bold=bold) <= room:
            return short
    return "…"


def _ci_text(ci: CI, fmt: str = "{:.3f}") -> str:
    return "" if ci is None else f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return float(next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))


def _ticks(top: float, target: int) -> list[float]:
    """Round tick values from 0 to ``top``.

    >>> _ticks(100, 5), _ticks(0.4, 4)
    ([0.0, 20.0, 40.0, 60.0, 80.0, 100.0], [0.0, 0.1, 0.2, 0.3, 0.4])
    """
    step = _nice_step(top, target)
    return [round(i * step, 10) for i in range(int(top / step + 1e-9) + 1)]


# --------------------------------------------------------------------- interval chart


@dataclass(frozen=True)
class Bar:
    """One row of an interval chart: a value with its interval, in a model's colour."""

    label: str
    value: float
    ci: CI
    colour: str
    note: str = ""


def interval_chart(
    rows: Sequence[Bar],
    *,
    x_max: float,
    axis_label: str,
    style: str = "bar",
    digits: int = 1,
    width: int = 600,
) -> Markup:
    """Horizontal bars (``style="bar"``) or dots, with interval whiskers, one row each.

    The label column is as wide as the widest row label (shortened to fit
    :data:`LABEL_ROOM`) or note, the right margin as the widest value; the chart grows past
    ``width`` rather than squeeze its plot below :data:`MIN_PLOT`.
    """
    fmt = f"{{:.{digits}f}}"
    labels = [fit(r.label, _ROW_LABEL, LABEL_ROOM, bold=True) for r in rows]
    shown = [fmt.format(r.value) + _ci_text(r.ci, fmt) for r in rows]
    column = max(
        [text_width(t, _ROW_LABEL, bold=True) for t in labels]
        + [text_width(r.note, _NOTE, bold=True) for r in rows]
    )
    left = max(48.0, column + 14 + _PAD)
    right = max(text_width(t, _VALUE) for t in shown) + 16 + _PAD
    width = max(width, math.ceil(left + MIN_PLOT + right))
    plot_w = width - left - right
    row_h, top = 38, 6
    height = top + row_h * len(rows) + 46

    def x(v: float) -> float:
        return left + plot_w * min(max(v, 0.0), x_max) / x_max

    parts: list[Markup] = []
    for t in _ticks(x_max, 5):
        parts.append(_line(x(t), top, x(t), height - 38, GRID))
        parts.append(_text(x(t), height - 24, f"{t:g}", "tick", "middle"))
    parts.append(_text(left + plot_w / 2, height - 5, axis_label, "axis-label", "middle"))
    for i, (r, label, value) in enumerate(zip(rows, labels, shown, strict=True)):
        cy = top + row_h * i + row_h / 2
        g: list[Markup] = [_e("title", f"{r.label}: {value}")]
        label_y = cy - 2 if r.note else cy + 5
        g.append(_text(left - 14, label_y, label, "row-label", "end"))
        if r.note:
            g.append(_text(left - 14, cy + 12, r.note, "note", "end"))
        if style == "bar":
            g.append(_e("rect", x=left, y=cy - 9, width=max(x(r.value) - left, 1.0), height=18,
                        rx=3, fill=r.colour))  # fmt: skip
        end = x(r.value) + 6
        if r.ci is not None:
            lo, hi = x(r.ci[0]), x(r.ci[1])
            end = max(end, hi)
            g.append(_line(lo, cy, hi, cy, INK, stroke_width=1.5))
            g.extend(_line(c, cy - 6, c, cy + 6, INK, stroke_width=1.5) for c in (lo, hi))
        if style != "bar":
            g.append(_e("circle", cx=x(r.value), cy=cy, r=6.5, fill=r.colour, stroke="#ffffff",
                        stroke_width=1.5))  # fmt: skip
        g.append(_text(end + 10, cy + 5, value, "value"))
        parts.append(_e("g", *g, class_="row"))
    return _svg(width, height, axis_label, *parts)


# --------------------------------------------------------------------- heat map


@dataclass(frozen=True)
class HeatValue:
    value: float | None
    ci: CI = None


@dataclass(frozen=True)
class HeatRow:
    model: str
    note: str
    #: perturbation -> metric ("rpc", "consistency", "affected") -> value
    cells: Mapping[str, Mapping[str, HeatValue]]


#: metric -> (name, how a value is shown, higher is better)
HEAT_METRICS: dict[str, tuple[str, str, bool]] = {
    "rpc": ("rPC", "{:.2f}", True),
    "consistency": ("consistency", "{:.2f}", True),
    "affected": ("affected", "{:.0%}", False),
}


def _heat_style(metric: str, v: float | None) -> tuple[str, str, str]:
    """(fill, text colour, label) of one cell under ``metric``."""
    if v is None:
        return "#eef0f3", MUTED, "—"
    _, fmt, higher = HEAT_METRICS[metric]
    fill = sequential(v if higher else 1.0 - v)
    return fill, ink(fill), fmt.format(v)


def heat_map(
    rows: Sequence[HeatRow],
    groups: Sequence[tuple[str, Sequence[str]]],
    *,
    metric: str,
    family_titles: Mapping[str, str] | None = None,
) -> Markup:
    """Models x perturbations, grouped by family; one ``g.heat-cell`` per present pair.

    Each cell carries its colour, text colour and label under every metric as data
    attributes (``data-fill-rpc`` ...), so the page's script only copies attributes when
    the metric toggle changes; its ``<title>`` holds every number with its interval.
    """
    n = sum(len(ps) for _, ps in groups)
    labels = [fit(r.model, _ROW_LABEL, LABEL_ROOM, bold=True) for r in rows]
    column = max(
        [text_width(t, _ROW_LABEL, bold=True) for t in labels]
        + [text_width(r.note, _ROW_NOTE) for r in rows]
        + [60.0]
    )
    cols = {p: fit(p, _COL_LABEL, COLUMN_ROOM) for _, ps in groups for p in ps}
    label_h = max([text_width(t, _COL_LABEL) for t in cols.values()] + [40.0]) + 12
    left = math.ceil(column + 12 + _PAD)
    gap, band, ch = 6, 24, 34.0
    # Fits a 32-perturbation suite in a 1400 px window; wider suites scroll sideways.
    cw = max(30.0, min(68.0, (1128 - left - gap * (len(groups) - 1)) / max(n, 1)))
    top = band + label_h
    width = left + n * cw + gap * max(len(groups) - 1, 0) + 2
    height = top + ch * len(rows) + 2
    parts: list[Markup] = []
    x0 = float(left)
    for family, perts in groups:
        gw = cw * len(perts)
        title = (family_titles or {}).get(family, family)
        parts.append(
            _e(
                "g",
                _e("title", f"{family}: {title}"),
                _e("rect", x=x0, y=0, width=gw - 2, height=band - 6, rx=3, class_="family-band"),
                _text(x0 + gw / 2 - 1, band - 11, fit(family, _FAMILY_LABEL, gw - 8, bold=True),
                      "family-label", "middle"),
                class_="family",
            )
        )  # fmt: skip
        for j, p in enumerate(perts):
            at = f"translate({num(x0 + cw * j + cw / 2 + 4)},{num(top - 6)}) rotate(-90)"
            parts.append(_e("text", cols[p], class_="col-label", transform=at))
        for i, row in enumerate(rows):
            y = top + ch * i
            for j, p in enumerate(perts):
                parts.append(_heat_cell(row, p, family, metric, x0 + cw * j, y, cw, ch))
        x0 += gw + gap
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        y = top + ch * i + ch / 2
        parts.append(
            _e(
                "g",
                _e("title", row.model),
                _text(left - 12, y - 1, label, "row-label", "end"),
                _text(left - 12, y + 12, row.note, "row-note", "end"),
                class_="row-head",
            )
        )
    return _svg(width, height, "heat map: models by perturbation", *parts, cls="chart heat")


def _heat_cell(
    row: HeatRow, p: str, family: str, metric: str, x: float, y: float, cw: float, ch: float
) -> Markup:
    values = row.cells.get(p)
    if values is None:  # not run for this model (e.g. runs merged by brittle compare)
        return _e("rect", x=x + 1, y=y + 1, width=cw - 2, height=ch - 2, class_="heat-missing")
    attrs: dict[str, object] = {
        "class": "heat-cell",
        "data-model": row.model,
        "data-perturbation": p,
        "data-family": family,
        "transform": f"translate({num(x)},{num(y)})",
    }
    tip = [f"{row.model} · {p} ({family})"]
    for key, (name, fmt, _) in HEAT_METRICS.items():
        hv = values.get(key, HeatValue(None))
        fill, tcol, label = _heat_style(key, hv.value)
        attrs |= {f"data-fill-{key}": fill, f"data-ink-{key}": tcol, f"data-label-{key}": label}
        if hv.value is not None:
            tip.append(f"{name} {fmt.format(hv.value)}{_ci_text(hv.ci, fmt)}")
    fill, tcol, label = _heat_style(metric, values.get(metric, HeatValue(None)).value)
    return el(
        "g",
        attrs,
        _e("title", "\n".join(tip)),
        _e("rect", x=1, y=1, width=cw - 2, height=ch - 2, rx=2, fill=fill),
        _text(cw / 2, ch / 2 + 4, label, "cell-label", "middle", fill=tcol),
    )


# --------------------------------------------------------------------- line chart

_MARKERS = ("circle", "square", "triangle", "diamond", "down", "cross", "star")
_SHAPES = {
    "triangle": [(0, -1.25), (1.1, 0.8), (-1.1, 0.8)],
    "down": [(0, 1.25), (1.1, -0.8), (-1.1, -0.8)],
    "diamond": [(0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0)],
    "cross": [(-0.4, -1.1), (0.4, -1.1), (0.4, -0.4), (1.1, -0.4), (1.1, 0.4), (0.4, 0.4),
              (0.4, 1.1), (-0.4, 1.1), (-0.4, 0.4), (-1.1, 0.4), (-1.1, -0.4), (-0.4, -0.4)],
    "star": [(0, -1.3), (0.35, -0.45), (1.25, -0.4), (0.55, 0.2), (0.8, 1.1), (0, 0.6),
             (-0.8, 1.1), (-0.55, 0.2), (-1.25, -0.4), (-0.35, -0.45)],
}  # fmt: skip


def _marker(i: int, x: float, y: float, colour: str, s: float = 4.2) -> Markup:
    """Model ``i``'s marker: shape as well as colour tells the lines apart."""
    kind = _MARKERS[i % len(_MARKERS)]
    common = {"fill": colour, "stroke": "#ffffff", "stroke_width": 1}
    if kind == "circle":
        return _e("circle", cx=x, cy=y, r=s, **common)
    if kind == "square":
        return _e("rect", x=x - s + 0.5, y=y - s + 0.5, width=2 * s - 1, height=2 * s - 1, **common)
    pts = " ".join(f"{num(x + dx * s)},{num(y + dy * s)}" for dx, dy in _SHAPES[kind])
    return _e("polygon", points=pts, **common)


def marker_symbol(i: int, colour: str, size: int = 12) -> Markup:
    """A legend swatch: the model's line and marker, as a tiny SVG."""
    w = size * 2
    return _e(
        "svg",
        _line(0, size / 2, w, size / 2, colour, stroke_width=2),
        _marker(i, w / 2, size / 2, colour),
        class_="swatch", viewBox=f"0 0 {w} {size}", width=w, height=size, aria_hidden="true",
    )  # fmt: skip


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    index: int
    #: (x, y, interval of y)
    points: Sequence[tuple[float, float, CI]]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_ticks: Sequence[int],
    x_label: str,
    y_label: str,
    y_max: float,
    width: int = 232,
    height: int = 172,
) -> Markup:
    """A small multiple: one line per series with its interval band and markers.

    The left margin holds the rotated y-axis title and, clear of it, the widest tick label.
    """
    y_ticks = _ticks(y_max, 4)
    tick_w = max(text_width(f"{t:g}", _TICK) for t in y_ticks)
    # The rotated title's baseline; its glyphs take about 1 em left of it, 0.3 em right.
    title_x = _PAD + 1.0 * _AXIS_LABEL
    left = math.ceil(title_x + 0.3 * _AXIS_LABEL + 4 + tick_w + 6)
    right, top, bottom = 10, 8, 36
    pw, ph = width - left - right, height - top - bottom
    x_lo, x_hi = min(x_ticks), max(x_ticks)

    def x(v: float) -> float:
        return left + pw * ((v - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    def y(v: float) -> float:
        return top + ph * (1 - min(max(v, 0.0), y_max) / y_max)

    parts: list[Markup] = []
    for t in y_ticks:
        parts.append(_line(left, y(t), left + pw, y(t), GRID))
        parts.append(_text(left - 6, y(t) + 4, f"{t:g}", "tick", "end"))
    for v in x_ticks:
        parts.append(_text(x(v), top + ph + 15, "clean" if v == 0 else str(v), "tick", "middle"))
    parts.append(_text(left + pw / 2, height - 4, x_label, "axis-label", "middle"))
    at = f"translate({num(title_x)},{num(top + ph / 2)}) rotate(-90)"
    parts.append(_e("text", y_label, class_="axis-label", text_anchor="middle", transform=at))
    for s in series:
        band = [(px, ci) for px, _, ci in s.points if ci is not None]
        if len(band) >= 2:
            pts = [f"{num(x(px))},{num(y(ci[1]))}" for px, ci in band]
            pts += [f"{num(x(px))},{num(y(ci[0]))}" for px, ci in reversed(band)]
            parts.append(_e("polygon", points=" ".join(pts), fill=s.colour, fill_opacity=0.15))
    for s in series:
        line = " ".join(f"{num(x(px))},{num(y(py))}" for px, py, _ in s.points)
        g = [_e("polyline", points=line, fill="none", stroke=s.colour, stroke_width=2,
                stroke_linejoin="round")]  # fmt: skip
        for px, py, ci in s.points:
            where = "clean" if px == 0 else f"severity {px:g}"
            tip = f"{s.label} · {title} · {where}: {py:.3f}{_ci_text(ci)}"
            g.append(_e("g", _e("title", tip), _marker(s.index, x(px), y(py), s.colour)))
        parts.append(_e("g", *g, class_="series", data_model=s.label))
    return _svg(width, height, f"{title}: {y_label} by severity", *parts)


# --------------------------------------------------------------------- inline marks


def diff_bar(
    difference: float, ci: CI, *, span: float, colour: str, width: int = 140, height: int = 18
) -> Markup:
    """A paired difference on an axis symmetric around 0: its interval and point."""
    span = span if span > 0 else 1.0
    mid = width / 2

    def x(v: float) -> float:
        return mid + (width / 2 - 6) * max(-1.0, min(1.0, v / span))

    parts = [_line(mid, 1, mid, height - 1, "#9aa3af", stroke_dasharray="2 2")]
    if ci is not None:
        parts.append(_line(x(ci[0]), height / 2, x(ci[1]), height / 2, colour, stroke_width=3,
                           stroke_linecap="round", stroke_opacity=0.45))  # fmt: skip
    parts.append(_e("circle", cx=x(difference), cy=height / 2, r=4.5, fill=colour))
    box = f"0 0 {width} {height}"
    return _e("svg", *parts, class_="diff", viewBox=box, width=width, height=height,
              aria_hidden="true")  # fmt: skip


def value_bar(value: float | None, colour: str, width: int = 80, height: int = 8) -> Markup:
    """A value in [0, 1] as a short bar on a light track (for table cells)."""
    v = 0.0 if value is None or value < 0 else min(value, 1.0)
    return _e(
        "svg",
        _e("rect", x=0, y=0, width=width, height=height, rx=2, fill="#eef0f3"),
        _e("rect", x=0, y=0, width=max(width * v, 0.5), height=height, rx=2, fill=colour),
        class_="vbar", viewBox=f"0 0 {width} {height}", width=width, height=height,
        aria_hidden="true",
    )  # fmt: skip


# --------------------------------------------------------------------- from results


@dataclass(frozen=True)
class ModelView:
    name: str
    colour: str
    index: int
    swatch: Markup


def family_order(names: Sequence[str]) -> list[str]:
    """Families in catalogue order, unknown (plugin) families after them, sorted."""
    present = set(names)
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def perturbation_groups(results: Results) -> dict[str, list[str]]:
    """Every perturbation of the run by family: families in catalogue order, names sorted."""
    fam_of: dict[str, str] = {}
    for m in results.models.values():
        for p, pr in m.perturbations.items():
            fam_of.setdefault(p, pr.family)
    if results.suite is not None:
        for p in results.suite.perturbations:
            fam_of.setdefault(p, "other")
    groups: dict[str, list[str]] = {}
    for f in family_order(list(fam_of.values())):
        groups[f] = sorted(p for p, pf in fam_of.items() if pf == f)
    return groups


def heat_section(results: Results, models: list[ModelView], groups: dict[str, list[str]]) -> Any:
    """The heat map and the metric it opens on: rPC when every model is rated by rPC."""
    rows = []
    for mv in models:
        m = results.models[mv.name]
        if not m.perturbations:
            continue
        cells = {
            p: {
                "rpc": HeatValue(pr.rpc, pr.rpc_ci),
                "consistency": HeatValue(pr.consistency, pr.consistency_ci),
                "affected": HeatValue(pr.affected_fraction, pr.affected_fraction_ci),
            }
            for p, pr in m.perturbations.items()
        }
        note = f"risk {m.risk.value:.1f}" if m.risk is not None else ""
        rows.append(HeatRow(mv.name, note, cells))
    if not rows:
        return None
    rated = [results.models[r.model] for r in rows]
    has_rpc = any(pr.rpc is not None for m in rated for pr in m.perturbations.values())
    all_rpc = all(m.risk is not None and m.risk.basis == "rpc" for m in rated)
    metric = "rpc" if all_rpc and has_rpc else "consistency"
    svg = heat_map(rows, list(groups.items()), metric=metric, family_titles=FAMILIES)
    return {"svg": svg, "metric": metric, "has_rpc": has_rpc}


def _severities(pr: PerturbationResult) -> list[tuple[int, CellResult]]:
    """The cells by severity, ascending (keys that are not severities are ignored)."""
    cells = ((int(s), c) for s, c in pr.severities.items() if s.isdigit())
    return sorted(cells, key=lambda sc: sc[0])


def _curve_top(results: Results, runs: list[ModelView]) -> float:
    """A round upper end for every mAP chart: the highest value or interval end."""
    highs = [0.0]
    for mv in runs:
        m = results.models[mv.name]
        if m.clean is not None:
            highs += [m.clean.map50_95, *(m.clean.map50_95_ci or ())]
        for pr in m.perturbations.values():
            for _, c in _severities(pr):
                highs += [c.map50_95 or 0.0, *(c.map50_95_ci or ())]
    step = 0.1 if max(highs) > 0.2 else 0.05
    return max(step, step * math.ceil(max(highs) / step - 1e-9))


def curves(results: Results, models: list[ModelView], groups: dict[str, list[str]]) -> Any:
    """A severity chart per perturbation, by family: mAP50-95 when every model has labels,
    else consistency (1 on clean images by definition)."""
    runs = [mv for mv in models if results.models[mv.name].perturbations]
    if results.suite is None or not runs:
        return None
    labeled = all(results.models[mv.name].clean is not None for mv in runs)
    top = _curve_top(results, runs) if labeled else 1.0
    y_label = "mAP50-95 (0–1)" if labeled else "consistency (F1, 0–1)"
    out = []
    for fam, perts in groups.items():
        figs = []
        for p in perts:
            series: list[Series] = []
            sevs: set[int] = set()
            for mv in runs:
                m = results.models[mv.name]
                pr = m.perturbations.get(p)
                if pr is None:
                    continue
                cells = _severities(pr)
                sevs.update(s for s, _ in cells)
                pts: list[tuple[float, float, CI]]
                if m.clean is not None and labeled:
                    pts = [(0, m.clean.map50_95, m.clean.map50_95_ci)]
                    pts += [
                        (s, c.map50_95, c.map50_95_ci) for s, c in cells if c.map50_95 is not None
                    ]
                else:
                    pts = [(0, 1.0, None)]
                    pts += [(s, c.consistency, c.consistency_ci) for s, c in cells]
                series.append(Series(mv.name, mv.colour, mv.index, pts))
            if not series:
                continue
            svg = line_chart(
                series, title=p, x_ticks=[0, *sorted(sevs)], x_label="severity (0 = clean)",
                y_label=y_label, y_max=top,
            )  # fmt: skip
            figs.append({"name": p, "svg": svg})
        if figs:
            out.append({"family": fam, "title": FAMILIES.get(fam, ""), "charts": figs})
    return {"families": out, "y_label": y_label, "labeled": labeled}


def model_views(results: Results) -> list[ModelView]:
    """Models in ranking order (then the unrated), each with its colour and marker."""
    order = [n for n in results.ranking if n in results.models]
    order += [n for n in results.models if n not in order]
    return [
        ModelView(n, model_colour(i), i, marker_symbol(i, model_colour(i)))
        for i, n in enumerate(order)
    ]


def risk_chart(results: Results, models: list[ModelView], recommended: str | None) -> Markup | None:
    bars = []
    for mv in models:
        risk = results.models[mv.name].risk
        if risk is None:
            continue
        note = "recommended" if recommended == mv.name else ""
        if risk.basis == "consistency":
            note = (note + " · " if note else "") + "label-free"
        bars.append(Bar(mv.name, risk.value, risk.ci, mv.colour, note))
    if not bars:
        return None
    hi = max(max(b.value, *(b.ci or ())) for b in bars)
    top = max(25.0, 25.0 * math.ceil(hi / 25.0 - 1e-9))
    return interval_chart(
        bars, x_max=min(100.0, top), axis_label="risk score, 0–100 (higher = riskier)"
    )


def clean_chart(results: Results, models: list[ModelView]) -> Markup | None:
    bars = []
    for mv in models:
        c = results.models[mv.name].clean
        if c is not None:
            bars.append(Bar(mv.name, c.map50_95, c.map50_95_ci, mv.colour))
    if not bars:
        return None
    hi = max(max(b.value, *(b.ci or ())) for b in bars)
    top = max(0.1, 0.1 * math.ceil(hi / 0.1 - 1e-9))
    return interval_chart(
        bars, x_max=min(1.0, top), axis_label="clean mAP50-95 (0–1)", style="dot", digits=3
    )
