"""What a run prints in the terminal: clean metrics, robustness, and the verdict.

Shared by ``brittle eval`` / ``brittle run`` (after the run) and, later, ``brittle show``.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from brittle.perturbations.base import FAMILIES
from brittle.results import CI, Results
from brittle.run.aggregate import UNRATED, listing

__all__ = ["fmt", "print_clean", "print_robustness", "print_verdict"]


def fmt(v: float | None) -> str:
    return "—" if v is None or v < 0 else f"{v:.3f}"


def print_clean(console: Console, results: Results) -> None:
    """Per model: AP per class; then the COCO summary of every labeled model."""
    for name, m in results.models.items():
        if m.clean is None:
            console.print(f"[bold]{escape(name)}[/]: no labels, no metrics")
            continue
        console.print(
            f"\n[bold]{escape(name)}[/] ({escape(m.kind)}) on {escape(results.dataset.name)}: "
            f"{results.dataset.image_count} images",
            highlight=False,
        )
        table = Table()
        table.add_column("class")
        table.add_column("GT boxes", justify="right")
        table.add_column("AP50-95", justify="right")
        table.add_column("AP50", justify="right")
        for cls, pc in m.clean.per_class.items():
            table.add_row(Text(cls), str(pc.gt_count), fmt(pc.ap50_95), fmt(pc.ap50))
        table.add_section()
        table.add_row(
            f"[bold]mean over {len(m.evaluated_classes)} evaluated[/]",
            str(sum(pc.gt_count for pc in m.clean.per_class.values())),
            f"[bold]{fmt(m.clean.map50_95)}[/]",
            f"[bold]{fmt(m.clean.map50)}[/]",
        )
        console.print(table)
        notes = []
        if m.unevaluated_classes:
            notes.append(
                f"not predicted by this model (excluded from its mAP): "
                f"{escape(', '.join(m.unevaluated_classes))}"
            )
        if m.dropped_detections:
            notes.append(f"{m.dropped_detections} detections of unmapped model classes dropped")
        if m.failed_images:
            notes.append(f"[red]model failed on {len(m.failed_images)} images[/]")
        for n in notes:
            console.print(f"  {n}", highlight=False)
    labeled = {k: v for k, v in results.models.items() if v.clean is not None}
    if labeled:
        console.print("\n[bold]COCO metrics (clean)[/]")
        summary = Table()
        summary.add_column("model")
        for col in ("mAP50-95", "mAP50", "mAP75", "small", "medium", "large", "AR100"):
            summary.add_column(col, justify="right")
        for name, m in labeled.items():
            c = m.clean
            assert c is not None
            summary.add_row(
                Text(name),
                *(
                    fmt(x)
                    for x in (
                        c.map50_95,
                        c.map50,
                        c.map75,
                        c.map_small,
                        c.map_medium,
                        c.map_large,
                        c.ar100,
                    )
                ),
            )
        console.print(summary)


def _ci(ci: CI, digits: int = 3) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _signed(v: float, ci: CI, digits: int = 3) -> str:
    return f"{v:+.{digits}f} {_ci(ci, digits)}".rstrip()


def print_robustness(console: Console, results: Results) -> None:
    """Families x models (rPC or consistency with its interval), then each model's
    five worst perturbations."""
    models = {n: m for n, m in results.models.items() if m.families}
    if not models:
        return
    level = results.suite.bootstrap.level if results.suite else 0.95
    metric = (
        "rPC" if all(m.risk and m.risk.basis == "rpc" for m in models.values()) else ("consistency")
    )
    console.print(
        f"\n[bold]Robustness by family[/]: {metric}, {100 * level:.0f}% CI (1.0 = unaffected)",
        highlight=False,
    )
    table = Table()
    table.add_column("family")
    for name in models:
        table.add_column(Text(name), justify="right")
    present = {f for m in models.values() for f in m.families}
    # results.json keeps keys sorted; show families in the catalogue's order.
    families = [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))
    for f in families:
        cells = []
        for m in models.values():
            fr = m.families.get(f)
            if fr is None:
                cells.append("—")
            elif metric == "rPC":
                cells.append(f"{fmt(fr.rpc)} {_ci(fr.rpc_ci, 2)}")
            else:
                cells.append(f"{fr.consistency:.3f} {_ci(fr.consistency_ci, 2)}")
        table.add_row(Text(f), *cells)
    console.print(table)
    for name, m in models.items():
        worst = sorted(m.perturbations.items(), key=lambda kv: (-kv[1].degradation, kv[0]))[:5]
        shown = ", ".join(
            f"{p} ({fmt(pr.rpc) if pr.rpc is not None else f'{pr.consistency:.2f}'})"
            for p, pr in worst
        )
        console.print(f"  [bold]{escape(name)}[/] worst: {escape(shown)}", highlight=False)


def print_verdict(console: Console, results: Results) -> None:
    """Risk per model, the recommendation, significant differences, augmentation verdicts."""
    for name, m in results.models.items():
        if m.risk is None and m.families:
            console.print(f"[yellow]{escape(name)}[/]: {UNRATED}", highlight=False, soft_wrap=True)
    rated = {n: m for n, m in results.models.items() if m.risk is not None}
    if not rated:
        return
    level = results.suite.bootstrap.level if results.suite else 0.95
    pct = f"{100 * level:.0f}%"
    console.print(
        f"\n[bold]Risk score[/] (0-100, higher = riskier; {pct} CI; docs/robustness.md)",
        highlight=False,
    )
    table = Table()
    for col in ("model", "risk", pct + " CI", "clean mAP50-95", "worst families"):
        table.add_column(col, justify="left" if col in ("model", "worst families") else "right")
    for name in (n for n in results.ranking if n in rated):  # unrated models rank last
        m = rated[name]
        assert m.risk is not None
        worst = sorted(m.families.items(), key=lambda kv: (-kv[1].degradation, kv[0]))[:2]
        table.add_row(
            Text(name),
            f"{m.risk.value:.1f}",
            _ci(m.risk.ci, 1),
            fmt(m.clean.map50_95) if m.clean else "—",
            Text(", ".join(f"{f} ({fr.degradation:.2f} lost)" for f, fr in worst)),
        )
    console.print(table)
    ranked = [n for n in results.ranking if n in rated]
    if len(ranked) > 1:
        best, rest = ranked[0], ranked[1:]
        firm = [
            c for c in results.comparisons
            if c.a == best and c.risk is not None and c.risk.better == best
        ]  # fmt: skip
        # A lower risk is a smaller relative loss; say so when it comes with a
        # significantly lower clean accuracy, which risk alone does not show.
        more_accurate = [
            c.b for c in results.comparisons
            if c.a == best and c.clean is not None and c.clean.better == c.b
        ]  # fmt: skip
        if len(firm) == len(rest) and not more_accurate:
            console.print(
                f"[bold green]recommended: {escape(best)}[/]: the lowest risk score, "
                f"significantly lower than {escape(listing(rest))}",
                highlight=False,
            )
        elif len(firm) == len(rest):
            console.print(
                f"[bold]lowest risk: {escape(best)}[/], significantly lower than "
                f"{escape(listing(rest))}",
                highlight=False,
            )
        else:
            tied = [
                c.b for c in results.comparisons if c.a == best and c.b in rest and c not in firm
            ]
            console.print(
                f"[bold]lowest risk: {escape(best)}[/], but not significantly lower than "
                f"{escape(listing(tied))} on these images: compare where they differ below",
                highlight=False,
            )
        for c in results.comparisons:
            if c.a == best and c.clean is not None and c.clean.better == c.b:
                console.print(
                    f"  but {c.b} is significantly more accurate on clean images: mAP50-95 "
                    f"{c.clean.b:.3f} vs {c.clean.a:.3f} "
                    f"({_signed(-c.clean.difference, _flip(c.clean.ci, True))})",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
    for c in results.comparisons:
        for winner, loser in ((c.a, c.b), (c.b, c.a)):
            wins = {f: d for f, d in c.families.items() if d.better == winner}
            if not wins:
                continue
            sign = 1.0 if winner == c.a else -1.0
            shown = ", ".join(
                f"{f} ({_signed(sign * d.difference, _flip(d.ci, sign < 0))})"
                for f, d in sorted(wins.items(), key=lambda kv: -abs(kv[1].difference))
            )
            console.print(
                f"  {winner} is significantly more robust than {loser} to: {shown}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        ties = [f for f, d in c.families.items() if d.better is None]
        if ties:
            console.print(
                f"  {c.a} vs {c.b}, no significant difference: {', '.join(ties)}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    if results.verdicts:
        console.print("\n[bold]Augmentation verdicts[/]")
        colour = {"intended effect": "green", "backfired": "red"}
        for v in results.verdicts:
            style = colour.get(v.outcome, "yellow")
            line = (
                f"  {escape(v.model)} trained with [bold]{escape(v.augmentation)}[/] vs "
                f"{escape(v.reference)}: [{style}]{escape(v.outcome)}[/]"
            )
            if v.difference is not None:
                metric = "rPC" if v.difference.metric == "rpc" else v.difference.metric
                line += (
                    f", {metric} {_signed(v.difference.difference, v.difference.ci)} "
                    f"on {escape(', '.join(v.perturbations))}"
                )
            console.print(line, highlight=False, soft_wrap=True)


def _flip(ci: CI, flip: bool) -> CI:
    return None if ci is None else ((-ci[1], -ci[0]) if flip else ci)
