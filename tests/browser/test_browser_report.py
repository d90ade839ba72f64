"""The HTML report in a real browser: it loads offline without errors, its heat map, gallery
filters, lightbox and significance marks work, user-provided strings stay text, and the index
links to every run's report.

The report's contract (src/brittle/report): one `.heat-cell` per (model, perturbation) with
data-model and data-perturbation; `.gallery-item`s with the same data attributes, filtered by
a <select> for models and one for perturbations; a gallery image opens an enlarged view that
Escape closes; `.sig-mark` marks a significant difference in the comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pytest

from .browser_kit import (
    HOSTILE_CLASSES,
    HOSTILE_MODEL,
    HOSTILE_RUN,
    PageLog,
    Run,
    brittle,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page


# ---------------------------------------------------------------- helpers


def _open(page: Page, log: PageLog, path: Path) -> None:
    page.goto(log.allow(path), wait_until="load")


def _screenshot(page: Page, screenshots: Path, name: str) -> None:
    """A full-page screenshot, with every lazily loaded image loaded first."""
    page.evaluate(
        """async () => {
            const images = [...document.images];
            for (const im of images) im.loading = 'eager';
            await Promise.all(images.map(im => im.decode().catch(() => null)));
        }"""
    )
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)


_ITEMS_JS = """els => els.map(e => ({
    model: e.getAttribute('data-model'),
    perturbation: e.getAttribute('data-perturbation'),
    visible: e.getClientRects().length > 0
        && e.checkVisibility({visibilityProperty: true, opacityProperty: true}),
}))"""


def _items(page: Page, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = page.eval_on_selector_all(selector, _ITEMS_JS)
    return items


def _visible(page: Page) -> list[tuple[str, str]]:
    return [(i["model"], i["perturbation"]) for i in _items(page, ".gallery-item") if i["visible"]]


def _filter(page: Page, names: set[str]) -> tuple[Locator, dict[str, str]]:
    """The <select> whose options name all of ``names``, and option value by name."""
    selects = page.locator("select")
    for k in range(selects.count()):
        select = selects.nth(k)
        options: list[dict[str, str]] = select.locator("option").evaluate_all(
            "os => os.map(o => ({value: o.value, label: o.textContent.trim()}))"
        )
        by_name = {}
        for o in options:
            for key in (o["value"], o["label"]):
                if key in names:
                    by_name[key] = o["value"]
        if set(by_name) == names:
            return select, by_name
    raise AssertionError(f"no <select> offers all of {sorted(names)}")


def _models(run: Run) -> list[str]:
    return list(run.results["models"])


def _perturbations(run: Run) -> list[str]:
    return list(run.results["suite"]["perturbations"])


_MARK_AREAS_JS = """() => {
    for (const e of document.querySelectorAll('img, canvas')) {
        const r = e.getBoundingClientRect();
        e.__btArea = e.checkVisibility({visibilityProperty: true}) ? r.width * r.height : 0;
    }
}"""

_GROWN_JS = """(factor) => {
    const out = [];
    for (const e of document.querySelectorAll('img, canvas')) {
        const r = e.getBoundingClientRect();
        const area = e.checkVisibility({visibilityProperty: true}) ? r.width * r.height : 0;
        const onScreen = r.right > 0 && r.bottom > 0
            && r.left < innerWidth && r.top < innerHeight;
        if (onScreen && area > factor * (e.__btArea || 0)) {
            e.__btOpened = true;
            out.push({width: r.width, height: r.height});
        }
    }
    return out;
}"""


def _open_and_close_lightbox(page: Page, item: Locator) -> None:
    """Click the item's image: an image larger than the thumbnail appears on screen (a new
    one, or the thumbnail grown); Escape takes it away again."""
    thumb = item.locator("img").first
    thumb.scroll_into_view_if_needed()
    box = thumb.bounding_box()
    assert box is not None, "the gallery image has no box"
    size = f"{box['width']:.0f}x{box['height']:.0f}"
    page.evaluate(_MARK_AREAS_JS)
    thumb.click()
    page.wait_for_timeout(150)  # transitions
    opened = page.evaluate(_GROWN_JS, 1.2)
    assert opened, f"clicking a {size} gallery image showed no image"
    largest = max(opened, key=lambda b: b["width"] * b["height"])
    assert largest["width"] * largest["height"] > 1.5 * box["width"] * box["height"], (
        f"the enlarged view ({largest['width']:.0f}x{largest['height']:.0f}) is not larger "
        f"than the {size} thumbnail"
    )
    page.keyboard.press("Escape")
    page.wait_for_timeout(150)
    still = page.evaluate(
        """(limit) => [...document.querySelectorAll('img, canvas')].filter(e => {
            if (!e.__btOpened) return false;
            const r = e.getBoundingClientRect();
            const onScreen = r.right > 0 && r.bottom > 0
                && r.left < innerWidth && r.top < innerHeight;
            return onScreen && e.checkVisibility({visibilityProperty: true})
                && r.width * r.height > limit;
        }).length""",
        1.2 * box["width"] * box["height"],
    )
    assert still == 0, "Escape did not close the enlarged view"


# ---------------------------------------------------------------- every run


@pytest.fixture(params=["synthetic_run", "real_run"])
def run(request: pytest.FixtureRequest) -> Run:
    value: Run = request.getfixturevalue(request.param)
    return value


def test_brittle_run_writes_its_report(run: Run) -> None:
    assert run.wrote_report, f"`brittle run` wrote no {run.report}"
    assert run.report.stat().st_size > 0


def test_the_report_loads_offline_without_errors(
    run: Run, page: Page, page_log: PageLog, screenshots: Path, request: pytest.FixtureRequest
) -> None:
    _open(page, page_log, run.report)
    assert page.title().strip(), "the report has no title"
    # Every image is inline: nothing in the page refers to a file or a server.
    sources = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src'))")
    assert sources, "the report shows no images"
    assert [s for s in sources if s is not None and not s.startswith("data:")] == []
    name = request.node.callspec.params["run"].removesuffix("_run")
    _screenshot(page, screenshots, f"{name}-report")
    page_log.assert_clean()


def test_the_content_security_policy_forbids_the_network(
    run: Run, page: Page, page_log: PageLog
) -> None:
    _open(page, page_log, run.report)
    csp = page.eval_on_selector_all(
        'meta[http-equiv="Content-Security-Policy" i]', "els => els.map(e => e.content)"
    )
    assert len(csp) == 1, "no Content-Security-Policy meta tag"
    violated = page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', e => resolve(e.blockedURI));
            const img = new Image();
            img.src = 'https://example.com/pixel.png';
            document.body.append(img);
            fetch('https://example.com/data.json').catch(() => {});
            setTimeout(() => resolve(null), 2000);
        })"""
    )
    assert violated is not None, f"nothing blocked a request under {csp[0]!r}"
    assert violated.startswith("https://example.com/")
    page.wait_for_timeout(200)
    # Chromium reports a request the policy blocked as a request that failed.
    assert page_log.requests, "no request was even attempted"
    blocked = {url: page_log.failures.get(url) for url in page_log.requests}
    assert all("csp" in (why or "").lower() for why in blocked.values()), blocked


