"""The HTML report and the runs index, on small synthetic run directories.

Each run directory is written here: a ``results.json`` built from ``brittle.results``
objects, a ``run.json``, and a tiny gallery and preview of real JPEGs. Names come from
a hostile user: markup, quotes, ampersands, template syntax and unicode.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from brittle.report import ReportError, render_report, write_index, write_report
from brittle.report.charts import (
    LABEL_ROOM,
    Bar,
    HeatRow,
    HeatValue,
    Series,
    contrast,
    fit,
    heat_map,
    ink,
    interval_chart,
    line_chart,
    sequential,
    text_width,
)
from brittle.report.page import recommendation
from brittle.results import (
    BootstrapInfo,
    CellResult,
    ClassMetrics,
    CleanMetrics,
    Comparison,
    DatasetInfo,
    Difference,
    FamilyResult,
    ModelResult,
    PerturbationResult,
    Results,
    RiskResult,
    Settings,
    SuiteInfo,
    Verdict,
    dump_json,
)

EVIL_MODEL = "<script>alert(1)</script>"
QUOTES = "\"quotes'"
EVIL_CLASS = "</script><b>&amp;</b>"
TEMPLATE = "{{ 7*7 }}{% raw %}"
EVIL_IMAGE = "<script>alert(1)</script>x\u2028y.jpg"
EVIL_PERT = "<i>blur</i>"
PERTS = {"gaussian_noise": "noise", "motion_blur": "blur", EVIL_PERT: "blur", "hflip": "geometric"}
SEVERITIES = [1, 3, 5]


# --------------------------------------------------------------------- builders


def _jpeg(path: Path, value: int = 120, size: tuple[int, int] = (24, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((*size, 3), value, np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    path.write_bytes(buf.tobytes())


def _clean(m: float, classes: list[str], labeled_ci: bool = True) -> CleanMetrics:
    stats = dict.fromkeys(
        "map50_95 map50 map75 map_small map_medium map_large "
        "ar1 ar10 ar100 ar_small ar_medium ar_large".split(),
        m,
    )
    return CleanMetrics(
        **stats,
        map50_95_ci=(m - 0.05, m + 0.05) if labeled_ci else None,
        map50_ci=(m - 0.04, m + 0.06),
        per_class={
            c: ClassMetrics(ap50_95=m / (i + 1), ap50=m, gt_count=10 + i)
            for i, c in enumerate(classes)
        },
    )


def _pert(family: str, r: float, labeled: bool) -> PerturbationResult:
    cells = {
        str(s): CellResult(
            map50_95=(0.4 * r * (1 - s / 10)) if labeled else None,
            map50=(0.6 * r) if labeled else None,
            consistency=r,
            affected_fraction=1 - r,
            map50_95_ci=(0.3 * r, 0.5 * r) if labeled else None,
            consistency_ci=(r - 0.05, r + 0.05),
        )
        for s in SEVERITIES
    }
    return PerturbationResult(
        family=family,
        rpc=r if labeled else None,
        consistency=r,
        affected_fraction=1 - r,
        degradation=1 - r,
        rpc_ci=(r - 0.05, r + 0.05) if labeled else None,
        consistency_ci=(r - 0.05, r + 0.05),
        affected_fraction_ci=(0.9 - r, 1.1 - r),
        severities=cells,
    )


def _model(name: str, base: float, classes: list[str], labeled: bool = True) -> ModelResult:
    perts = {p: _pert(f, base - 0.1 * i, labeled) for i, (p, f) in enumerate(sorted(PERTS.items()))}
    fams = {}
    for f in sorted(set(PERTS.values())):
        members = [p for p in perts if perts[p].family == f]
        r = sum(perts[p].consistency for p in members) / len(members)
        fams[f] = FamilyResult(
            rpc=r if labeled else None,
            consistency=r,
            affected_fraction=1 - r,
            degradation=1 - r,
            perturbations=members,
        )
    return ModelResult(
        spec=f"https://evil.example/{name}.onnx",
        kind="onnx",
        fingerprint=f"onnx:{name}",
        class_names=classes,
        class_map=None,
        evaluated_classes=classes if labeled else [],
        unevaluated_classes=[],
        dropped_detections=0,
        clean=_clean(0.4, classes) if labeled else None,
        perturbations=perts,
        families=fams,
        risk=RiskResult(
            value=100 * (1 - base), ci=(90 * (1 - base), 110 * (1 - base)),
            basis="rpc" if labeled else "consistency",
        ),
    )  # fmt: skip


def _diff(metric: str, a: float, b: float, better: str | None) -> Difference:
    d = a - b
    ci = (d - 0.01, d + 0.01) if better else (d - 0.5, d + 0.5)
    return Difference(metric=metric, a=a, b=b, difference=d, ci=ci, better=better)  # type: ignore[arg-type]


def _results(suite: bool = True, labeled: bool = True) -> Results:
    classes = ["Person", EVIL_CLASS, TEMPLATE]
    names = [EVIL_MODEL, QUOTES]
    models = {n: _model(n, 0.9 - 0.2 * i, classes, labeled) for i, n in enumerate(names)}
    if not suite:
        models = {
            n: m.model_copy(update={"perturbations": {}, "families": {}, "risk": None})
            for n, m in models.items()
        }
    a, b = names
    comparisons = []
    verdicts = []
    if suite:
        comparisons = [
            Comparison(
                a=a, b=b,
                clean=_diff("map50_95", 0.4, 0.4, None) if labeled else None,
                risk=_diff("risk", 10.0, 30.0, a),
                families={f: _diff("rpc", 0.9, 0.7, a if f == "noise" else None)
                          for f in sorted(set(PERTS.values()))},
                perturbations={p: _diff("rpc", 0.9, 0.7, a if p == "gaussian_noise" else None)
                               for p in sorted(PERTS)},
            )
        ]  # fmt: skip
        verdicts = [
            Verdict(
                model=a, reference=b, augmentation="blur", perturbations=["motion_blur", EVIL_PERT],
                outcome="intended effect", difference=_diff("rpc", 0.9, 0.7, a),
                details={"motion_blur": _diff("rpc", 0.9, 0.7, a),
                         EVIL_PERT: _diff("rpc", 0.8, 0.7, None)},
            ),
            Verdict(model=a, reference=b, augmentation="mosaic", perturbations=[],
                    outcome="not tested"),
        ]  # fmt: skip
    return Results(
        schema_version="1.2",
        brittle_version="0.1.0",
        dataset=DatasetInfo(
            name="<img src=x onerror=alert(1)> & data",
            path="/d/\u00e9t\u00e9",
            format="yolo",
            image_count=3,
            class_names=classes,
            box_count=7,
            issues={"<empty>": 2},
            skipped_images=[EVIL_IMAGE],
        ),
        settings=Settings(conf_threshold=0.001),
        suite=SuiteInfo(
            name="<suite>",
            seed=0,
            operating_conf=0.3,
            strictness=0.75,
            perturbations=dict.fromkeys(sorted(PERTS), SEVERITIES),
            versions=dict.fromkeys(sorted(PERTS), 1),
            bootstrap=BootstrapInfo(resamples=100, seed=0, level=0.95),
        )
        if suite
        else None,
        models=models,
        ranking=names if suite else [],
        comparisons=comparisons,
        verdicts=verdicts,
    )


def _gallery_entry(model: str, pert: str, file: str, rank: int = 1) -> dict[str, object]:
    return {
        "model": model, "perturbation": pert, "family": PERTS.get(pert, "blur"), "severity": 3,
        "rank": rank, "image": EVIL_IMAGE, "file": file, "key": "k", "consistency": 0.25,
        "n_clean": 2, "n_perturbed": 1, "lost": 1, "gained": 0, "changed": 1,
        "f1_clean": 1.0, "f1_perturbed": 0.5,
    }  # fmt: skip


def make_run(
    path: Path, *, suite: bool = True, labeled: bool = True, started: str = "2025-05-01T10:00:00"
) -> Path:
    """A run directory like ``brittle run`` writes, small enough for unit tests."""
    path.mkdir(parents=True, exist_ok=True)
    results = _results(suite, labeled)
    dump_json(results.model_dump(mode="json"), path / "results.json")
    run_info = {"started_at": started, "seconds": 12.5, "workers": 2, "brittle_version": "0.1.0"}
    (path / "run.json").write_text(json.dumps(run_info))
    if not suite:
        return path
    entries = []
    for mi, model in enumerate(results.models):
        for p in sorted(PERTS):
            file = f"{mi:02d}_m/{re.sub(r'[^a-z_]', '_', p)}-1.jpg"
            _jpeg(path / "gallery" / file, 40 + 30 * mi)
            entries.append(_gallery_entry(model, p, file))
    # Hostile index entries: outside the run directory, and not a JPEG. Both are skipped.
    _jpeg(path.parent / "secret.jpg", 7)
    entries.append(_gallery_entry(EVIL_MODEL, "hflip", "../../secret.jpg", rank=2))
    (path / "gallery" / "fake.jpg").write_bytes(b"<script>alert(1)</script>")
    entries.append(_gallery_entry(EVIL_MODEL, "hflip", "fake.jpg", rank=3))
    (path / "gallery" / "index.json").write_text(json.dumps(entries))
    preview = {"image": EVIL_IMAGE, "clean": "preview/clean.jpg", "perturbations": {}}
    _jpeg(path / "preview" / "clean.jpg", 200)
    for p, f in PERTS.items():
        sevs = {}
        for s in SEVERITIES:
            rel = f"preview/{re.sub(r'[^a-z_]', '_', p)}-{s}.jpg"
            _jpeg(path / rel, 20 * s)
            sevs[str(s)] = rel
        preview["perturbations"][p] = {"family": f, "severities": sevs}  # type: ignore[index]
    (path / "preview" / "index.json").write_text(json.dumps(preview))
    return path


class Page(HTMLParser):
    """Every start tag with its attributes, every text node, and the scripts' contents."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.tags if cls in a.get("class", "").split()]

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs" / "first")


