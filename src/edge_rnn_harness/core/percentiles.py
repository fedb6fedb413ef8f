"""Distribution-free confidence intervals of a case's latency percentiles (order
statistics): for the q-quantile of n values, the interval between the r-th and s-th
smallest values covers it with at least 95% probability when the count of values below
it, Binomial(n, q), lies in [r, s - 1] that often (computed exactly). No assumption on the
shape of the distribution; the values are taken as independent draws (they come from
several worker processes pooled; see below for the median).

A percentile whose interval would need an order statistic beyond the sample (p99 needs at
least 368 values for its upper end, p99.9 at least 3,688) has none: the row's cells stay
empty and the table prints that p99 in parentheses.

The median's interval also covers the spread between worker processes: values of one
process share its memory layout and the machine's phase, so pooling them as independent
would make the interval too narrow (two quick runs here had medians 8% apart, each with a
pooled interval of +-0.3%). It is the union of the pooled interval and the interval of the
processes' own medians, which needs at least MIN_PROCESSES (6) processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
#: worker processes the interval of their medians needs (1 - 2 x 0.5^6 = 0.969 >= 0.95)
MIN_PROCESSES = 6
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


def median_interval(runs: Sequence[Sequence[float]],
                    confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The median's interval over worker processes: the union of the pooled values'
    interval and the interval of the processes' own medians (order statistics over
    processes: it needs at least MIN_PROCESSES of them), so a process whose whole run was
    slower widens it. None when either cannot be had."""
    kept = [np.asarray(run, dtype=np.float64) for run in runs if len(run)]
    if not kept:
        return None
    pooled = percentile_ci(np.concatenate(kept), 50.0, confidence)
    between = percentile_ci([float(np.median(run)) for run in kept], 50.0, confidence)
    if pooled is None or between is None:
        return None
    return min(pooled[0], between[0]), max(pooled[1], between[1])


def interval_fields(runs: Sequence[Sequence[float]]) -> dict[str, float | None]:
    """The row's interval columns (latency_<name>_ci_low_ms / _high_ms): the median's over
    worker processes (`median_interval`), p90's and p99's from the pooled values; None
    where the values cannot support one."""
    fields: dict[str, float | None] = {}
    values = np.concatenate([np.asarray(run, dtype=np.float64) for run in runs]) \
        if len(runs) else np.empty(0)
    for name, percentile in PERCENTILES.items():
        interval = median_interval(runs) if percentile == 50.0 else \
            percentile_ci(values, percentile)
        low, high = interval if interval else (None, None)
        fields[f"latency_{name}_ci_low_ms"], fields[f"latency_{name}_ci_high_ms"] = low, high
    return fields


def median_precision_pct(runs: Sequence[Sequence[float]]) -> float | None:
    """Half the width of the median's interval over worker processes as a percentage of
    the median; None with fewer than MIN_PROCESSES processes."""
    interval = median_interval(runs)
    kept = [run for run in runs if len(run)]
    median = float(np.median(np.concatenate(kept))) if kept else 0.0
    if interval is None or median <= 0:
        return None
    return (interval[1] - interval[0]) / 2 / median * 100
