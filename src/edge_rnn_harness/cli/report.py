"""`harness report`: a run's Markdown report with PNG plots (--out DIR) and its
self-contained HTML page (--html FILE), with a baseline's verdicts and a store's trends."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.analysis.gate import Thresholds, judge
from edge_rnn_harness.analysis.report import write_report
from edge_rnn_harness.analysis.report_html import Baseline, render_html, write_html
from edge_rnn_harness.analysis.store import open_store
from edge_rnn_harness.analysis.trend import trend_frame
from edge_rnn_harness.cli.options import request_from, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import case_label
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.stats import raw_values


@dataclass(frozen=True)
class ReportRequest:
    """`harness report`'s options."""
    results: Path = Path()
    out: Path | None = None
    html: Path | None = None
    baseline: Path | None = None
    history: Path | None = None


def cmd_report(args: argparse.Namespace) -> int:
    """`harness report`: its typed request, run."""
    return report_command(request_from(ReportRequest, args))


def report_command(request: ReportRequest) -> int:
    """`harness report RUN.csv [--out DIR] [--html FILE] [--baseline B] [--history S]`."""
    if request.out is None and request.html is None:
        raise UsageError("harness report: give --out DIR (Markdown and PNG), --html FILE, or "
                         "both")
    if request.html is None and (request.baseline or request.history):
        raise UsageError("harness report: --baseline and --history go into the HTML page; "
                         "add --html FILE")
    try:
        csv_path, json_path = request.results, request.results.with_suffix(".json")
        frame = read_results(csv_path)
        if request.out is not None:
            for path in write_report(frame, csv_path, request.out):
                print(path)
        if request.html is not None:
            page = render_html(frame, csv_path, raw_values(json_path),
                               _baseline(request.baseline, csv_path),
                               _trend(request.history, frame))
            size = write_html(request.html, page)
            print(f"{request.html} ({size / 1024:,.0f} KiB, self-contained)")
    except ValueError as error:
        raise UsageError(f"harness report: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness report: needs {error.name or error} ({error}); install "
                         f"the [plot], [stats] and [history] extras") from None
    except OSError as error:
        where = error.filename or request.html or request.out
        raise UsageError(f"harness report: cannot write {where} "
                         f"({error.strerror or error})") from None
    return 0


def _baseline(path: Path | None, cand: Path) -> Baseline | None:
    if path is None:
        return None
    comparison = compare_runs(path, cand)
    return Baseline(path, judge(comparison, Thresholds()))


def _trend(store_path: Path | None, frame: pd.DataFrame) -> pd.DataFrame | None:
    """The median latency trend over the store of this run's ok cases."""
    if store_path is None:
        return None
    ok = frame[frame["status"] == "ok"]
    if not len(ok):
        return None
    store = open_store(store_path)
    models, backends = sorted(set(ok["model"])), sorted(set(ok["backend"]))
    marks = ", ".join("?" * len(models)), ", ".join("?" * len(backends))
    rows = store.rows(f"WHERE model IN ({marks[0]}) AND backend IN ({marks[1]})",
                      [*models, *backends])
    trend = trend_frame(rows, "latency_median_ms")
    wanted = {case_label(r) + f" on {r['device']}" for r in ok.to_dict("records")}
    return trend[trend["case"].isin(wanted)]


def add_parser(commands: Any) -> None:
    """The `harness report` subcommand."""
    report = commands.add_parser(
        "report", help="Markdown report with PNG plots, and/or one self-contained HTML page",
        description="--out DIR writes report.md and PNG plots: latency per backend and "
        "variant with p90 whiskers, accuracy vs latency (Pareto front), memory and artifact "
        "size, energy per inference where measured. --html FILE writes one self-contained "
        "page (no network needed to open it; prints; light and dark) with a sortable "
        "summary table, every case's latency distribution from the pyperf values beside "
        "RUN.csv, the same figures as SVG and, optionally, a baseline's verdicts and a run "
        "store's trends.")
    report.add_argument("results", type=user_path, metavar="RUN.csv")
    report.add_argument("--out", type=user_path, default=None, metavar="DIR",
                        help="folder for report.md and the PNG plots")
    report.add_argument("--html", type=user_path, default=None, metavar="FILE",
                        help="write the self-contained HTML page here")
    report.add_argument("--baseline", type=user_path, default=None, metavar="BASE.csv",
                        help="with --html: compare with this run (the gate's verdict per "
                             "metric with the default thresholds, and its interval)")
    report.add_argument("--history", type=user_path, default=None, metavar="STORE",
                        help="with --html: trend lines of this run's cases from a run store "
                             "(harness history), change points marked")
    report.set_defaults(handler=cmd_report)
