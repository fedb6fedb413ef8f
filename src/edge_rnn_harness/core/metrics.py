"""The one definition of each compared metric: its results column, words, unit, direction,
and the gate option with its default threshold. compare, gate, the CLI, the terminal table
and the report all read this; adding a metric is one line here (plus its column in
harness.results)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A metric of a case that compare judges and the gate can limit.

    column: results column. label: words for people. unit: what the column counts.
    lower_is_better: the direction (a growth is a regression when True).
    percentile: judged on the raw per-inference latencies at this percentile (else the
        single number in the row). gate_option, default_threshold: the gate's option and
        its default largest tolerated growth as a fraction (None: not gated unless given).
    """

    column: str
    label: str
    unit: str
    gate_option: str
    default_threshold: float | None
    lower_is_better: bool = True
    percentile: float | None = None

    @property
    def threshold_dest(self) -> str:
        """The argparse destination of the gate option (e.g. max_slowdown)."""
        return self.gate_option.lstrip("-").replace("-", "_")


METRICS: tuple[Metric, ...] = (
    Metric("latency_median_ms", "median latency", "ms", "--max-slowdown", 0.10, percentile=50),
    Metric("latency_p90_ms", "p90 latency", "ms", "--max-slowdown-p90", None, percentile=90),
    Metric("peak_rss_mb", "peak memory", "MiB", "--max-memory-growth", 0.10),
    Metric("artifact_bytes", "artifact size", "bytes", "--max-size-growth", 0.05),
    Metric("rmse", "RMSE", "data units", "--max-rmse-growth", 0.02),
    Metric("energy_per_inf_mj", "energy per inference", "mJ", "--max-energy-growth", 0.10),
)

METRIC_BY_COLUMN: dict[str, Metric] = {metric.column: metric for metric in METRICS}


def default_thresholds() -> dict[str, float | None]:
    """Column -> default largest tolerated growth (fraction) or None."""
    return {metric.column: metric.default_threshold for metric in METRICS}
