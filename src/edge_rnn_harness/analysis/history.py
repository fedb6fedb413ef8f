"""A candidate judged against the history of its case: the last N runs of the same case on
the same device, runtime version and settings, from a folder of results CSVs or a run
store, each run counted once (copies of one run_id are one run). Their spread sets how much change is noise
(in the manner of statistical continuous-benchmarking services): the candidate's latency
ratio to the history's geometric mean gets a 95% prediction interval from the spread of
the history's log latencies (Student t, n - 1 degrees of freedom); single numbers per case
(memory, size, RMSE, energy) are compared with the history's median. The gate then gives
the same three verdicts as for two runs.
"""

from __future__ import annotations

import functools
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
    identity_notes,
    key_text,
    row_problems,
)
from edge_rnn_harness.analysis.store import is_store, open_store
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


def history_frame(spec: str, exclude: Path) -> pd.DataFrame:
    """The history's rows: a run store's (a folder with store.json), else the results CSVs
    a folder or glob names."""
    if is_store(Path(spec)):
        return open_store(Path(spec)).rows()
    return pd.concat([read_results(path) for path in history_files(spec, exclude)],
                     ignore_index=True)


def _texts(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Per row, its values in `columns` as one text (as str() shows each, empty as <NA>),
    so rows of one case and setup have equal texts."""
    parts = [frame[c].astype(object).map(str) for c in columns]
    return ["\x1f".join(values) for values in zip(*parts)] if parts else []


@functools.lru_cache(maxsize=256)
def _t_975(degrees: int) -> float:
    """The 97.5% quantile of Student's t with `degrees` degrees of freedom (scipy.special:
    a fraction of scipy.stats' import time)."""
    from scipy.special import stdtrit

    return float(stdtrit(degrees, 0.975))


def prediction_interval(history: np.ndarray, value: float) -> tuple[float, float, float]:
    """`value`'s ratio to the geometric mean of `history` (two or more positive numbers)
    and the 95% prediction interval of that ratio for one more run like them (Student t
    on the log values, n - 1 degrees of freedom): (ratio, low, high). A ratio whose
    interval excludes 1 lies outside what the history's own spread predicts."""
    logs = np.log(history)
    mean, spread = float(logs.mean()), float(logs.std(ddof=1))
    ratio = value / math.exp(mean)
    half = _t_975(len(history) - 1) * spread * math.sqrt(1 + 1 / len(history))
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)


def _latency_change(metric: Metric, values: np.ndarray, cand: float,
                    min_effect: float) -> Change:
    ratio, low, high = prediction_interval(values, cand)
    significant = (low > 1 or high < 1) and abs(ratio - 1) >= min_effect
    return Change(metric, cand / ratio, cand, ratio, significant, None, low, high,
                  note=f"history of {len(values)} runs")


def _change(metric: Metric, history: pd.DataFrame, cand_row: Mapping,
            min_effect: float) -> Change:
    values = pd.to_numeric(history[metric.column], errors="coerce").dropna().to_numpy(float)
    cand = cand_row[metric.column]
    if len(values) < 2 or pd.isna(cand) or np.any(values <= 0):
        return Change(metric, math.nan, math.nan, math.nan, False, note="not measured")
    if metric.percentile is not None:
        return _latency_change(metric, values, float(cand), min_effect)
    if metric.spread is not None:  # counted: the history's own spread, no minimum effect
        return _latency_change(metric, values, float(cand), 0.0)
    base = float(np.median(values))
    return Change(metric, base, float(cand), float(cand) / base,
                  abs(float(cand) / base - 1) >= min_effect, note="history median")


def judged_history(history: pd.DataFrame, cand_frame: pd.DataFrame) -> pd.DataFrame:
    """The history rows a gate may use: ok, not throttled, not of the candidate's own
    runs, and one row per run and case (the latest copy), so copies of one run count
    once."""
    throttled = history["throttled"].fillna(False).astype(bool)
    own = set(cand_frame["run_id"].dropna().astype(str))
    kept = history[(history["status"] == "ok") & ~throttled
                   & ~history["run_id"].astype(str).isin(own)]
    return kept.drop_duplicates(subset=["run_id", *KEY_COLUMNS], keep="last")


def compare_history(history: pd.DataFrame, cand_frame: pd.DataFrame,
                    runs: int = DEFAULT_HISTORY_RUNS, min_runs: int = DEFAULT_MIN_HISTORY,
                    min_effect: float = 0.05) -> Comparison:
    """Every candidate case against its last `runs` matching history rows (distinct
    runs). ValueError (naming the case) when a case has fewer than `min_runs` of them."""
    history = judged_history(history, cand_frame)
    matched = [*KEY_COLUMNS, *SETTINGS_COLUMNS]
    by_setup = history.assign(_key=_texts(history, matched)).groupby("_key", sort=False)
    groups = {key: group for key, group in by_setup}
    cases = []
    for cand_row, text in zip(cand_frame.to_dict("records"), _texts(cand_frame, matched)):
        key = tuple(cand_row[c] for c in KEY_COLUMNS)
        same = groups.get(text, history.iloc[:0]).sort_values("timestamp").tail(runs)
        if len(same) < min_runs:
            raise ValueError(f"--history has fewer than {min_runs} distinct runs of "
                             f"{key_text(key)} on {cand_row['device']} with the same runtime "
                             f"and settings ({len(same)}); the gate needs at least {min_runs}")
        base_row = same.iloc[-1].to_dict()
        problems = row_problems(cand_row, [], "candidate")
        changes = [] if problems else [_change(m, same, cand_row, min_effect)
                                       for m in judged_metrics()]
        cases.append(CaseComparison(key, base_row, cand_row, changes, [], problems))
    return Comparison(cases, identity_notes=identity_notes(cases))