def test_the_heat_map_has_one_cell_per_model_and_perturbation(
    run: Run, page: Page, page_log: PageLog
) -> None:
    _open(page, page_log, run.report)
    cells = [(c["model"], c["perturbation"]) for c in _items(page, ".heat-cell")]
    expected = [(m, p) for m in _models(run) for p in _perturbations(run)]
    assert sorted(cells) == sorted(expected)
    page_log.assert_clean()


_CELLS_JS = """cells => {
    // WCAG relative luminance of a computed colour, 'rgb(r, g, b)'.
    const luminance = colour => {
        const [r, g, b] = colour.match(/[0-9.]+/g).slice(0, 3).map(v => {
            v = Number(v) / 255;
            return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    return cells.map(c => {
        const text = c.querySelector('text'), rect = c.querySelector('rect');
        const ink = getComputedStyle(text).fill, fill = getComputedStyle(rect).fill;
        const [hi, lo] = [luminance(ink), luminance(fill)].sort((a, b) => b - a);
        return {model: c.getAttribute('data-model'),
                perturbation: c.getAttribute('data-perturbation'),
                label: text.textContent.trim(), ink: ink, fill: fill,
                contrast: (hi + 0.05) / (lo + 0.05)};
    });
}"""


def test_the_heat_map_shows_each_cells_rpc_legibly(run: Run, page: Page, page_log: PageLog) -> None:
    """Each cell's number is its rPC (to 2 decimals), drawn with a contrast of at least 3:1
    against the cell's colour (as rendered: CSS can override an SVG fill attribute)."""
    _open(page, page_log, run.report)
    cells = page.locator(".heat-cell").evaluate_all(_CELLS_JS)
    models = run.results["models"]
    wrong = [
        (c["model"], c["perturbation"], c["label"])
        for c in cells
        if abs(float(c["label"]) - models[c["model"]]["perturbations"][c["perturbation"]]["rpc"])
        > 0.0051
    ]  # fmt: skip
    assert wrong == [], "cells whose number is not their rPC"
    illegible = [
        f"{c['model']}/{c['perturbation']}: {c['label']} in {c['ink']} on {c['fill']}, "
        f"contrast {c['contrast']:.2f}"
        for c in cells
        if c["contrast"] < 3
    ]
    assert not illegible, "numbers under 3:1 contrast:\n" + "\n".join(illegible)
    page_log.assert_clean()


