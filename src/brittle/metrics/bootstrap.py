"""Bootstrap confidence intervals over images: mAP, rPC, consistency, paired differences.

The unit of resampling is the image: a replicate draws ``n_images`` images with
replacement and recomputes the statistic on them. A draw is a multiset, so it is
passed around as integer weights (how often each image was drawn); see
:func:`resample_weights`. AP statistics use :class:`~brittle.metrics.coco.WeightedAP`,
which evaluates a weighted resample without copying any image.

Every function here takes the same options: ``n`` resamples (default 1,000), ``seed``
(default 0; the resamples depend on ``seed``, the number of images and ``n`` only, so
two statistics of the same images bootstrapped with the same seed see the same
resamples), ``level`` (default 0.95) and ``method``: ``"percentile"`` (default) or
``"bca"`` (bias-corrected and accelerated). docs/bootstrap.md gives the formulas.

>>> import numpy as np
>>> per_image = np.random.default_rng(1).uniform(0, 1, 400)
>>> ci = bootstrap_mean(per_image, n=500)
>>> ci.low < ci.estimate < ci.high, ci.level, ci.n
(True, 0.95, 500)
>>> diff = paired_difference(per_image, per_image - 0.1, n=500)
>>> round(diff.estimate, 6), diff.excludes_zero
(0.1, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from brittle.errors import ConfigError, ShapeError
from brittle.metrics.coco import WeightedAP
from brittle.metrics.matching import MatchRecords

__all__ = [
    "MAP_STATS",
    "Interval",
    "Sample",
    "bootstrap",
    "bootstrap_map",
    "bootstrap_mean",
    "bootstrap_ratio",
    "paired_difference",
    "resample_weights",
]

Method = Literal["percentile", "bca"]
Statistic = Callable[[NDArray[np.int64]], NDArray[np.float64]]
"""Maps image weights (B, n_images) to B values; NaN marks an undefined value."""

Sample = MatchRecords | ArrayLike
"""What a statistic is computed on: match records (an AP) or per-image values (a mean)."""

# The AP stats a bootstrap can resample, with their IoU threshold (None: all).
MAP_STATS: dict[str, float | None] = {"map50_95": None, "map50": 0.5, "map75": 0.75}

# Weights are drawn this many (replicates x images) at a time: a fixed function of the
# sizes, so the draws do not depend on memory, and the matrix stays a few tens of MB.
_DRAW_BLOCK = 1 << 22
_JACKKNIFE_GROUPS = 200


@dataclass(frozen=True, slots=True)
class Interval:
    """A bootstrap confidence interval.

    ``estimate`` is the statistic on the images as they are; ``low`` and ``high`` bound
    the ``level`` interval; ``n`` counts the resamples it rests on (those where the
    statistic was defined); ``replicates`` holds their values.
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int
    method: str
    replicates: NDArray[np.float64] = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        reps = np.array(self.replicates, np.float64)
        reps.flags.writeable = False
        object.__setattr__(self, "replicates", reps)

    @property
    def excludes_zero(self) -> bool:
        """True when 0 lies outside the interval: for a difference, a significant one."""
        return not self.low <= 0.0 <= self.high

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        pct = f"{self.level * 100:g}%"
        return (
            f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}] "
            f"({pct} {self.method} interval, {self.n} resamples)"
        )


