"""Distribution-free confidence intervals of a case's latency percentiles (order
statistics): for the q-quantile of n values, the interval between the r-th and s-th
smallest values covers it with at least 95% probability when the count of values below
it, Binomial(n, q), lies in [r, s - 1] that often (computed exactly). No assumption on the
shape of the distribution; the values are taken as independent draws (they come from
several worker processes pooled, so slow phases shared by a whole process make the
interval too narrow rather than too wide: the stability verdict names such cases).

A percentile whose interval would need an order statistic beyond the sample (p99 needs at
least 368 values for its upper end, p99.9 at least 3,688) has none: the row says so
instead of printing a number that looks as good as the median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
#: the percentiles that get an interval, and their columns' stem
PERCENTILES: dict[str, float] = {"median": 50.0, "p90": 90.0, "p99": 99.0}


def _binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(X <= j) for j = 0..n, X ~ Binomial(n, q), from log-space terms (exact for any n)."""
    k = np.arange(n + 1)
    lgamma = np.frompyfunc(math.lgamma, 1, 1)
    log_pmf = (math.lgamma(n + 1) - lgamma(k + 1).astype(float)
               - lgamma(n - k + 1).astype(float) + k * math.log(q) + (n - k) * math.log1p(-q))
    return np.cumsum(np.exp(log_pmf))


def order_ranks(n: int, percentile: float,
                confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks (r, s) of the order statistics bracketing `percentile` with at least
    `confidence` coverage, or None when `n` values cannot support both ends."""
    if n < 2:
        return None
    q, tail = percentile / 100, (1 - confidence) / 2
    cdf = _binomial_cdf(n, q)
    low = np.flatnonzero(cdf <= tail)          # r - 1 candidates: P(X <= r - 1) <= tail
    high = np.flatnonzero(cdf >= 1 - tail)     # s - 1 candidates: P(X <= s - 1) >= 1-tail
    if not len(low) or not len(high) or high[0] + 1 > n:
        return None
    return int(low[-1]) + 1, int(high[0]) + 1


def min_values(percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest values whose sample supports an interval of `percentile` at both ends."""
    q = percentile / 100
    tail = (1 - confidence) / 2
    return math.ceil(max(math.log(tail) / math.log(q), math.log(tail) / math.log1p(-q)))


def percentile_ci(values: Sequence[float], percentile: float,
                  confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The interval (low, high) of `percentile` of `values`, or None (too few values)."""
    ranks = order_ranks(len(values), percentile, confidence)
    if ranks is None:
        return None
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    return float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1])


def interval_fields(values_ms: Sequence[float]) -> tuple[dict[str, float | None], str]:
    """The row's interval columns (latency_<name>_ci_low_ms / _high_ms) and a note naming
    the percentiles the values cannot support ("" when all are)."""
    fields: dict[str, float | None] = {}
    unsupported = []
    for name, percentile in PERCENTILES.items():
        interval = percentile_ci(values_ms, percentile)
        low, high = interval if interval else (None, None)
        fields[f"latency_{name}_ci_low_ms"], fields[f"latency_{name}_ci_high_ms"] = low, high
        if interval is None:
            unsupported.append(f"{name} (it needs at least {min_values(percentile):,})")
    note = (f"percentiles: {len(values_ms):,} values give no 95% interval for "
            + ", ".join(unsupported)) if unsupported else ""
    return fields, note


def median_precision_pct(values_ms: Sequence[float]) -> float | None:
    """Half the width of the median's 95% interval as a percentage of the median."""
    interval = percentile_ci(values_ms, 50.0)
    median = float(np.median(values_ms)) if len(values_ms) else 0.0
    if interval is None or median <= 0:
        return None
    return (interval[1] - interval[0]) / 2 / median * 100