# --------------------------------------------------------------------- the report


def test_heat_map_has_one_cell_per_model_and_perturbation(run: Path) -> None:
    page = Page(write_report(run).read_text())
    cells = page.with_class("heat-cell")
    pairs = [(c["data-model"], c["data-perturbation"]) for c in cells]
    assert sorted(pairs) == sorted((m, p) for m in (EVIL_MODEL, QUOTES) for p in PERTS)
    # Each cell knows its colour and label under every metric the toggle offers.
    for c in cells:
        for metric in ("rpc", "consistency", "affected"):
            assert re.fullmatch(r"#[0-9a-f]{6}", c[f"data-fill-{metric}"])
            assert c[f"data-label-{metric}"]


def test_hostile_names_are_escaped_everywhere(run: Path) -> None:
    html = write_report(run).read_text()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<i>blur</i>" not in html
    assert "<b>&amp;</b>" not in html
    assert "&lt;/script&gt;&lt;b&gt;&amp;amp;&lt;/b&gt;" in html
    assert "{{ 7*7 }}" in html  # data is never a template
    assert "\u2028" not in html.split("<script", 1)[1]  # nothing of the data inside the script
    page = Page(html)
    # The one script is ours, verbatim; no element has an event handler.
    assert len(page.scripts) == html.count("</script>") == 1
    js = (Path(__file__).parents[2] / "src/brittle/report/templates/report.js").read_text()
    assert page.scripts[0] == js
    assert not [(t, k) for t, a in page.tags for k in a if k.startswith("on")]
    # Parsed back, the names are exactly what the user gave.
    text = "".join(page.text)
    assert EVIL_MODEL in text
    assert QUOTES in text
    assert EVIL_CLASS in text
    assert EVIL_PERT in text


