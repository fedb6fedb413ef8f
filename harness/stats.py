"""Latency statistics from the raw per-inference values pyperf recorded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MS_PER_S = 1000.0


def latency_summary_ms(values_s: Sequence[float], batch: int = 1) -> dict[str, float]:
    """Mean, median, p90, p99, stdev (sample) and min of `values_s` (seconds), in ms,
    plus throughput in inferences per second (batch / mean latency).

    Raises ValueError on an empty sequence.
    """
    if len(values_s) == 0:
        raise ValueError("no latency values to summarise")
    ms = np.asarray(values_s, dtype=np.float64) * MS_PER_S
    mean_ms = float(ms.mean())
    return {
        "latency_mean_ms": mean_ms,
        "latency_median_ms": float(np.median(ms)),
        "latency_p90_ms": float(np.percentile(ms, 90)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "latency_stdev_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "latency_min_ms": float(ms.min()),
        "throughput_ips": batch * MS_PER_S / mean_ms,
    }
