"""`harness recommend`: from a run's `ok` rows, the configuration to ship under the user's
budgets, and the evidence for it.

Only `ok` rows are candidates (an `invalid` row never ranks, however fast). A row fits when
every budget given holds for it, a value exactly at its limit included; a budget whose
figure the row lacks (no RMSE, no energy meter) excludes it, saying so. Among the rows that
fit, the winner is the fastest by median latency, and it is distinguishable from the
runner-up only when their medians' 95% intervals do not overlap ("tie" otherwise). The
Pareto set is the fitting rows no other fitting row beats or equals on every one of median
latency, peak memory, artifact size and RMSE. When nothing fits, the nearest row is the one
whose worst budget is exceeded least, with every budget it misses. Host side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.core.plan import (
    PACED_PREFIX,
    SCENARIO_COLD_START,
    SCENARIO_PACED,
    case_label,
)
from edge_rnn_harness.core.status import OK


@dataclass(frozen=True)
class Budget:
    """One limit: the results column it reads, its name for people, and a scale from the
    column's units to the limit's (e.g. bytes to KiB)."""

    option: str
    column: str
    what: str
    unit: str
    scale: float = 1.0

    def value(self, row: Mapping[str, Any]) -> float | None:
        """The row's figure in the budget's units, or None when the row lacks it."""
        if self.column == "rmse_growth_pct":
            return _rmse_growth_pct(row)
        raw = row.get(self.column)
        if raw is None or pd.isna(raw) or not math.isfinite(float(raw)):
            return None
        return float(raw) * self.scale


def _rmse_growth_pct(row: Mapping[str, Any]) -> float | None:
    """RMSE growth over the same backend's fp32, %: 0 for an fp32 row with an RMSE."""
    rmse = row.get("rmse")
    if rmse is None or pd.isna(rmse):
        return None
    if row.get("variant") == "fp32":
        return 0.0
    fp32 = row.get("fp32_rmse")
    if fp32 is None or pd.isna(fp32) or float(fp32) <= 0:
        return None
    return (float(rmse) / float(fp32) - 1) * 100


#: every budget `harness recommend` takes, by its option's dest
BUDGETS: dict[str, Budget] = {
    "max_latency_ms": Budget("--max-latency-ms", "latency_median_ms", "median latency", "ms"),
    "max_rmse_growth": Budget("--max-rmse-growth", "rmse_growth_pct",
                              "RMSE growth over the backend's fp32", "%"),
    "max_rss_mb": Budget("--max-rss-mb", "peak_rss_mb", "peak memory", "MiB"),
    "max_energy_mj": Budget("--max-energy-mj", "energy_per_inf_mj", "energy per inference",
                            "mJ"),
    "max_size_kb": Budget("--max-size-kb", "artifact_bytes", "artifact size", "KiB",
                          1 / 1024),
}
#: the figures the Pareto set weighs (all smaller-is-better)
PARETO_COLUMNS = ("latency_median_ms", "peak_rss_mb", "artifact_bytes", "rmse")


@dataclass
class Recommendation:
    """What `recommend` found: the rows that fit (fastest first), the Pareto set, the
    winner and runner-up with the verdict between them, why the others were left out,
    and, when nothing fits, the nearest row and what it misses."""

    limits: dict[str, float]
    fitting: list[dict[str, Any]] = field(default_factory=list)
    pareto: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    nearest: dict[str, Any] | None = None
    nearest_misses: list[str] = field(default_factory=list)

    @property
    def winner(self) -> dict[str, Any] | None:
        """The fastest fitting row, or None."""
        return self.fitting[0] if self.fitting else None

    @property
    def runner_up(self) -> dict[str, Any] | None:
        """The second fastest fitting row, or None."""
        return self.fitting[1] if len(self.fitting) > 1 else None

    @property
    def distinguishable(self) -> bool | None:
        """Whether the winner's median is faster than the runner-up's beyond both 95%
        intervals (None without a runner-up or without intervals on both)."""
        first, second = self.winner, self.runner_up
        if first is None or second is None:
            return None
        high = first.get("latency_median_ci_high_ms")
        low = second.get("latency_median_ci_low_ms")
        if high is None or low is None or pd.isna(high) or pd.isna(low):
            return None
        return float(high) < float(low)


