"""The `harness` command: the parser of every subcommand (one module per command, each
with `add_parser`) and the entry point."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from edge_rnn_harness import __version__
from edge_rnn_harness.cli import (
    ab,
    backends,
    compare,
    devices,
    export,
    gate,
    history,
    models,
    report,
    run,
    show,
    train,
    tune,
)
from edge_rnn_harness.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, UsageParser
from edge_rnn_harness.core.errors import UsageError

#: the subcommands, in the order `harness --help` lists them
COMMANDS = (run, export, train, backends, models, compare, gate, ab, report, history, show,
            devices, tune)


def build_parser() -> UsageParser:
    """The argument parser of every subcommand: each command module adds its own and sets
    its handler."""
    parser = UsageParser(prog="harness", description=(
        "Benchmark a recurrent forecaster on edge runtimes: latency, memory, parity with "
        "the PyTorch reference, measured the same way for every runtime."))
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script; returns the exit code. SIGTERM and
    SIGHUP stop a run as Ctrl-C does: children's process groups killed, rows kept."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as error:
        message = str(error)
        print(message if message.startswith("harness") else f"harness: {message}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside a run (which keeps its rows and says so itself)
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