def test_the_page_references_nothing_outside_itself(run: Path) -> None:
    html = write_report(run).read_text()
    page = Page(html)
    urls = [
        (tag, k, v)
        for tag, attrs in page.tags
        for k, v in attrs.items()
        if k in ("href", "src", "action", "formaction", "srcset", "poster", "xlink:href", "data")
    ]
    assert urls
    for tag, k, v in urls:
        assert v.startswith("#") if k == "href" else v.startswith("data:image/jpeg;base64,"), (
            tag,
            k,
            v[:60],
        )
    # URLs in the data (a model spec) are only ever text, escaped where they appear.
    assert html.count("https://evil.example/") == sum(
        t.count("https://evil.example/") for t in page.text
    )
    assert 'src="//' not in html
    assert "url(http" not in html
    assert "@import" not in html
    assert "http://" not in html


def test_csp_allows_only_inline_styles_data_images_and_the_nonced_script(run: Path) -> None:
    page = Page(write_report(run).read_text())
    metas = [
        a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert len(metas) == 1
    csp = metas[0]["content"]
    nonce = re.fullmatch(
        r"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        r"script-src 'nonce-([0-9a-f]{32})'; base-uri 'none'; form-action 'none'",
        csp,
    )
    assert nonce is not None
    scripts = [a for t, a in page.tags if t == "script"]
    assert scripts == [{"nonce": nonce.group(1)}]
    # The CSP meta comes before any style or script.
    order = [t for t, _ in page.tags]
    assert order.index("meta") < order.index("style") < order.index("script")


def test_report_is_byte_identical_when_written_again_anywhere(run: Path, tmp_path: Path) -> None:
    first = write_report(run).read_bytes()
    assert write_report(run).read_bytes() == first
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    (moved / "report.html").unlink()
    assert write_report(moved).read_bytes() == first
    # A different run gets a different nonce.
    other = make_run(tmp_path / "other", labeled=False)
    nonce = re.compile(r"nonce-([0-9a-f]+)")
    assert nonce.findall(render_report(other)) != nonce.findall(first.decode())


def test_sections_come_in_order_and_show_every_part(run: Path) -> None:
    html = write_report(run).read_text()
    order = [
        "verdict", "clean", "heatmap", "curves", "augmentations", "gallery", "preview",
        "classes", "comparisons", "metadata",
    ]  # fmt: skip
    positions = [html.index(f'<section id="{s}"') for s in order]
    assert positions == sorted(positions)
    page = Page(html)
    assert len([a for t, a in page.tags if t == "figure" and "curve" in a.get("class", "")]) == 4
    assert len(page.with_class("outcome-intended-effect")) == 1
    assert len(page.with_class("outcome-not-tested")) == 1
    assert page.with_class("sig-mark")
    assert page.with_class("ns")
    text = " ".join("".join(page.text).split())
    assert "Recommended: " + EVIL_MODEL in text
    assert "v1" in text
    assert "100 resamples" in text
    assert "onnx:" + QUOTES in text


def test_gallery_embeds_the_pairs_and_skips_what_is_not_a_jpeg_in_the_run(run: Path) -> None:
    html = write_report(run).read_text()
    page = Page(html)
    items = page.with_class("gallery-item")
    assert len(items) == 2 * len(PERTS)  # the path escaping the run and the fake JPEG are gone
    assert {(i["data-model"], i["data-perturbation"]) for i in items} == {
        (m, p) for m in (EVIL_MODEL, QUOTES) for p in PERTS
    }
    secret = base64.b64encode((run.parent / "secret.jpg").read_bytes()).decode()
    assert secret not in html
    options = [a.get("value") for t, a in page.tags if t == "option"]
    assert EVIL_MODEL in options
    assert EVIL_PERT in options
    assert {"filter-model", "filter-perturbation", "lightbox", "lightbox-img"} <= page.ids()
    # The preview: one image per severity, the clean one once (a CSS background).
    thumbs = [a for t, a in page.tags if t == "img" and "thumb" in a.get("class", "")]
    assert len(thumbs) == len(PERTS) * len(SEVERITIES)
    assert len(page.with_class("pv-clean")) == len(PERTS)


def test_eval_only_results_show_the_header_and_clean_metrics_only(tmp_path: Path) -> None:
    run = make_run(tmp_path / "eval", suite=False)
    html = write_report(run).read_text()
    page = Page(html)
    assert not page.with_class("heat-cell")
    assert not page.with_class("gallery-item")
    ids = page.ids()
    assert {"clean", "classes", "metadata"} <= ids
    assert not ids & {"verdict", "heatmap", "curves", "augmentations", "gallery", "preview"}
    assert "<svg" in html  # the clean mAP chart, and nothing empty
    assert "0.400" in html


def test_unlabeled_runs_colour_and_plot_consistency(tmp_path: Path) -> None:
    run = make_run(tmp_path / "unlabeled", labeled=False)
    page = Page(write_report(run).read_text())
    buttons = {a["data-metric"]: a for t, a in page.tags if t == "button" and "data-metric" in a}
    assert buttons["consistency"]["aria-pressed"] == "true"
    assert "disabled" in buttons["rpc"]
    assert "consistency (F1, 0–1)" in "".join(page.text)
    assert page.with_class("heat-cell")[0]["data-label-rpc"] == "—"


def test_missing_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"results\.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(ReportError, match="cannot be read"):
        write_report(tmp_path)


def test_recommendation_mirrors_the_terminal_verdict() -> None:
    r = _results()
    rec = recommendation(r)
    assert rec is not None
    assert rec.recommended
    assert rec.best == EVIL_MODEL
    c = r.comparisons[0]
    tied = r.model_copy(
        update={"comparisons": [c.model_copy(update={"risk": _diff("risk", 10, 30, None)})]}
    )
    rec = recommendation(tied)
    assert rec is not None
    assert not rec.recommended
    assert rec.headline == "No clear winner"
    accurate = r.model_copy(
        update={
            "comparisons": [c.model_copy(update={"clean": _diff("map50_95", 0.3, 0.4, QUOTES)})]
        }
    )
    rec = recommendation(accurate)
    assert rec is not None
    assert not rec.recommended
    assert [ch.ok for ch in rec.checks] == [True, False]
    assert QUOTES in rec.checks[1].text


# --------------------------------------------------------------------- the index


def test_index_lists_every_run_with_working_relative_links(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root / "a b" / "first", started="2025-01-01T09:00:00+00:00")
    make_run(root / "deep" / "er" / "javascript:x", started="2025-02-01T09:00:00+00:00")
    make_run(root / "eval", suite=False, started="2024-12-01T09:00:00")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "results.json").write_text("{}")
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("not json")
    index = write_index(root)
    assert index == root / "index.html"
    html = index.read_text()
    page = Page(html)
    links = sorted({a["href"] for t, a in page.tags if t == "a"})
    assert links == [
        "a%20b/first/report.html",
        "deep/er/javascript%3Ax/report.html",
        "eval/report.html",
    ]
    for href in links:
        assert (index.parent / unquote(href)).is_file()  # written because it was missing
    # Newest first, the unreadable run listed with its error, hidden folders ignored.
    assert html.index("javascript:x") < html.index("a b/first") < html.index(">eval<")
    assert "broken" in html
    assert "cannot be read" in html
    assert ".hidden" not in html
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html
    assert len(list(page.with_class("star"))) >= 2  # the recommended model per run
    assert write_index(root).read_bytes() == index.read_bytes()


