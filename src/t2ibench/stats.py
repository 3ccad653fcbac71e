"""Aggregation helpers: table cells with a mean and a 95% confidence interval over images."""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def mean_cell(metric: str, values: Sequence[float], confidence: float = 0.95) -> Cell:
    """A :class:`Cell` with the mean and its t-interval."""
    mean, low, high = mean_ci(values, confidence)
    n = sum(1 for v in values if v is not None and not math.isnan(float(v)))
    return Cell(metric, mean, low, high, n)
