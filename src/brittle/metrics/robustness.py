"""COCO-C robustness: mean and relative performance under corruption (mPC, rPC).

The definitions are those of Michaelis et al., *Benchmarking Robustness in Object
Detection: Autonomous Driving when Winter is Coming*, 2019 (arXiv:1907.07484), section 3.
With ``P`` a performance measure (COCO uses AP50:95), ``P_clean`` its value on clean data
and ``P[c, s]`` its value under corruption ``c`` at severity ``s``:

* ``mPC = (1 / N_c) Σ_c (1 / N_s) Σ_s P[c, s]``
* ``rPC = mPC / P_clean``

brittle also reports each perturbation's relative performance,
``rpc(c) = ((1 / N_s) Σ_s P[c, s]) / P_clean``; the mean of ``rpc(c)`` over ``c`` is rPC.

Scores come as plain mappings ``{perturbation: {severity: value}}``:

>>> scores = {"fog": {1: 0.40, 2: 0.30}, "snow": {1: 0.20, 2: 0.10}}
>>> mean_performance(scores)
0.25
>>> relative_performance(scores, clean=0.5)
0.5
>>> relative_performance(scores, clean=0.0)
nan
>>> robustness(scores, clean=0.0).reason
'clean performance is 0: the model fails on clean data, so relative performance is undefined'

:func:`relative_performance_arrays` does the same for stacked arrays (bootstrap resamples).
docs/robustness.md has the formulas and conventions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, ShapeError

__all__ = [
    "Robustness",
    "clean_undefined_reason",
    "mean_performance",
    "perturbation_performance",
    "relative_performance",
    "relative_performance_arrays",
    "relative_perturbation_performance",
    "robustness",
]

Scores = Mapping[str, Mapping[int, float]]


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    view = a.view()
    view.flags.writeable = False
    return view


def _table(
    scores: Scores, severities: Sequence[int] | None
) -> tuple[tuple[str, ...], tuple[int, ...], NDArray[np.float64]]:
    """The scores as a (perturbation, severity) table, checked complete and finite.

    Every perturbation must have every severity: mPC weighs perturbations equally only
    when each is averaged over the same severities, and a silently missing cell would
    change the number without anyone noticing.
    """
    if not scores:
        raise ConfigError("no perturbation scores given: mPC needs at least one perturbation")
    names = tuple(scores)
    try:
        given = {n: {int(s): float(v) for s, v in scores[n].items()} for n in names}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"scores must map perturbation -> {{severity: number}}: {exc}") from exc
    if severities is None:
        wanted = tuple(sorted(set().union(*(g.keys() for g in given.values()))))
    else:
        wanted = tuple(sorted({int(s) for s in severities}))
    if not wanted:
        raise ConfigError("no severities: every perturbation's score mapping is empty")
    missing = {n: [s for s in wanted if s not in g] for n, g in given.items()}
    missing = {n: m for n, m in missing.items() if m}
    if missing:
        detail = "; ".join(
            f"{n!r} lacks severity {', '.join(map(str, m))}" for n, m in missing.items()
        )
        raise ConfigError(
            f"missing scores: {detail} (every perturbation needs severities "
            f"{', '.join(map(str, wanted))})"
        )
    table = np.array([[given[n][s] for s in wanted] for n in names], np.float64)
    bad = ~np.isfinite(table) | (table < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConfigError(
            f"score of {names[i]!r} at severity {wanted[j]} is {table[i, j]}: performance "
            "must be a finite number >= 0 (-1 is COCO's 'no ground truth' marker, not a score)"
        )
    return names, wanted, table


def clean_undefined_reason(clean: float) -> str | None:
    """Why relative performance cannot be computed against ``clean``, or None if it can.

    >>> clean_undefined_reason(0.42) is None
    True
    >>> clean_undefined_reason(-1.0)
    "clean performance is -1.0: negative (-1 is COCO's 'no ground truth' marker)"
    """
    c = float(clean)
    if math.isnan(c):
        return "clean performance is nan: undefined on clean data"
    if math.isinf(c):
        return f"clean performance is {c}: not a finite number"
    if c < 0:
        return f"clean performance is {c}: negative (-1 is COCO's 'no ground truth' marker)"
    if c == 0:
        return (
            "clean performance is 0: the model fails on clean data, "
            "so relative performance is undefined"
        )
    return None


def mean_performance(scores: Scores, *, severities: Sequence[int] | None = None) -> float:
    """mPC: the mean over perturbations of each one's mean over severities.

    ``severities`` are the ones every perturbation must have; by default, every severity
    that any perturbation has (pass ``(1, 2, 3, 4, 5)`` to insist on the full COCO-C set).

    >>> mean_performance({"fog": {1: 0.4, 2: 0.2}, "snow": {1: 0.3}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: missing scores: 'snow' lacks severity 2 (every perturbation ...
    """
    _, _, table = _table(scores, severities)
    return float(table.mean(axis=1).mean())


def perturbation_performance(
    scores: Scores, *, severities: Sequence[int] | None = None
) -> dict[str, float]:
    """Each perturbation's mean performance over severities, ``(1 / N_s) Σ_s P[c, s]``.

    >>> perturbation_performance({"fog": {1: 0.4, 2: 0.2}, "snow": {1: 0.3, 2: 0.1}})
    {'fog': 0.30000000000000004, 'snow': 0.2}
    """
    names, _, table = _table(scores, severities)
    return dict(zip(names, table.mean(axis=1).tolist(), strict=True))


def relative_performance(
    scores: Scores, clean: float, *, severities: Sequence[int] | None = None
) -> float:
    """rPC = mPC / P_clean; nan when the clean performance is not positive.

    :func:`clean_undefined_reason` (or :func:`robustness`'s ``reason``) says why.

    >>> relative_performance({"fog": {1: 0.3, 2: 0.1}}, clean=0.4)
    0.5
    """
    mpc = mean_performance(scores, severities=severities)
    return math.nan if clean_undefined_reason(clean) else mpc / float(clean)


def relative_perturbation_performance(
    scores: Scores, clean: float, *, severities: Sequence[int] | None = None
) -> dict[str, float]:
    """Each perturbation's rpc(c) = mean over severities of P[c, s], divided by P_clean.

    All nan when the clean performance is not positive.

    >>> relative_perturbation_performance({"fog": {1: 0.3, 2: 0.1}, "snow": {1: 0.4, 2: 0.4}}, 0.4)
    {'fog': 0.5, 'snow': 1.0}
    """
    per = perturbation_performance(scores, severities=severities)
    if clean_undefined_reason(clean):
        return dict.fromkeys(per, math.nan)
    return {n: v / float(clean) for n, v in per.items()}


@dataclass(frozen=True, slots=True)
class Robustness:
    """mPC, rPC and the per-perturbation numbers they come from.

    ``perturbations`` and ``severities`` name the rows and columns of ``scores``
    (P[c, s]); ``mean`` (per perturbation, over severities) and ``relative`` (``mean /
    clean``) follow ``perturbations``. ``rpc`` and ``relative`` are nan, and ``reason``
    says why, when the clean performance is not positive.
    """

    clean: float
    mpc: float
    rpc: float
    perturbations: tuple[str, ...]
    severities: tuple[int, ...]
    scores: NDArray[np.float64]
    mean: NDArray[np.float64]
    relative: NDArray[np.float64]
    reason: str | None

    def per_perturbation(self) -> dict[str, tuple[float, float]]:
        """``{perturbation: (mean performance, relative performance)}``."""
        return {
            n: (float(m), float(r))
            for n, m, r in zip(self.perturbations, self.mean, self.relative, strict=True)
        }


def robustness(
    scores: Scores, clean: float, *, severities: Sequence[int] | None = None
) -> Robustness:
    """Everything COCO-C reports for one model and metric, with the reason when rPC is nan.

    >>> r = robustness({"fog": {1: 0.3, 2: 0.1}, "snow": {1: 0.4, 2: 0.4}}, clean=0.4)
    >>> r.mpc, r.rpc, r.per_perturbation()
    (0.30000000000000004, 0.7500000000000001, {'fog': (0.2, 0.5), 'snow': (0.4, 1.0)})
    """
    names, sev, table = _table(scores, severities)
    mean = table.mean(axis=1)
    mpc = float(mean.mean())
    reason = clean_undefined_reason(clean)
    c = float(clean)
    relative = np.full(len(names), np.nan) if reason else mean / c
    return Robustness(
        clean=c,
        mpc=mpc,
        rpc=math.nan if reason else mpc / c,
        perturbations=names,
        severities=sev,
        scores=_readonly(table),
        mean=_readonly(mean),
        relative=_readonly(relative),
        reason=reason,
    )


def relative_performance_arrays(
    clean: ArrayLike, perturbed: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """mPC and rPC of stacked scores: ``perturbed`` (..., C, S), ``clean`` (...).

    For bootstrap resamples and other batches: each leading index is one evaluation.
    rPC is nan where ``clean`` is not positive; a non-finite or negative ``perturbed``
    entry raises, as in :func:`mean_performance`.

    >>> mpc, rpc = relative_performance_arrays([0.5, 0.0], [[[0.4, 0.2]], [[0.1, 0.1]]])
    >>> mpc.tolist(), rpc.tolist()
    ([0.30000000000000004, 0.1], [0.6000000000000001, nan])
    """
    c = np.asarray(clean, np.float64)
    p = np.asarray(perturbed, np.float64)
    if p.ndim < 2 or p.shape[:-2] != c.shape or 0 in p.shape[-2:]:
        raise ShapeError(
            f"perturbed must have shape clean.shape + (C, S) with C, S >= 1; got clean "
            f"{c.shape}, perturbed {p.shape}"
        )
    if not np.all(np.isfinite(p) & (p >= 0)):
        raise ConfigError("perturbed scores must be finite numbers >= 0")
    mpc = p.mean(axis=-1).mean(axis=-1)
    ok = np.isfinite(c) & (c > 0)
    rpc = np.full(c.shape, np.nan)
    np.divide(mpc, c, out=rpc, where=ok)
    return mpc, rpc