def test_index_written_elsewhere_links_relative_to_itself(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root / "one")
    out = write_index(root, tmp_path / "site" / "all.html")
    page = Page(out.read_text())
    hrefs = [a["href"] for t, a in page.tags if t == "a"]
    assert set(hrefs) == {"../runs/one/report.html"}
    assert (out.parent / hrefs[0]).resolve().is_file()


def test_preview_embeds_only_jpegs_of_its_own_folder(run: Path, tmp_path: Path) -> None:
    index = json.loads((run / "preview" / "index.json").read_text())
    index["perturbations"]["hflip"]["severities"] = {
        "1": "../secret.jpg",  # outside the run
        "3": "gallery/00_m/hflip-1.jpg",  # inside the run, outside preview/
        "5": "preview/hflip-5.jpg",
    }
    (run / "preview" / "index.json").write_text(json.dumps(index))
    out = write_report(run, tmp_path / "copy.html")
    assert out == tmp_path / "copy.html"
    page = Page(out.read_text())
    alts = [a["alt"] for t, a in page.tags if t == "img" and "thumb" in a.get("class", "")]
    assert [a for a in alts if a.startswith("hflip")] == ["hflip severity 5"]


def test_every_heat_cell_label_is_legible_under_every_metric(run: Path) -> None:
    page = Page(write_report(run).read_text())
    for cell in page.with_class("heat-cell"):
        for metric in ("rpc", "consistency", "affected"):
            ratio = contrast(cell[f"data-ink-{metric}"], cell[f"data-fill-{metric}"])
            assert ratio >= 3.9, (cell["data-perturbation"], metric, ratio)
    # The colour scale itself: the best of white and ink always reads.
    assert min(contrast(ink(sequential(i / 200)), sequential(i / 200)) for i in range(201)) > 3.9