def resample_weights(n_images: int, n: int = 1000, *, seed: int = 0) -> NDArray[np.int64]:
    """(n, n_images) counts: row b says how often each image is in resample b.

    Each row is ``n_images`` draws, uniform and with replacement, counted per image;
    row sums are ``n_images``. The same arguments give the same matrix.

    >>> w = resample_weights(5, 3, seed=7)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    return np.concatenate(list(_weight_blocks(n_images, n, seed)), axis=0)


def _weight_blocks(n_images: int, n: int, seed: int) -> Iterator[NDArray[np.int64]]:
    if n_images < 1:
        raise ConfigError(f"need at least one image to resample, got {n_images}")
    if n < 1:
        raise ConfigError(f"n (resamples) must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    step = max(1, _DRAW_BLOCK // n_images)
    for lo in range(0, n, step):
        b = min(step, n - lo)
        draws = rng.integers(0, n_images, (b, n_images))
        draws += np.arange(b)[:, None] * n_images
        yield np.bincount(draws.reshape(-1), minlength=b * n_images).reshape(b, n_images)


def bootstrap(
    statistic: Statistic,
    n_images: int,
    *,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> Interval:
    """Interval of any statistic of weighted images.

    ``statistic`` maps a (B, n_images) integer weight matrix to B values (NaN where
    undefined; those resamples are left out). The estimate is its value at weights 1.

    >>> import numpy as np
    >>> x = np.arange(10.0)
    >>> ci = bootstrap(lambda w: w @ x / w.sum(axis=1), 10, n=200)
    >>> ci.estimate, ci.low < 4.5 < ci.high
    (4.5, True)
    """
    _check_level(level, method)
    if n_images < 1:
        raise ConfigError(f"need at least one image to resample, got {n_images}")
    estimate = float(statistic(np.ones((1, n_images), np.int64))[0])
    if not np.isfinite(estimate):
        raise ConfigError("the statistic is undefined on the images as given (no ground truth?)")
    reps = np.concatenate([statistic(w) for w in _weight_blocks(n_images, n, seed)])
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        raise ConfigError("the statistic is undefined on every resample")
    alpha = 1.0 - level
    if method == "percentile":
        qs = np.array([alpha / 2, 1 - alpha / 2])
    else:
        qs = _bca_levels(statistic, n_images, estimate, reps, alpha)
    low, high = np.quantile(reps, qs)
    return Interval(estimate, float(low), float(high), level, int(reps.size), method, reps)


def bootstrap_map(
    records: MatchRecords,
    *,
    stat: str = "map50_95",
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> Interval:
    """Interval of a COCO AP stat (``"map50_95"``, ``"map50"`` or ``"map75"``).

    The estimate equals ``evaluate_records(records).stat(stat)``.
    """
    statistic = _sampler(records, stat)
    return bootstrap(statistic, len(records), n=n, seed=seed, level=level, method=method)


def bootstrap_mean(
    values: ArrayLike,
    *,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> Interval:
    """Interval of the mean of per-image values (consistency, a 0/1 "affected" flag...).

    NaN values mark images where the value is undefined: they count in the resampling
    but not in the means.
    """
    v = _values(values)
    return bootstrap(_sampler(v, "map50_95"), len(v), n=n, seed=seed, level=level, method=method)


def bootstrap_ratio(
    numerator: Sample | Sequence[MatchRecords],
    denominator: Sample,
    *,
    stat: str = "map50_95",
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> Interval:
    """Interval of a ratio of two statistics of the same images, such as rPC.

    With the records of the perturbed images as ``numerator`` and those of the clean
    images as ``denominator`` this is rPC = mAP(perturbed) / mAP(clean); a list of
    records as ``numerator`` averages their mAPs first (mPC over conditions). Both
    sides are recomputed on the same resample of images: the bootstrap is paired.
    """
    num = _combined(numerator, stat)
    den = _sampler(denominator, stat)
    n_images = _same_images(num[1], _length(denominator))

    def ratio(w: NDArray[np.int64]) -> NDArray[np.float64]:
        d = den(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, num[0](w) / d, np.nan)

    return bootstrap(ratio, n_images, n=n, seed=seed, level=level, method=method)


def paired_difference(
    a: Sample,
    b: Sample,
    *,
    stat: str = "map50_95",
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> Interval:
    """Interval of ``stat(a) - stat(b)`` on the same images: two models, or two conditions.

    ``a`` and ``b`` are match records (``stat`` compares their AP) or per-image values
    (their means); image ``i`` must be the same image on both sides. Each resample draws
    the images once and evaluates both sides on them, so what the two share (hard and
    easy images) cancels. ``excludes_zero`` on the result tells whether the difference
    is significant at ``level``.
    """
    sa, sb = _sampler(a, stat), _sampler(b, stat)
    n_images = _same_images(_length(a), _length(b))
    return bootstrap(lambda w: sa(w) - sb(w), n_images, n=n, seed=seed, level=level, method=method)


# ---------------------------------------------------------------------------- internals


def _check_level(level: float, method: str) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    if method not in ("percentile", "bca"):
        raise ConfigError(f"method must be 'percentile' or 'bca', got {method!r}")


def _values(x: ArrayLike) -> NDArray[np.float64]:
    v = np.asarray(x, np.float64)
    if v.ndim != 1:
        raise ShapeError(f"per-image values: expected shape (n_images,), got {v.shape}")
    return v


def _length(x: Sample) -> int:
    return len(x) if isinstance(x, MatchRecords) else len(_values(x))


def _same_images(n_a: int, n_b: int) -> int:
    if n_a != n_b:
        raise ConfigError(
            f"paired bootstrap needs the same images on both sides, got {n_a} and {n_b} images"
        )
    return n_a


def _sampler(x: Sample, stat: str) -> Statistic:
    """The statistic of ``x`` as a function of image weights (NaN where undefined)."""
    if isinstance(x, MatchRecords):
        if stat not in MAP_STATS:
            raise ConfigError(f"stat must be one of {sorted(MAP_STATS)}, got {stat!r}")
        wap, thr = WeightedAP.from_records(x), MAP_STATS[stat]

        def ap(w: NDArray[np.int64]) -> NDArray[np.float64]:
            v = wap.ap(w, thr)
            return np.where(v < 0, np.nan, v)

        return ap
    v = _values(x)
    defined = np.isfinite(v)
    filled = np.where(defined, v, 0.0)
    weight = defined.astype(np.float64)

    def mean(w: NDArray[np.int64]) -> NDArray[np.float64]:
        wf = w.astype(np.float64)
        total, count = wf @ filled, wf @ weight
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total / count, np.nan)

    return mean


def _combined(x: Sample | Sequence[MatchRecords], stat: str) -> tuple[Statistic, int]:
    """A sample, or the mean of the statistics of several records of the same images."""
    if isinstance(x, (list, tuple)) and x and all(isinstance(r, MatchRecords) for r in x):
        parts = [_sampler(r, stat) for r in x]
        n_images = len(x[0])
        for r in x[1:]:
            _same_images(n_images, len(r))

        def mean(w: NDArray[np.int64]) -> NDArray[np.float64]:
            return np.asarray(sum(p(w) for p in parts), np.float64) / len(parts)

        return mean, n_images
    sample: Sample = x  # type: ignore[assignment]  # not a list of records, so a Sample
    return _sampler(sample, stat), _length(sample)


def _bca_levels(
    statistic: Statistic,
    n_images: int,
    estimate: float,
    reps: NDArray[np.float64],
    alpha: float,
) -> NDArray[np.float64]:
    """Quantile levels of the BCa interval (Efron 1987; DiCiccio & Efron 1996).

    The bias correction z0 comes from the share of replicates below the estimate, the
    acceleration from a jackknife: leave-one-out up to 200 images, else 200 groups of
    images (image i in group i mod 200) left out in turn.
    """
    nd = NormalDist()
    B = reps.size
    share = (np.sum(reps < estimate) + 0.5 * np.sum(reps == estimate)) / B
    z0 = nd.inv_cdf(float(np.clip(share, 0.5 / B, 1 - 0.5 / B)))
    groups = min(n_images, _JACKKNIFE_GROUPS)
    W = np.ones((groups, n_images), np.int64)
    W[np.arange(n_images) % groups, np.arange(n_images)] = 0
    theta = statistic(W)
    theta = theta[np.isfinite(theta)]
    d = theta.mean() - theta if theta.size else theta
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    a = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    out = []
    for z in (nd.inv_cdf(alpha / 2), nd.inv_cdf(1 - alpha / 2)):
        out.append(nd.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
    return np.array(out)