def test_the_gallery_filters_show_only_the_chosen_model_or_perturbation(
    run: Run, page: Page, page_log: PageLog
) -> None:
    _open(page, page_log, run.report)
    items = [(i["model"], i["perturbation"]) for i in _items(page, ".gallery-item")]
    assert sorted(items) == sorted((e["model"], e["perturbation"]) for e in run.gallery)
    assert sorted(_visible(page)) == sorted(items), "not every gallery item shows at first"
    models = {m for m, _ in items}
    perts = {p for _, p in items}
    model_select, model_value = _filter(page, models)
    pert_select, pert_value = _filter(page, perts)
    everything = model_select.input_value(), pert_select.input_value()

    for model in sorted(models):
        model_select.select_option(model_value[model])
        shown = _visible(page)
        assert shown, f"choosing model {model!r} hides everything"
        assert sorted(shown) == sorted(i for i in items if i[0] == model), model
    model_select.select_option(everything[0])
    assert sorted(_visible(page)) == sorted(items), "going back to every model"

    for pert in sorted(perts):
        pert_select.select_option(pert_value[pert])
        assert sorted(_visible(page)) == sorted(i for i in items if i[1] == pert), pert
    model, pert = items[-1]
    model_select.select_option(model_value[model])
    pert_select.select_option(pert_value[pert])
    assert sorted(_visible(page)) == sorted(i for i in items if i == (model, pert)), "both"
    model_select.select_option(everything[0])
    pert_select.select_option(everything[1])
    assert sorted(_visible(page)) == sorted(items), "going back to everything"
    page_log.assert_clean()


def test_a_gallery_image_opens_enlarged_and_escape_closes_it(
    run: Run, page: Page, page_log: PageLog
) -> None:
    _open(page, page_log, run.report)
    items = page.locator(".gallery-item")
    assert items.count() > 0
    _open_and_close_lightbox(page, items.first)
    _open_and_close_lightbox(page, items.last)  # and again, on another image
    page_log.assert_clean()


_LAYOUT_JS = """() => {
    const out = [];
    const name = svg => svg.closest('figure')?.querySelector('figcaption')?.textContent.trim()
        || svg.closest('section')?.id || '?';
    for (const svg of document.querySelectorAll('svg')) {
        const box = svg.getBoundingClientRect();
        const texts = [...svg.querySelectorAll('text')]
            .filter(t => t.checkVisibility() && t.getBoundingClientRect().width > 0);
        for (const t of texts) {
            const r = t.getBoundingClientRect();
            const cut = Math.max(box.left - r.left, r.right - box.right,
                                 box.top - r.top, r.bottom - box.bottom);
            if (cut > 2) out.push(`${name(svg)}: "${t.textContent}" cut by ${cut.toFixed(0)}px`);
        }
        for (let i = 0; i < texts.length; i++) {
            for (let j = i + 1; j < texts.length; j++) {
                const a = texts[i].getBoundingClientRect(), b = texts[j].getBoundingClientRect();
                const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
                const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
                if (x > 2 && y > 2) {
                    out.push(`${name(svg)}: "${texts[i].textContent}" overlaps `
                             + `"${texts[j].textContent}" (${x.toFixed(0)}x${y.toFixed(0)}px)`);
                }
            }
        }
    }
    return [...new Set(out)];
}"""


