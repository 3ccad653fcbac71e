"""Aggregation helpers: table cells with a mean and a 95% confidence interval over images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


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
