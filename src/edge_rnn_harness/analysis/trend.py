"""Trends over stored runs: a metric of each case run after run, with change points marked.

A run is a change point when its value lies outside the 95% prediction interval that the
runs before it (since the last change point, at most `window` of them) give for one more
run (the history gate's interval, analysis.history.prediction_interval) and differs from
their geometric mean by at least `min_effect`. A run outside that interval whose next run
is back inside it is an outlier, not a change: one slow run does not move a trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.history import prediction_interval
from edge_rnn_harness.core.plan import case_label

CHANGE, OUTLIER = "change", "outlier"
#: runs before a candidate that the change-point test looks at, and the fewest it needs
DEFAULT_WINDOW, DEFAULT_MIN_RUNS = 10, 5


@dataclass(frozen=True)
class Mark:
    """What the change-point test says of one run: "" (within the trend), change or
    outlier, and the ratio to the runs before it (nan before there are enough)."""
    kind: str
    ratio: float


def _outside(reference: np.ndarray, value: float, min_effect: float) -> float | None:
    """The ratio of `value` to the reference runs when it lies outside their prediction
    interval by at least `min_effect`, else None."""
    ratio, low, high = prediction_interval(reference, value)
    return ratio if (low > 1 or high < 1) and abs(ratio - 1) >= min_effect else None


def change_points(values: Sequence[float], window: int = DEFAULT_WINDOW,
                  min_runs: int = DEFAULT_MIN_RUNS, min_effect: float = 0.05) -> list[Mark]:
    """A Mark per value (runs in time order, positive values)."""
    data = np.asarray(values, float)
    marks: list[Mark] = []
    start = 0
    for index, value in enumerate(data):
        inside = [i for i in range(start, index) if marks[i].kind != OUTLIER]
        reference = data[inside[-window:]]
        if len(reference) < min_runs:
            marks.append(Mark("", float("nan")))
            continue
        ratio = _outside(reference, float(value), min_effect)
        if ratio is None:
            marks.append(Mark("", float(value / np.exp(np.log(reference).mean()))))
            continue
        back = index + 1 < len(data) and _outside(reference, float(data[index + 1]),
                                                  min_effect) is None
        marks.append(Mark(OUTLIER if back else CHANGE, ratio))
        if not back:
            start = index
    return marks


def trend_frame(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One line per (case, run) of the ok, unthrottled rows with `metric` measured, in time
    order per case: case, run_id, timestamp, value, mark, change_pct."""
    throttled = rows["throttled"].fillna(False).astype(bool)
    rows = rows[(rows["status"] == "ok") & ~throttled & rows[metric].notna()]
    rows = rows[rows[metric].astype(float) > 0]
    case_columns = ["model", "variant", "backend", "scenario", "seq_len", "threads", "batch",
                    "device_name", "cpu_freq_khz"]
    rows = rows.drop_duplicates(subset=["run_id", *case_columns], keep="last")
    rows = rows[[*case_columns, "device", "run_id", "timestamp", metric]]
    lines = []
    cases = rows.assign(case=[case_label(r) + f" on {r['device']}"
                              for r in rows.to_dict("records")])
    for case, group in cases.groupby("case", sort=True):
        group = group.sort_values(["timestamp", "run_id"])
        marks = change_points(group[metric].astype(float).to_numpy())
        for row, mark in zip(group.to_dict("records"), marks):
            lines.append({"case": case, "run_id": row["run_id"],
                          "timestamp": row["timestamp"], "value": float(row[metric]),
                          "mark": mark.kind,
                          "change_pct": (mark.ratio - 1) * 100 if mark.kind else np.nan})
    return pd.DataFrame(lines, columns=["case", "run_id", "timestamp", "value", "mark",
                                        "change_pct"])


def figure_series(trend: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per case, the frame analysis.figures.trend_figure draws: when, value, change."""
    return {str(case): pd.DataFrame({
        "when": pd.to_datetime(group["timestamp"], utc=True, errors="coerce"),
        "value": group["value"], "change": group["mark"] == CHANGE})
        for case, group in trend.groupby("case", sort=True)}
