"""`harness history`: the run store (DuckDB over Parquet files in one folder): add runs,
list them, and show a metric's trend per case with change points."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from edge_rnn_harness.analysis.store import RunStore, added_line, open_store
from edge_rnn_harness.analysis.trend import CHANGE, trend_frame
from edge_rnn_harness.cli.options import EXIT_OK, request_from, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.metrics import METRICS, metric_by_column
from edge_rnn_harness.core.table import table_console

#: the metrics a trend can follow: every numeric per-case figure
TREND_METRICS = [m.column for m in METRICS if m.dtype in ("float", "int")]


@dataclass(frozen=True)
class HistoryRequest:
    """`harness history`'s options (all actions)."""
    action: str = "list"
    store: Path = Path()
    results: list[Path] = field(default_factory=list)
    model: str | None = None
    backend: str | None = None
    device: str | None = None
    since: dt.date | None = None
    metric: str = "latency_median_ms"
    format: str = "table"
    last: int = 20
    plot: Path | None = None


def cmd_history(args: argparse.Namespace) -> int:
    """`harness history`: its typed request, run."""
    return history_command(request_from(HistoryRequest, args))


def history_command(request: HistoryRequest) -> int:
    """Run one `harness history` action."""
    try:
        store = open_store(request.store, create=request.action == "add")
        if request.action == "add":
            return _add(store, request.results)
        if request.action == "list":
            return _list(store)
        return _trend(store, request)
    except ValueError as error:
        raise UsageError(f"harness history {request.action}: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness history: needs duckdb ({error}); install the [history] "
                         f"extra") from None


def _add(store: RunStore, results: list[Path]) -> int:
    for path in results:
        for added in store.add_results(path):
            print(added_line(path, added))
    print(f"{store.root}: {store.run_count()} run(s)")
    return EXIT_OK


def _list(store: RunStore) -> int:
    runs = store.runs()
    table = Table(title=f"{store.root}: {len(runs)} run(s)", header_style="bold")
    for name in ("run_id", "timestamp", "devices", "rows", "ok", "models", "backends"):
        table.add_column(name, justify="right" if name in ("rows", "ok") else "left")
    for run in runs.to_dict("records"):
        table.add_row(*(str(run[name]) for name in ("run_id", "timestamp", "devices", "rows",
                                                    "ok", "models", "backends")))
    table_console().print(table)
    return EXIT_OK


def _trend(store: RunStore, request: HistoryRequest) -> int:
    if not request.model or not request.backend:
        raise ValueError("give --model and --backend")
    clauses, params = ["model = ?", "backend = ?"], [request.model, request.backend]
    if request.device:
        clauses.append("(device_name = ? OR device = ?)")
        params += [request.device, request.device]
    if request.since:
        clauses.append("timestamp >= ?")
        params.append(request.since.isoformat())
    trend = trend_frame(store.rows("WHERE " + " AND ".join(clauses), params), request.metric)
    if not len(trend):
        raise ValueError(f"no ok rows of {request.model} on {request.backend}"
                         + (f" on {request.device}" if request.device else "")
                         + (f" since {request.since}" if request.since else ""))
    metric = metric_by_column(request.metric)
    label = f"{metric.label} ({request.metric})" if metric else request.metric
    if request.plot:
        _write_plot(trend, label, request.plot)
    if request.format == "csv":
        print(trend.to_csv(index=False), end="")
        return EXIT_OK
    shown = _shown(trend, request.last)
    hidden = len(trend) - len(shown)
    table = Table(title=f"{label}: {trend['case'].nunique()} case(s), change points marked",
                  caption=(f"{hidden} earlier run(s) within their trend not shown (--last 0 "
                           f"shows every run)") if hidden else None, header_style="bold")
    for name in ("case", "run_id", "timestamp", "value", "change"):
        table.add_column(name, justify="right" if name in ("value", "change") else "left")
    for line in shown.to_dict("records"):
        change = (f"{line['mark']} {line['change_pct']:+.1f}%" if line["mark"] else "")
        table.add_row(line["case"], str(line["run_id"]), str(line["timestamp"]),
                      f"{line['value']:.6g}", f"[bold]{change}[/]" if line["mark"] == CHANGE
                      else change)
    table_console().print(table)
    return EXIT_OK


