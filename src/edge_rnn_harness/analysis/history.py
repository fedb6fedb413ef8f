"""A candidate judged against the history of its case: the last N runs of the same case on
the same device, runtime version and settings. Their spread sets how much change is noise
(in the manner of statistical continuous-benchmarking services): the candidate's latency
ratio to the history's geometric mean gets a 95% prediction interval from the spread of
the history's log latencies (Student t, n - 1 degrees of freedom); single numbers per case
(memory, size, RMSE, energy) are compared with the history's median. The gate then gives
the same three verdicts as for two runs.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare import (
    SETTINGS_COLUMNS,
    CaseComparison,
    Change,
    Comparison,
    key_text,
    row_problems,
)
from edge_rnn_harness.core.metrics import Metric, judged_metrics
from edge_rnn_harness.core.results import KEY_COLUMNS, read_results

DEFAULT_HISTORY_RUNS = 10
DEFAULT_MIN_HISTORY = 5


def history_files(spec: str, exclude: Path) -> list[Path]:
    """Results CSVs named by a folder or a glob pattern (baselines tables and `exclude`
    left out); ValueError when none match."""
    path = Path(spec)
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
    else:
        found = sorted(Path(p) for p in glob.glob(spec))
    found = [p for p in found if not p.name.endswith(".baselines.csv")
             and p.resolve() != exclude.resolve()]
    if not found:
        raise ValueError(f"--history {spec}: no results CSV found")
    return found


def _same_setup(row: Mapping, cand: Mapping) -> bool:
    return all(str(row[c]) == str(cand[c]) for c in SETTINGS_COLUMNS)


def _latency_change(metric: Metric, values: np.ndarray, cand: float,
                    min_effect: float) -> Change:
    from scipy.stats import t as student_t

    logs = np.log(values)
    mean, spread = float(logs.mean()), float(logs.std(ddof=1))
    ratio = cand / math.exp(mean)
    half = float(student_t.ppf(0.975, len(values) - 1)) * spread * math.sqrt(1 + 1 / len(values))
    low, high = ratio * math.exp(-half), ratio * math.exp(half)
    significant = (low > 1 or high < 1) and abs(ratio - 1) >= min_effect
    return Change(metric, math.exp(mean), cand, ratio, significant, None, low, high,
                  note=f"history of {len(values)} runs")


def _change(metric: Metric, history: pd.DataFrame, cand_row: Mapping,
            min_effect: float) -> Change:
    values = pd.to_numeric(history[metric.column], errors="coerce").dropna().to_numpy(float)
    cand = cand_row[metric.column]
    if len(values) < 2 or pd.isna(cand) or np.any(values <= 0):
        return Change(metric, math.nan, math.nan, math.nan, False, note="not measured")
    if metric.percentile is not None:
        return _latency_change(metric, values, float(cand), min_effect)
    base = float(np.median(values))
    return Change(metric, base, float(cand), float(cand) / base,
                  abs(float(cand) / base - 1) >= min_effect, note="history median")


def compare_history(files: list[Path], cand_path: Path, runs: int = DEFAULT_HISTORY_RUNS,
                    min_runs: int = DEFAULT_MIN_HISTORY,
                    min_effect: float = 0.05) -> Comparison:
    """Every candidate case against its last `runs` matching history rows. ValueError
    (naming the case) when a case has fewer than `min_runs` of them."""
    history = pd.concat([read_results(path) for path in files], ignore_index=True)
    throttled = history["throttled"].fillna(False).astype(bool)
    history = history[(history["status"] == "ok") & ~throttled]
    cand_frame = read_results(cand_path)
    cases = []
    for cand_row in cand_frame.to_dict("records"):
        key = tuple(cand_row[c] for c in KEY_COLUMNS)
        same = history[[all(str(r[c]) == str(v) for c, v in zip(KEY_COLUMNS, key))
                        and _same_setup(r, cand_row) for r in history.to_dict("records")]]
        same = same.sort_values("timestamp").tail(runs)
        if len(same) < min_runs:
            raise ValueError(f"--history has {len(same)} earlier run(s) of {key_text(key)} on "
                             f"{cand_row['device']} with the same runtime and settings; the "
                             f"gate needs at least {min_runs}")
        base_row = same.iloc[-1].to_dict()
        problems = row_problems(cand_row, [], "candidate")
        changes = [] if problems else [_change(m, same, cand_row, min_effect)
                                       for m in judged_metrics()]
        cases.append(CaseComparison(key, base_row, cand_row, changes, [], problems))
    return Comparison(cases)
