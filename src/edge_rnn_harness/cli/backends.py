"""`harness backends`: each registered backend's version, or why it cannot run here."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.cli.options import EXIT_OK
from edge_rnn_harness.core.table import table_console


def cmd_backends(args: argparse.Namespace) -> int:
    """`harness backends`: each backend's version, or why it cannot run here."""
    table = Table(header_style="bold")
    for column in ("backend", "format", "version", "variants", "status"):
        table.add_column(column)
    for name, backend in BACKENDS.items():
        reason = backend.available()
        status = "[green]available[/]" if reason is None else f"[yellow]unavailable[/]: {reason}"
        table.add_row(name, backend.fmt, backend.version() or "-", ", ".join(backend.variants),
                      status)
    table_console().print(table)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """The `harness backends` subcommand."""
    parser = commands.add_parser("backends", help="list backends with versions or why unavailable",
                        description="List every registered backend, its runtime version, "
                        "or the reason it cannot run here.")
    parser.set_defaults(handler=cmd_backends)