def test_the_verdict_marks_each_significant_family_once(run: Path) -> None:
    html = write_report(run).read_text()
    verdict = html[html.index('<section id="verdict"') : html.index('<section id="clean"')]
    page = Page(verdict)
    assert len(page.with_class("sig-mark")) == 1  # noise, in the one comparison
    assert "is more robust than" in "".join(page.text)


# --------------------------------------------------------------------- chart layout

LONG = "<b>m&\"q'<script>alert(7)" + "W" * 30
_TEXT = re.compile(
    r'<text x="([-\d.]+)" y="[-\d.]+" class="([\w-]+)" text-anchor="(\w+)">([^<]*)</text>'
)


def _texts(svg: str, cls: str) -> list[tuple[float, str]]:
    """(x, text) of each ``<text class=cls>``, unescaped."""
    return [(float(x), _unescape(t)) for x, c, _, t in _TEXT.findall(svg) if c == cls]


def _unescape(s: str) -> str:
    page = Page(f"<p>{s}</p>")
    return "".join(page.text)


def test_text_width_is_conservative_and_fit_shortens_to_the_room() -> None:
    # At least DejaVu Sans Bold's advance widths (the widest common system font).
    assert text_width("mmmmmmmmmm", 10, bold=True) >= 104
    assert text_width("<<<<>>>>", 10, bold=True) >= 8 * 8.4
    assert text_width("abcdefghijklmnopqrstuvwxyz", 10, bold=True) >= 26 * 6.36
    short = fit(LONG, 13.5, 180, bold=True)
    assert short.endswith("…")
    assert LONG.startswith(short[:-1])
    assert text_width(short, 13.5, bold=True) <= 180
    assert fit("plain", 13.5, 180, bold=True) == "plain"


