"""The results table on the terminal (rich), shared by `harness run` and `harness show`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

import pandas as pd
from rich.console import Console
from rich.table import Table

from edge_rnn_harness.core.metrics import COUNTER_METRICS, all_metrics
from edge_rnn_harness.core.percentiles import min_values
from edge_rnn_harness.core.plan import case_label
from edge_rnn_harness.core.results import is_finite_number

_STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow",
                 "unsupported": "yellow", "invalid": "magenta"}


def number_cell(value: object, show: Callable[[float], str]) -> str:
    """A number's cell: `show(value)` when finite, "-" when not measured (empty), and
    "inf", "-inf" or "nan" as such (a value that is there but no finite number is never
    shown as not measured)."""
    if is_finite_number(value):
        return show(float(value))  # type: ignore[arg-type]
    try:
        return str(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


def _num(fmt: str) -> Callable[[object], str]:
    return lambda value: number_cell(value, lambda number: format(number, fmt))


#: (header, column, formatter, justify) of the case's identity and status
_CASE_COLUMNS: list[tuple[str, str, Callable[[object], str], str]] = [
    ("model", "model", str, "left"),
    ("variant", "variant", str, "left"),
    ("backend", "backend", str, "left"),
    ("params", "params", _num(",.0f"), "right"),
    ("thr", "threads", str, "right"),
    ("status", "status", str, "left"),
]


def _metric_columns() -> list[tuple[str, str, Callable[[object], str], str]]:
    """The declared metrics the table shows (core.metrics: `table`), in declared order."""
    return [(metric.table[0], metric.column,
             lambda value, metric=metric: number_cell(value, metric.display),  # type: ignore[misc]
             "right")
            for metric in all_metrics() if metric.table is not None]


#: shown after the backend when a run sweeps scenarios, window lengths or batches
_SHAPE_COLUMNS: list[tuple[str, str, Callable[[object], str], str]] = [
    ("scenario", "scenario", str, "left"), ("seq", "seq_len", str, "right"),
    ("batch", "batch", str, "right")]


def swept(frame: pd.DataFrame) -> bool:
    """Whether the rows differ in scenario, window length or batch (or leave the default
    single window, batch 1)."""
    return bool(frame[["scenario", "seq_len", "batch"]].drop_duplicates().shape[0] > 1
                or (frame["scenario"].fillna("single_stream") != "single_stream").any()
                or (frame["batch"].fillna(1) != 1).any())


#: width used when stdout is a file or pipe (rich would squeeze the table into 80 columns)
PIPE_WIDTH = 200


def table_console() -> Console:
    """A stdout console that keeps wide tables readable when piped or logged."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


#: metrics shown only when some row has them (counted with --counters)
_WHEN_MEASURED = {metric.column for metric in COUNTER_METRICS}
#: the p99 of fewer values than this has no 95% interval: shown in parentheses
P99_MIN_VALUES = min_values(99.0)


def too_few_for_p99(record: Mapping[str, object]) -> bool:
    """Whether the row's value count is too small for a 95% interval of its p99."""
    n = record.get("n_values")
    return is_finite_number(n) and float(n) < P99_MIN_VALUES  # type: ignore[arg-type]


def _p99_cell(record: Mapping[str, object], text: str) -> str:
    """The p99 cell: in parentheses when the row's values cannot support an interval."""
    return f"({text})" if text != "-" and too_few_for_p99(record) else text


def results_table(frame: pd.DataFrame, title: str = "") -> Table:
    """A rich Table of a results frame: one line per case, failures' reasons below it."""
    table = Table(title=title or None, header_style="bold")
    fleet = bool(frame["device_name"].notna().any())  # rows from remote devices (--on)
    shapes = _SHAPE_COLUMNS if swept(frame) else []
    metrics = [column for column in _metric_columns()
               if column[1] not in _WHEN_MEASURED or frame[column[1]].notna().any()]
    verdicts = [("stability", "stability", str, "left")] \
        if frame["stability"].notna().any() else []
    columns = ([("device", "device_name", str, "left")] if fleet else []) + \
        _CASE_COLUMNS[:3] + shapes + _CASE_COLUMNS[3:] + metrics + verdicts
    for header, _, _, justify in columns:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    reasons: list[str] = []
    few = False
    for record in frame.to_dict("records"):
        cells = ["-" if pd.isna(record[col]) else fmt(record[col])
                 for _, col, fmt, _ in columns]
        for index, (_, col, _, _) in enumerate(columns):
            if col == "latency_p99_ms":
                cells[index] = _p99_cell(record, cells[index])
                few = few or cells[index].startswith("(")
        status = str(record["status"])
        cells[5 + fleet + len(shapes)] = f"[{_STATUS_STYLE.get(status, '')}]{status}[/]"
        table.add_row(*cells)
        if status != "ok" and not pd.isna(record["reason"]):
            reasons.append(f"{case_label(record)}: {record['reason']}")
    if few:
        reasons.insert(0, f"p99 in parentheses: fewer than {P99_MIN_VALUES} values, too few "
                          f"for its 95% interval (a longer --profile gives one)")
    if reasons:
        table.caption = "\n".join(reasons)
        table.caption_justify = "left"
    return table