@pytest.mark.parametrize("name", ["synthetic_run", "hostile_run", "real_run"])
def test_chart_labels_are_neither_cut_off_nor_overlapping(
    name: str, request: pytest.FixtureRequest, page: Page, page_log: PageLog
) -> None:
    """Every text of every chart lies inside its chart and clear of the others (the hostile
    run has a long model name)."""
    run: Run = request.getfixturevalue(name)
    _open(page, page_log, run.report)
    problems = page.evaluate(_LAYOUT_JS)
    assert not problems, "chart labels:\n" + "\n".join(problems)
    page_log.assert_clean()


_OVERFLOW_JS = """() => {
    const out = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth + 1) {
        out.push(`the page scrolls sideways: ${root.scrollWidth}px in ${root.clientWidth}px`);
    }
    // A card's content stays inside it; wide tables scroll inside their .scroll-x box.
    for (const card of document.querySelectorAll('.card')) {
        const scrolls = ['auto', 'scroll'].includes(getComputedStyle(card).overflowX);
        if (!scrolls && card.scrollWidth > card.clientWidth + 1) {
            const where = card.closest('section')?.id || '?';
            const title = card.querySelector('h3')?.textContent.trim().slice(0, 40) || '';
            out.push(`${where} card "${title}": ${card.scrollWidth}px in ${card.clientWidth}px`);
        }
    }
    return out;
}"""


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("name", ["synthetic_run", "hostile_run", "real_run"])
def test_nothing_spills_out_of_the_page_or_its_cards(
    name: str, width: int, request: pytest.FixtureRequest, page: Page, page_log: PageLog
) -> None:
    """On a laptop and on a phone: no sideways scrolling of the page, no card whose content
    runs past its edge (the augmentation verdicts' tables once did, at 1280 px)."""
    run: Run = request.getfixturevalue(name)
    page.set_viewport_size({"width": width, "height": 900})
    _open(page, page_log, run.report)
    problems = page.evaluate(_OVERFLOW_JS)
    assert not problems, f"at {width}px:\n" + "\n".join(problems)
    page_log.assert_clean()


# ---------------------------------------------------------------- the synthetic run