@pytest.mark.parametrize("note", ["", "recommended · label-free"])
def test_interval_chart_row_labels_and_values_stay_inside_the_chart(note: str) -> None:
    bars = [
        Bar(LONG, 42.0, (40.0, 99.0), "#0072B2", note),
        Bar("b", 99.9, (99.0, 100.0), "#E69F00"),
    ]
    svg = str(interval_chart(bars, x_max=100.0, axis_label="risk", digits=3))
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg)[1])  # type: ignore[index]
    labels = _texts(svg, "row-label")
    assert [t for _, t in labels] == [fit(LONG, 13.5, LABEL_ROOM, bold=True), "b"]
    for x, t in labels:
        assert x - text_width(t, 13.5, bold=True) >= 0, t
    for x, t in _texts(svg, "note"):
        assert x - text_width(t, 12, bold=True) >= 0, t
    for x, t in _texts(svg, "value"):
        assert x + text_width(t, 12.5) <= width, t
    assert any(t.startswith(f"{LONG}: ") for t in Page(svg).text)  # the whole name, on hover


def test_heat_map_row_and_column_labels_stay_inside_the_chart() -> None:
    cells = {"gaussian_noise": {"rpc": HeatValue(0.5)}, "x" * 60: {"rpc": HeatValue(0.5)}}
    rows = [HeatRow(LONG, "risk 12.3", cells), HeatRow("plain", "risk 1.0", cells)]
    svg = str(heat_map(rows, [("noise", ["gaussian_noise", "x" * 60])], metric="rpc"))
    labels = _texts(svg, "row-label")
    assert [t for _, t in labels] == [fit(LONG, 13.5, LABEL_ROOM, bold=True), "plain"]
    for x, t in labels:
        assert x - text_width(t, 13.5, bold=True) >= 0, t
    for x, t in _texts(svg, "row-note"):
        assert x - text_width(t, 11) >= 0, t
    cols = re.findall(r'<text class="col-label" transform="translate\(([\d.]+),([\d.]+)\)', svg)
    names = re.findall(r'class="col-label"[^>]*>([^<]*)</text>', svg)
    assert names == ["gaussian_noise", fit("x" * 60, 11.5, 130)]
    for (_, y), name in zip(cols, names, strict=True):  # rotated: reads upwards from y
        assert float(y) - text_width(name, 11.5) >= 24, name  # below the family band


