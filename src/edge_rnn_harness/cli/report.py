"""`harness report`: the Markdown report and PNG plots of one run."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rnn_harness.analysis.report import write_report
from edge_rnn_harness.cli.options import request_from, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.results import read_results


@dataclass(frozen=True)
class ReportRequest:
    """`harness report`'s options."""
    results: Path = Path()
    out: Path = Path()


def cmd_report(args: argparse.Namespace) -> int:
    """`harness report`: its typed request, run."""
    return report_command(request_from(ReportRequest, args))


def report_command(request: ReportRequest) -> int:
    """`harness report RUN.csv --out DIR`."""
    try:
        frame = read_results(request.results)
    except ValueError as error:
        raise UsageError(f"harness report: {error}") from None
    try:
        written = write_report(frame, request.results, request.out)
    except ImportError as error:
        raise UsageError(f"harness report: needs matplotlib ({error}); install the [plot] "
                         f"extra") from None
    except OSError as error:
        raise UsageError(f"harness report: cannot write to {request.out} "
                         f"({error.strerror or error})") from None
    for path in written:
        print(path)
    return 0


def add_parser(commands: Any) -> None:
    """The `harness report` subcommand."""
    report = commands.add_parser(
        "report", help="Markdown report and PNG plots of a run",
        description="Write report.md and PNG plots: latency per backend and variant with "
        "p90 whiskers, accuracy vs latency (Pareto front), memory and artifact size, and "
        "energy per inference where measured.")
    report.add_argument("results", type=user_path, metavar="RUN.csv")
    report.add_argument("--out", type=user_path, required=True, metavar="DIR",
                        help="folder for report.md and the plots")
    report.set_defaults(handler=cmd_report)
