"""Aggregation helpers: table cells with a mean and a 95% confidence interval over images."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass


def fmt_number(value: float | None, digits: int = 3, signed: bool = False, missing: str = "n/a") -> str:
    """``value`` with ``digits`` decimals (``signed``: with its sign), ``missing`` for None/NaN. A value that rounds to
    zero prints as ``0.000`` (``+0.000`` when signed), never ``-0.000``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    value = float(value)
    if round(value, digits) == 0:
        value = 0.0
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


@dataclass(frozen=True)
class MetricSpec:
    """What a metric means, declared by the evaluator that writes it (as torchmetrics' ``higher_is_better``).

    ``pattern`` is an fnmatch pattern over the metric names (``frequent.*.beta``), ``units`` what its numbers are,
    ``higher_is_better`` the direction tables, charts and the leaderboard use (None: not ranked, e.g. a standard
    deviation), ``note`` where the direction comes from when it is not obvious (e.g. the paper's arrow).
    """

    pattern: str
    units: str
    higher_is_better: bool | None
    note: str = ""

    def matches(self, metric: str) -> bool:
        from fnmatch import fnmatchcase

        return fnmatchcase(metric, self.pattern)

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better", None: "not ranked"}[self.higher_is_better]


@dataclass(frozen=True)
class Cell:
    """One table cell: ``value`` with an optional confidence interval over ``n`` units (images)."""

    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and Student-t confidence interval of the mean (None bounds for fewer than 2 values)."""
    from scipy import stats

    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return math.nan, None, None
    n = len(clean)
    mean = sum(clean) / n
    if n < 2:
        return mean, None, None
    var = sum((v - mean) ** 2 for v in clean) / (n - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class PairedDifference:
    """The mean over prompts of a - b (each prompt's images averaged over the seeds both cells hold), with a
    percentile interval from a paired bootstrap over prompts (``resamples`` draws of the prompts with replacement,
    from a generator seeded with ``seed``)."""

    diff: float
    low: float
    high: float
    prompts: int
    images: int
    resamples: int
    seed: int
    confidence: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero: the difference is real at this confidence."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        return (
            f"{fmt_number(self.diff, digits, signed=True)} "
            f"[{fmt_number(self.low, digits, signed=True)}, {fmt_number(self.high, digits, signed=True)}]"
        )


def paired_bootstrap(
    a: Mapping[tuple[str, int], float],
    b: Mapping[tuple[str, int], float],
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference | None:
    """The paired difference a - b over the (prompt id, seed) keys both hold (see :class:`PairedDifference`); None
    when they share no key. NaN values are left out."""
    import numpy as np

    shared = sorted(k for k in set(a) & set(b) if not (math.isnan(a[k]) or math.isnan(b[k])))
    if not shared:
        return None
    per_prompt: dict[str, list[float]] = {}
    for key in shared:
        per_prompt.setdefault(key[0], []).append(a[key] - b[key])
    diffs = np.array([sum(v) / len(v) for v in per_prompt.values()], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return PairedDifference(
        float(diffs.mean()), float(low), float(high), len(diffs), len(shared), resamples, seed, confidence
    )


def mean_cell(metric: str, values: Sequence[float], confidence: float = 0.95) -> Cell:
    """A :class:`Cell` with the mean and its t-interval."""
    mean, low, high = mean_ci(values, confidence)
    n = sum(1 for v in values if v is not None and not math.isnan(float(v)))
    return Cell(metric, mean, low, high, n)