def _significant(results: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """What results.json calls significant: (name, better model) by kind of difference."""
    found: dict[str, set[tuple[str, str]]] = {
        "clean": set(), "risk": set(), "families": set(), "perturbations": set()
    }  # fmt: skip
    for c in results["comparisons"]:
        for kind in ("clean", "risk"):
            if c[kind] is not None and c[kind]["better"] is not None:
                found[kind].add((f"{c['a']} vs {c['b']}", c[kind]["better"]))
        for kind in ("families", "perturbations"):
            found[kind] |= {(n, d["better"]) for n, d in c[kind].items() if d["better"]}
    return found


_MARKED_ROWS_JS = """els => els.map(e => ({
    row: e.closest('tr') ? e.closest('tr').querySelector('td').firstChild.textContent.trim()
        : null,
    better: e.textContent.replace('\u2605', '').trim(),
}))"""


@pytest.mark.parametrize("name", ["synthetic_run", "real_run"])
def test_the_comparison_marks_every_significant_difference(
    name: str, request: pytest.FixtureRequest, page: Page, page_log: PageLog
) -> None:
    """The comparison tables mark (.sig-mark) exactly the differences results.json calls
    significant, naming the better model; the verdict marks each significant family."""
    run: Run = request.getfixturevalue(name)
    significant = _significant(run.results)
    if name == "synthetic_run":  # the flip: rect is better than lefty
        assert ("hflip", "rect") in significant["perturbations"]
    _open(page, page_log, run.report)
    marked = page.locator("#comparisons .sig-mark").evaluate_all(_MARKED_ROWS_JS)
    assert len(marked) == sum(len(v) for v in significant.values()), (marked, significant)
    rows = {(m["row"], m["better"]) for m in marked}
    named = significant["families"] | significant["perturbations"]
    assert named <= rows, "a significant family or perturbation is not marked"
    wins = page.locator("#verdict .sig-mark").count()
    assert wins == len(significant["families"]), "the verdict's significant families"
    page_log.assert_clean()


# ---------------------------------------------------------------- the hostile run


def _pwned(page: Page) -> Any:
    return page.evaluate("() => typeof window.__pwned === 'undefined' ? null : window.__pwned")


def test_hostile_names_are_shown_as_text_and_never_run(
    hostile_run: Run, page: Page, page_log: PageLog, screenshots: Path
) -> None:
    _open(page, page_log, hostile_run.report)
    assert _pwned(page) is None
    text = page.inner_text("body")
    images = sorted({e["image"] for e in hostile_run.gallery})
    assert len(images) == 4
    missing = [s for s in (*HOSTILE_CLASSES, HOSTILE_MODEL, *images) if s not in text]
    assert missing == [], "not shown as text"
    # Attributes carry them intact too (escaped, not cut at a quote).
    models = {c["model"] for c in _items(page, ".heat-cell")}
    assert models == {HOSTILE_MODEL, "plain"}
    # Nothing they contain became an element.
    planted = page.evaluate(
        """() => [
            ...document.querySelectorAll('img[src="x"], img[src="y"], script:not([nonce])'),
            ...[...document.querySelectorAll('b, i, u')]
                .filter(e => /^(x|m&|&"'x|z\\.png)/.test(e.textContent)),
        ].map(e => e.outerHTML.slice(0, 80))"""
    )
    assert planted == [], "hostile names became markup"
    _screenshot(page, screenshots, "hostile-report")

    # Interacting builds more of the page: still nothing runs.
    for k in range(page.locator("select").count()):
        select = page.locator("select").nth(k)
        for value in select.locator("option").evaluate_all("os => os.map(o => o.value)"):
            select.select_option(value)
            assert _pwned(page) is None
    for button in page.locator("button[data-metric]:not([disabled])").all():
        button.click()
    for k in range(page.locator(".heat-cell").count()):
        page.locator(".heat-cell").nth(k).hover()
    items = page.locator(".gallery-item")
    for k in range(0, items.count(), 5):
        if items.nth(k).is_visible():
            items.nth(k).locator("img").first.click()
            page.keyboard.press("Escape")
    assert _pwned(page) is None
    page_log.assert_clean()


# ---------------------------------------------------------------- the index


def test_the_index_links_to_every_report(
    synthetic_run: Run,
    hostile_run: Run,
    runs_root: Path,
    page: Page,
    page_log: PageLog,
    screenshots: Path,
) -> None:
    from brittle.report import write_index

    index = write_index(runs_root)
    assert index == runs_root / "index.html"
    _open(page, page_log, index)
    csp = page.locator('meta[http-equiv="Content-Security-Policy" i]').count()
    assert csp == 1, "the index has no Content-Security-Policy meta tag"
    reports = {r.report.resolve() for r in (synthetic_run, hostile_run)}
    for r in reports:
        page_log.allow(r)
    links = page.locator("a[href]")
    hrefs = links.evaluate_all("as => as.map(a => a.href)")
    targets = [Path(unquote(urlparse(h).path)) for h in hrefs if h.startswith("file:")]
    assert sorted(set(targets) & reports) == sorted(reports), hrefs
    assert HOSTILE_RUN in page.inner_text("body"), "the hostile run's name is not text"
    _screenshot(page, screenshots, "index")

    for k, href in enumerate(hrefs):
        if Path(unquote(urlparse(href).path)) not in reports:
            continue
        with page.expect_navigation():
            links.nth(k).click()
        assert Path(unquote(urlparse(page.url).path)) in reports
        assert page.title().strip()
        assert page.locator(".heat-cell").count() > 0, f"{page.url} is not a report"
        page.go_back()
    assert _pwned(page) is None
    page_log.assert_clean()


def test_brittle_report_writes_a_report_and_an_index_elsewhere(
    synthetic_run: Run,
    hostile_run: Run,
    runs_root: Path,
    tmp_path: Path,
    page: Page,
    page_log: PageLog,
) -> None:
    """`brittle report RUN --out` and `brittle report --index DIR --out` elsewhere: the
    index's relative links still reach both reports."""
    report = tmp_path / "copy.html"
    proc = brittle("report", str(synthetic_run.dir), "--out", str(report))
    assert proc.returncode == 0, proc.stderr
    assert report.stat().st_size > 0
    out = tmp_path / "elsewhere" / "index.html"
    out.parent.mkdir()
    proc = brittle("report", "--index", str(runs_root), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    _open(page, page_log, out)
    hrefs = page.locator("a[href]").evaluate_all("as => as.map(a => a.href)")
    targets = {Path(unquote(urlparse(h).path)) for h in hrefs if h.startswith("file:")}
    reports = {r.report.resolve() for r in (synthetic_run, hostile_run)}
    assert reports <= targets, hrefs
    page_log.assert_clean()
