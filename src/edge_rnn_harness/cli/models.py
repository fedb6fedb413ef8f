"""`harness models`: the registered models and their architecture."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from edge_rnn_harness.cli.options import EXIT_OK
from edge_rnn_harness.core.table import table_console
from edge_rnn_harness.models.registry import MODELS


def cmd_models(args: argparse.Namespace) -> int:
    """`harness models`: the registered models."""
    table = Table(header_style="bold")
    for column in ("model", "cell", "hidden", "layers", "features", "params", "sparsity",
                   "test RMSE", "description"):
        table.add_column(column)
    for entry in MODELS.values():
        spec, record = entry.spec, entry.record() or {}
        rmse = f"{record['test_rmse']:.4f} {record['units']}" if record else "untrained"
        sparsity = f"{record['recurrent_sparsity']:.0%}" if record else "-"
        table.add_row(entry.name, spec.cell, str(spec.hidden_size), str(spec.num_layers),
                      str(len(entry.features)), f"{spec.parameter_count():,}", sparsity, rmse,
                      entry.description)
    table_console().print(table)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """The `harness models` subcommand."""
    parser = commands.add_parser("models", help="list the registered models",
                        description="List the registered models and their architecture.")
    parser.set_defaults(handler=cmd_models)
