"""`harness show RESULTS.csv`: a results file as the terminal table."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rnn_harness.cli.options import EXIT_OK, request_from, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.core.table import results_table, table_console


@dataclass(frozen=True)
class ShowRequest:
    """`harness show`'s argument."""
    results: Path = Path()


def cmd_show(args: argparse.Namespace) -> int:
    """`harness show`: its typed request, run."""
    return show_command(request_from(ShowRequest, args))


def show_command(request: ShowRequest) -> int:
    """`harness show RESULTS.csv`: the terminal table of a results file."""
    try:
        frame = read_results(request.results)
    except ValueError as error:
        raise UsageError(f"harness show: {error}") from None
    table_console().print(results_table(frame, title=str(request.results)))
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """The `harness show` subcommand."""
    show = commands.add_parser("show", help="print a results CSV as a table",
                               description="Render a results CSV as the terminal table.")
    show.add_argument("results", type=user_path, metavar="RESULTS.csv")
    show.set_defaults(handler=cmd_show)
