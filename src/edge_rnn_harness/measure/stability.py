"""A stability verdict per case from the values already recorded (every timed value of
every worker process), so a row says when its numbers are the machine's rather than the
runtime's. The first rule that holds gives the verdict:

- noisy tail: values of at least PREEMPTED_RATIO x the median (a time slice of another
  task, not the runtime: this machine's scheduler slices are milliseconds, an inference
  tens of microseconds) in at least half of the worker processes, or in at least 1% of
  all values (then they set the p99); with `--counters perf`, also context switches in
  the timed calls of at least half the processes;
- multimodal: the worker processes' medians fall into groups further apart than
  MODE_GAP (15%) of the median, beyond their own spread (the gap over the standard
  errors of the two medians next to it is at least 5): e.g. a VM's fast and slow phases;
- drifting: a trend: every process's last quarter of values differs from its first
  quarter by DRIFT (10%) or more in the same direction (more warm-up needed, or the
  machine heating up), or, with four or more processes, their medians rise or fall in
  process order (Spearman |rho| >= 0.8) by DRIFT or more overall;
- stable: none of these.

With fewer than two processes or 20 values per process the verdict is "stable" only if no
rule holds on what there is; the reason says how little that was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STABLE, DRIFTING, MULTIMODAL, NOISY_TAIL = "stable", "drifting", "multimodal", "noisy tail"
PREEMPTED_RATIO = 20.0
MODE_GAP, MODE_Z = 0.15, 5.0
DRIFT, TREND_RHO = 0.10, 0.8


def _preemption(runs: Sequence[np.ndarray], median: float,
                switches: Sequence[float] | None) -> str:
    hit = [int((run >= PREEMPTED_RATIO * median).sum()) for run in runs]
    total = sum(hit)
    processes = sum(1 for h in hit if h)
    if total and (processes * 2 >= len(runs) or total >= 0.01 * sum(map(len, runs))):
        return (f"{total} value(s) of {PREEMPTED_RATIO:g}x the median or more (preempted) "
                f"in {processes} of {len(runs)} worker processes")
    switched = [s for s in (switches or []) if s and s > 0]
    if switched and len(switched) * 2 >= len(runs):
        return (f"context switches inside the timed calls in {len(switched)} of {len(runs)} "
                f"worker processes")
    return ""


def _modes(runs: Sequence[np.ndarray], median: float) -> str:
    if len(runs) < 2:
        return ""
    medians = np.array([np.median(run) for run in runs])
    errors = np.array([1.2533 * (np.percentile(run, 75) - np.percentile(run, 25)) / 1.349
                       / np.sqrt(len(run)) for run in runs])
    order = np.argsort(medians)
    medians, errors = medians[order], errors[order]
    gaps = np.diff(medians)
    z = gaps / np.maximum(np.hypot(errors[:-1], errors[1:]), 1e-12)
    wide = (gaps >= MODE_GAP * median) & (z >= MODE_Z)
    if not wide.any():
        return ""
    at = int(np.argmax(np.where(wide, gaps, -1)))
    return (f"worker process medians in groups {medians[at]:.4g} and {medians[at + 1]:.4g} "
            f"ms apart ({gaps[at] / median:.0%} of the median, beyond their spread)")


def _spearman(values: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(values)).astype(float)
    order = np.arange(len(values), dtype=float)
    if ranks.std() == 0:
        return 0.0
    return float(np.corrcoef(order, ranks)[0, 1])


def _drift(runs: Sequence[np.ndarray], median: float) -> str:
    quarters = [np.median(run[-(len(run) // 4):]) / np.median(run[:len(run) // 4])
                for run in runs if len(run) >= 8]
    if quarters and (all(q <= 1 - DRIFT for q in quarters)
                     or all(q >= 1 + DRIFT for q in quarters)):
        return (f"within every worker process the last quarter of values differs from the "
                f"first by {min(quarters) - 1:+.0%} to {max(quarters) - 1:+.0%}")
    medians = np.array([np.median(run) for run in runs])
    if len(runs) >= 4 and abs(_spearman(medians)) >= TREND_RHO:
        half = len(medians) // 2
        change = np.median(medians[-half:]) / np.median(medians[:half]) - 1
        if abs(change) >= DRIFT:
            return (f"worker process medians trend {change:+.0%} from the first processes to "
                    f"the last")
    return ""


def stability(runs_ms: Sequence[Sequence[float]],
              context_switches: Sequence[float] | None = None) -> tuple[str, str]:
    """(verdict, why) from each worker process's timed values (ms), and optionally each
    process's context switches inside its timed calls."""
    runs = [np.asarray(run, dtype=np.float64) for run in runs_ms if len(run)]
    if not runs:
        return STABLE, "no values"
    median = float(np.median(np.concatenate(runs)))
    for verdict, why in ((NOISY_TAIL, _preemption(runs, median, context_switches)),
                         (MULTIMODAL, _modes(runs, median)), (DRIFTING, _drift(runs, median))):
        if why:
            return verdict, why
    few = len(runs) < 2 or min(map(len, runs)) < 20
    return STABLE, ("few values to judge by: " if few else "") + \
        f"{len(runs)} process(es), {sum(map(len, runs))} values"
