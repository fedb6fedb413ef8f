"""The one declaration of each measured figure of a case (a metric): its results column,
words, unit, type, how its workers' values combine into the row, how the terminal table
shows it, its direction, and whether compare and the gate judge it (with the gate's
option and default threshold).

Who reads a declaration: the aggregator (`measure.aggregate`: per-worker values combined
by `workers`, figures derived from the row by `derive`), the results writer and reader
(`core.results`: the column and its type), the terminal table (`core.table`: `table`),
compare, the gate and its history (`analysis`: every metric with a `gate_option`), the
gate's command-line options (`cli.judging`) and the report's comparison. Adding a metric
is one declaration: appended to `METRICS` here (a new column goes last in the CSV and
bumps `core.results.SCHEMA_VERSION`), or, from a plugin or a test, `with declared(metric):`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: how the workers' values of a per-worker metric combine into the row: the worst worker
#: (errors, memory) or the median one (load and first-run times)
WORKER_AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {
    "max": max,
    "median": statistics.median,
}


@dataclass(frozen=True)
class Metric:
    """A measured figure of a case.

    column: results column (its name carries the unit). label: words for people. unit:
    what the column counts. dtype: the column's type ("float", "int").
    workers: how the workers' values of this figure (the worker records it as run metadata
        under `column`) combine into the row: a key of WORKER_AGGREGATES; None when the
        figure is not per worker (latency statistics from the raw values, energy from its
        own step, artifact size from the bundle).
    derive: computes the figure from the row's other fields once the measurement is in
        (None when the row has no figure); None when measured directly.
    table: (header, format spec) in the terminal table; None: not shown there. scale:
        multiplies the value before the table formats it (e.g. bytes to KiB).
    lower_is_better: the direction (a growth is a regression when True).
    percentile: compare judges it on the raw per-inference latencies at this percentile
        (else on the single number in the row).
    gate_option, default_threshold: compare and the gate judge the metric when it has a
        gate option; the threshold is the largest tolerated growth as a fraction (None:
        not gated unless the option is given).
    spread: for a counted, deterministic figure (instructions), the column holding its
        measured run-to-run spread in percent: compare and the gate judge a change
        against that spread, never with a latency-style bootstrap.
    """

    column: str
    label: str
    unit: str
    dtype: str = "float"
    workers: str | None = None
    derive: Callable[[Mapping[str, Any]], float | None] | None = None
    table: tuple[str, str] | None = None
    scale: float = 1.0
    lower_is_better: bool = True
    percentile: float | None = None
    gate_option: str | None = None
    default_threshold: float | None = None
    spread: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers not in WORKER_AGGREGATES:
            raise ValueError(f"metric {self.column}: workers must be one of "
                             f"{', '.join(WORKER_AGGREGATES)}, got {self.workers!r}")
        if self.dtype not in ("float", "int"):
            raise ValueError(f"metric {self.column}: dtype must be float or int")

    @property
    def judged(self) -> bool:
        """Whether compare and the gate judge this metric."""
        return self.gate_option is not None

    @property
    def threshold_dest(self) -> str:
        """The argparse destination of the gate option (e.g. max_slowdown)."""
        return (self.gate_option or "").lstrip("-").replace("-", "_")

    def aggregate(self, values: list[Any]) -> Any:
        """The row's value from the workers' values (None when no worker recorded one)."""
        return WORKER_AGGREGATES[self.workers](values) if values and self.workers else None

    def display(self, value: float) -> str:
        """The value as the terminal table shows it."""
        return format(float(value) * self.scale, self.table[1] if self.table else "g")


def _latency(column: str, label: str, table: str | None = None,
             **judging: Any) -> Metric:
    return Metric(column, label, "ms", table=(table, ".4f") if table else None, **judging)


#: every metric, in the results CSV's column order (groups: timing and accuracy, then the
#: energy step's, then the runtime's own latency); `core.results` places the groups
METRICS: list[Metric] = [
    _latency("latency_mean_ms", "mean latency"),
    _latency("latency_median_ms", "median latency", "median ms", percentile=50,
             gate_option="--max-slowdown", default_threshold=0.10),
    _latency("latency_p90_ms", "p90 latency", "p90 ms", percentile=90,
             gate_option="--max-slowdown-p90", default_threshold=None),
    _latency("latency_p99_ms", "p99 latency", "p99 ms"),
    _latency("latency_stdev_ms", "latency standard deviation"),
    _latency("latency_min_ms", "minimum latency"),
    Metric("throughput_ips", "throughput", "windows/s", table=("inf/s", ",.0f"),
           lower_is_better=False),
    Metric("load_ms", "model load time", "ms", workers="median", table=("load ms", ".1f")),
    Metric("first_run_ms", "first inference", "ms", workers="median"),
    Metric("peak_rss_mb", "peak memory", "MiB", workers="max", table=("peak RSS MB", ".1f"),
           gate_option="--max-memory-growth", default_threshold=0.10),
    Metric("rss_delta_mb", "memory added by the runtime", "MiB", workers="max",
           table=("+RSS MB", ".1f")),
    Metric("artifact_bytes", "artifact size", "bytes", dtype="int", table=("size KB", ".1f"),
           scale=1 / 1024, gate_option="--max-size-growth", default_threshold=0.05),
    Metric("max_abs_err", "largest absolute error vs the reference", "data units",
           workers="max", table=("max abs err", ".1e")),
    Metric("max_rel_err", "largest relative error vs the reference", "ratio", workers="max"),
    Metric("rmse", "RMSE", "data units", workers="max", table=("RMSE", ".4f"),
           gate_option="--max-rmse-growth", default_threshold=0.02),
    Metric("mae", "MAE", "data units", workers="max"),
    Metric("calibration_windows", "calibration windows", "windows", dtype="int",
           workers="max"),
    Metric("fp32_max_abs_err", "largest absolute difference from the backend's fp32",
           "data units"),
    Metric("fp32_rmse", "RMSE of the backend's fp32", "data units"),
]
#: the energy step's figures (after the power meter's name and coverage in the CSV)
ENERGY_METRICS: list[Metric] = [
    Metric("power_idle_w", "idle power", "W"),
    Metric("power_mean_w", "power under load", "W"),
    Metric("power_samples", "power samples", "samples", dtype="int"),
    Metric("energy_per_inf_mj", "energy per inference", "mJ",
           gate_option="--max-energy-growth", default_threshold=0.10),
    Metric("energy_net_per_inf_mj", "energy per inference above idle", "mJ"),
    Metric("energy_inferences", "inferences under the meter", "inferences", dtype="int"),
    Metric("energy_seconds", "seconds under the meter", "s"),
]
#: after the device facts in the CSV: the runtime's own latency
LATE_METRICS: list[Metric] = [
    Metric("runtime_latency_median_ms", "the runtime's own median latency", "ms",
           workers="median"),
]


#: schema 7: the 95% intervals of the latency percentiles (order statistics, see
#: core.percentiles) and the median's precision
INTERVAL_METRICS: list[Metric] = [
    *(_latency(f"latency_{name}_ci_{end}_ms", f"{end} end of the {name}'s 95% interval")
      for name in ("median", "p90", "p99") for end in ("low", "high")),
    Metric("median_precision_pct", "half-width of the median's 95% interval", "%",
           table=("+-%", ".1f")),
]
#: schema 7: counted figures: instructions under callgrind (`--counters valgrind`,
#: measure.callgrind) and this process's perf events in the timed calls (`--counters
#: perf`, measure.perf_events; per worker, the median worker's)
COUNTER_METRICS: list[Metric] = [
    Metric("instructions_per_inf", "instructions per inference (callgrind)", "instructions",
           table=("instr/inf", ",.0f"), gate_option="--max-instructions-growth",
           default_threshold=0.01, spread="instructions_spread_pct"),
    Metric("instructions_spread_pct", "spread of the instruction count between blocks", "%"),
    Metric("l1_misses_per_inf", "first-level cache misses per inference (simulated)",
           "misses"),
    Metric("ll_misses_per_inf", "last-level cache misses per inference (simulated)",
           "misses"),
    Metric("est_cycles_per_inf", "estimated cycles per inference (Ir + 10 L1m + 100 LLm)",
           "cycles"),
    *(Metric(column, words, unit, workers="median") for column, words, unit in (
        ("hw_instructions_per_inf", "user-space instructions per inference (PMU)",
         "instructions"),
        ("hw_cycles_per_inf", "user-space cycles per inference (PMU)", "cycles"),
        ("hw_cache_misses_per_inf", "cache misses per inference (PMU)", "misses"),
        ("hw_branch_misses_per_inf", "branch misses per inference (PMU)", "misses"),
        ("task_clock_us_per_inf", "CPU time per inference (task-clock)", "us"),
        ("page_faults_per_inf", "page faults per inference", "faults"),
        ("context_switches_per_inf", "context switches per inference", "switches"))),
]


#: schema 8: the cold_start scenario's phases (measure.cold_start), median over its
#: processes: together exec to the forecast written, the row's latency
COLD_START_METRICS: list[Metric] = [
    Metric("cold_interpreter_ms", "cold start: interpreter start", "ms", workers="median"),
    Metric("cold_harness_import_ms", "cold start: numpy and the harness imported", "ms",
           workers="median"),
    Metric("cold_runtime_import_ms", "cold start: runtime import", "ms", workers="median"),
    Metric("cold_load_ms", "cold start: model load", "ms", workers="median"),
    Metric("cold_input_ms", "cold start: input read", "ms", workers="median"),
    Metric("cold_inference_ms", "cold start: first inference", "ms", workers="median"),
    Metric("cold_output_ms", "cold start: forecast written", "ms", workers="median"),
]


#: schema 8: the paced scenario's baseline in the same worker, and its penalty
PACED_METRICS: list[Metric] = [
    Metric("back_to_back_median_ms", "median latency of back-to-back calls in the same "
           "worker", "ms", workers="median"),
    Metric("paced_penalty", "paced median over the back-to-back median", "ratio",
           derive=lambda row: row["latency_median_ms"] / row["back_to_back_median_ms"]
           if row.get("back_to_back_median_ms") else None),
]


#: metrics declared while the harness runs (`declared`: a plugin's or a test's); last in
#: the CSV
DECLARED_METRICS: list[Metric] = []


def all_metrics() -> list[Metric]:
    """Every declared metric, in the CSV's order."""
    return [*METRICS, *ENERGY_METRICS, *LATE_METRICS, *INTERVAL_METRICS, *COUNTER_METRICS,
            *COLD_START_METRICS, *PACED_METRICS, *DECLARED_METRICS]


def judged_metrics() -> list[Metric]:
    """The metrics compare and the gate judge, in the CSV's order."""
    return [metric for metric in all_metrics() if metric.judged]


def metric_by_column(column: str) -> Metric | None:
    """The metric of a results column, or None."""
    return next((metric for metric in all_metrics() if metric.column == column), None)


def default_thresholds() -> dict[str, float | None]:
    """Judged column -> default largest tolerated growth (fraction) or None."""
    return {metric.column: metric.default_threshold for metric in judged_metrics()}


@contextmanager
def declared(metric: Metric) -> Iterator[Metric]:
    """`metric` declared while the block runs (a plugin's or a test's own metric): it goes
    last in the CSV and every reader of the declarations sees it."""
    if metric_by_column(metric.column) is not None:
        raise ValueError(f"a metric named {metric.column!r} is declared already")
    DECLARED_METRICS.append(metric)
    try:
        yield metric
    finally:
        DECLARED_METRICS.remove(metric)