def test_severity_axis_title_clears_the_tick_labels() -> None:
    series = [Series("m", "#0072B2", 0, [(0, 1.0, None), (3, 0.1, (0.05, 0.2))])]
    svg = str(line_chart(series, title="fog", x_ticks=[0, 3], x_label="severity",
                         y_label="mAP50-95 (0–1)", y_max=1.0))  # fmt: skip
    ticks = [(x, t) for x, t in _texts(svg, "tick") if t in {"0", "0.25", "0.5", "0.75", "1"}]
    assert {t for _, t in ticks} == {"0", "0.25", "0.5", "0.75", "1"}
    title = re.search(
        r'class="axis-label" text-anchor="middle" transform="translate\(([\d.]+),', svg
    )
    assert title is not None
    title_x = float(title[1])
    # The rotated title's glyphs end about 0.3 em right of its baseline.
    leftmost_tick = min(x - text_width(t, 11) for x, t in ticks)
    assert title_x + 0.3 * 11.5 < leftmost_tick
    assert title_x - 11.5 >= 0


def test_header_cells_keep_the_case_of_names(run: Path) -> None:
    """Only fixed column titles (``th.caps``) are upper-cased; a name is shown as given."""
    html = write_report(run).read_text()
    css = (Path(__file__).parents[2] / "src/brittle/report/templates/report.css").read_text()
    rule = re.search(r"table\.data th \{([^}]*)\}", css)
    assert rule is not None
    assert "text-transform" not in rule[1]
    assert re.search(r"table\.data th\.caps \{[^}]*text-transform: uppercase", css)
    heads = re.findall(r"<th(?: class=\"([^\"]*)\")?(?: [^>]*)?>(.*?)</th>", html, re.S)
    named = [cls.split() for cls, body in heads if "&lt;script&gt;alert(1)" in body]
    assert len(named) == 2, "a model's name heads its per-class and its comparison column"
    assert not [c for c in named if "caps" in c]
    assert ["caps"] in [cls.split() for cls, body in heads if body == "model"]


def test_the_comparison_legend_sample_is_not_a_significance_mark(run: Path) -> None:
    """`.sig-mark` is exactly a significant difference: risk, the noise family and
    gaussian_noise in the one comparison; the legend's sample has a class of its own."""
    html = write_report(run).read_text()
    start = html.index('<section id="comparisons"')
    comparisons = Page(html[start : html.index("</section>", start)])
    assert len(comparisons.with_class("sig-mark")) == 3
    assert len(comparisons.with_class("sig-mark-sample")) == 1