def _shown(trend: Any, last: int) -> Any:
    """The lines the table shows: per case its `last` runs (all with 0) and every earlier
    change point or outlier."""
    if last == 0:
        return trend
    recent = trend.groupby("case", sort=False).cumcount(ascending=False) < last
    return trend[recent | (trend["mark"] != "")]


def _write_plot(trend: Any, label: str, path: Path) -> None:
    from edge_rnn_harness.analysis.figures import save_png, svg_markup, trend_figure
    from edge_rnn_harness.analysis.trend import figure_series

    figure = trend_figure(figure_series(trend), label)
    try:
        if path.suffix.lower() == ".svg":
            path.write_text(svg_markup(figure))
        else:
            save_png(figure, path)
    except OSError as error:
        raise ValueError(f"cannot write --plot {path} ({error.strerror or error})") from None
    print(f"wrote {path}")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not from 0 to 1,000,000")
    return value


def _metric(text: str) -> str:
    if text not in TREND_METRICS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a per-case metric; choose from "
                                         f"{', '.join(TREND_METRICS)}")
    return text


def add_parser(commands: Any) -> None:
    """The `harness history` subcommand and its actions."""
    history = commands.add_parser(
        "history", help="a run store (DuckDB over Parquet): add runs, list them, trends",
        description="A run store is a folder of Parquet files (one per run) that DuckDB "
        "queries in place: put it on shared storage and query it from any machine. It keeps "
        "every results column and the timed values behind the intervals. harness gate "
        "--history STORE judges a candidate against it.")
    actions = history.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add results CSVs (and their pyperf JSON) to a store",
                             description="Add each run of each results CSV (one per run_id) "
                             "with the timed values of the pyperf JSON beside it. A run "
                             "already in the store is left as it is. Creates the store.")
    add.add_argument("store", type=user_path, metavar="STORE", help="the store folder")
    add.add_argument("results", type=user_path, nargs="+", metavar="RUN.csv")
    listing = actions.add_parser("list", help="one line per stored run",
                                 description="One line per stored run, oldest first.")
    listing.add_argument("store", type=user_path, metavar="STORE", help="the store folder")
    trend = actions.add_parser(
        "trend", help="a metric of each case run after run, change points marked",
        description="A metric of each matching case over the stored runs (ok, unthrottled "
        "rows), in time order. A change point is a run outside the 95% prediction interval "
        "of the runs before it (at most 10 since the last change, at least 5) by 5% or "
        "more; one such run followed by a run back inside is an outlier instead.")
    trend.add_argument("store", type=user_path, metavar="STORE", help="the store folder")
    trend.add_argument("--model", required=True, help="the model's name")
    trend.add_argument("--backend", required=True, help="the backend's name")
    trend.add_argument("--device", default=None,
                       help="only rows of this device (its inventory name or its model)")
    trend.add_argument("--since", type=_date, default=None, metavar="YYYY-MM-DD",
                       help="only runs from this date (UTC) on")
    trend.add_argument("--metric", type=_metric, default="latency_median_ms",
                       help="the results column to follow (default latency_median_ms)")
    trend.add_argument("--format", choices=("table", "csv"), default="table",
                       help="table (default) or csv on stdout")
    trend.add_argument("--last", type=_whole, default=20, metavar="N",
                       help="the table shows each case's last N runs and every earlier "
                            "change point (default 20; 0: every run); csv and the plot "
                            "have every run")
    trend.add_argument("--plot", type=user_path, default=None, metavar="FILE",
                       help="also draw the trend: .svg, else PNG")
    history.set_defaults(handler=cmd_history)
