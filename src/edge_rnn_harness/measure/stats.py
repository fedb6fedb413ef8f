"""Latency statistics from the raw per-inference values pyperf recorded: summaries of one
case, and confidence intervals of the ratio between two cases (bootstrap; paired for
interleaved runs), shared by compare, gate, ab and tune."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

MS_PER_S = 1000.0
#: bootstrap replicates behind a ratio's confidence interval, and its confidence level
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


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


def raw_values(json_path: Path) -> dict[str, list[np.ndarray]]:
    """Per benchmark name, each worker process's timed values (seconds); {} if no file."""
    if not json_path.is_file():
        return {}
    import pyperf

    try:
        suite = pyperf.BenchmarkSuite.load(str(json_path))
    except Exception as error:  # noqa: BLE001 -- pyperf raises several types for a bad file
        raise ValueError(f"{json_path}: not a pyperf JSON file ({error})") from None
    return {bench.get_name(): [np.asarray(run.values, np.float64)
                               for run in bench.get_runs() if run.values]
            for bench in suite.get_benchmarks()}


def bootstrap_ratio_ci(base_runs: Sequence[np.ndarray], cand_runs: Sequence[np.ndarray],
                       percentile: float, seed: int = 0,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """CONFIDENCE interval of percentile(cand) / percentile(base) by a two-level bootstrap:
    resample processes with replacement, then values within each chosen process."""
    rng = np.random.default_rng(seed)
    ratios = _resampled(cand_runs, percentile, resamples, rng) / \
        _resampled(base_runs, percentile, resamples, rng)
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


def paired_ratio_ci(base_runs: Sequence[np.ndarray], cand_runs: Sequence[np.ndarray],
                    percentile: float, seed: int = 0,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """CONFIDENCE interval of the ratio for an interleaved A/B run, where value i of the
    base and value i of the candidate were timed next to each other in the same process:
    the same processes, and the same rounds within them, are drawn for both sides, so the
    machine's drift cancels instead of widening the interval."""
    rng = np.random.default_rng(seed)
    width = min(len(run) for run in (*base_runs, *cand_runs))
    base = np.stack([run[:width] for run in base_runs])
    cand = np.stack([run[:width] for run in cand_runs])
    ratios = []
    for _ in range(resamples // 100):
        processes = rng.integers(0, len(base), (100, len(base), 1))
        rounds = rng.integers(0, width, (100, len(base), width))
        ratios.append(np.percentile(cand[processes, rounds].reshape(100, -1), percentile, axis=1)
                      / np.percentile(base[processes, rounds].reshape(100, -1), percentile,
                                      axis=1))
    tail = (1 - CONFIDENCE) / 2 * 100
    pooled = np.concatenate(ratios)
    return float(np.percentile(pooled, tail)), float(np.percentile(pooled, 100 - tail))


def _resampled(runs: Sequence[np.ndarray], percentile: float, resamples: int,
               rng: np.random.Generator, chunk: int = 100) -> np.ndarray:
    """`resamples` two-level bootstrap replicates of the pooled percentile."""
    width = min(len(run) for run in runs)
    table = np.stack([run[:width] for run in runs])  # processes x values
    out = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        processes = rng.integers(0, len(runs), (size, len(runs), 1))
        values = rng.integers(0, width, (size, len(runs), width))
        pooled = table[processes, values].reshape(size, -1)
        out.append(np.percentile(pooled, percentile, axis=1))
    return np.concatenate(out)