def misses(row: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """Every budget `row` does not meet, in words ([] when it fits)."""
    found = []
    for dest, limit in limits.items():
        budget = BUDGETS[dest]
        value = budget.value(row)
        if value is None:
            found.append(f"no {budget.what} measured ({budget.option})")
        elif value > limit:
            found.append(f"{budget.what} {value:.6g} {budget.unit} > {limit:g} {budget.unit}")
    return found


def _overshoot(row: Mapping[str, Any], limits: Mapping[str, float]) -> float:
    """How far the row's worst budget is exceeded, as a ratio to its limit (inf for a
    figure not measured): the nearest row has the smallest."""
    worst = 0.0
    for dest, limit in limits.items():
        value = BUDGETS[dest].value(row)
        if value is None:
            return math.inf
        worst = max(worst, value / limit if limit > 0 else (math.inf if value > 0 else 0))
    return worst


def pareto_set(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row beats or equals on every PARETO_COLUMNS figure it has
    (a figure missing on either row is left out of that pair's comparison)."""
    def figures(row: Mapping[str, Any]) -> list[float | None]:
        return [None if row.get(c) is None or pd.isna(row.get(c)) else float(row[c])
                for c in PARETO_COLUMNS]

    def dominates(a: list[float | None], b: list[float | None]) -> bool:
        pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        return bool(pairs) and all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)

    values = [figures(row) for row in rows]
    return [row for row, mine in zip(rows, values)
            if not any(dominates(other, mine) for other in values if other is not mine)]


def recommend(frame: pd.DataFrame, limits: Mapping[str, float]) -> Recommendation:
    """The recommendation from a results frame of one device and scenario (see the
    module's docstring). `limits` maps BUDGETS keys to their limits."""
    result = Recommendation(dict(limits))
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    candidates = []
    for row in rows:
        if row["status"] != OK:
            why = f"status {row['status']}: never ranked"
            result.left_out.append((case_label(row), why))
        elif row.get("latency_median_ms") is None:
            result.left_out.append((case_label(row), "no median latency"))
        else:
            candidates.append(row)
    for row in candidates:
        missed = misses(row, limits)
        if missed:
            result.left_out.append((case_label(row), "; ".join(missed)))
        else:
            result.fitting.append(row)
    result.fitting.sort(key=lambda row: float(row["latency_median_ms"]))
    result.pareto = pareto_set(result.fitting)
    if not result.fitting and candidates:
        result.nearest = min(candidates, key=lambda row: _overshoot(row, limits))
        result.nearest_misses = misses(result.nearest, limits)
    return result


def reproduce_command(row: Mapping[str, Any], results: str) -> str:
    """The `harness run` that measures the row's configuration again: its model, backend,
    variant, threads, shape, pinned frequency and every tuning option whose value is not
    the backend's default (read back from the row's settings)."""
    scenario = str(row["scenario"])
    args = ["harness", "run", "--bundle", "BUNDLE", "--model", str(row["model"]),
            "--backends", str(row["backend"]), "--variants", str(row["variant"]),
            "--threads", str(row["threads"])]
    if scenario.startswith(PACED_PREFIX):  # paced-1s: --scenario paced --interval 1s
        args += ["--scenario", SCENARIO_PACED, "--interval", scenario[len(PACED_PREFIX):]]
    else:
        args += ["--scenario", scenario]
    if scenario == SCENARIO_COLD_START and row.get("n_values"):
        args += ["--cold-samples", str(row["n_values"])]
    if row.get("seq_len"):
        args += ["--seq-len", str(row["seq_len"])]
    if row.get("batch") and int(row["batch"]) != 1:
        args += ["--batch", str(row["batch"])]
    if row.get("cpu_freq_khz"):
        args += ["--cpu-freq", str(row["cpu_freq_khz"])]
    try:
        settings = json.loads(row.get("settings") or "{}")
    except ValueError:
        settings = {}
    try:
        choices = get_backend(str(row["backend"])).tuning_choices
    except (KeyError, ValueError):
        choices = {}
    for key, values in sorted(choices.items()):
        value = settings.get(key)
        if value is not None and values and str(value) != values[0]:
            args += ["--tune", f"{row['backend']}.{key}={value}"]
    return " ".join(args + ["--out", f"{results.removesuffix('.csv')}-again.csv"])
