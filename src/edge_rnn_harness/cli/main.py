"""The `harness` command: the parser of every subcommand (one module per command, each
with `add_parser`) and the entry point."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

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
    recommend,
    report,
    run,
    show,
    train,
    tune,
)
from edge_rnn_harness.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, UsageParser
from edge_rnn_harness.core.errors import UsageError

#: the subcommands, in the order `harness --help` lists them
COMMANDS = (run, export, train, backends, models, compare, gate, ab, recommend, report,
            history, show, devices, tune)


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


class ReaderGoneSafe:
    """sys.stdout that stops writing, silently, once its reader has gone (a closed pipe:
    `harness gate A B | head -1`), as a closed terminal would: the command goes on and
    returns its own exit code. The descriptor is pointed at /dev/null then, so the
    interpreter's last flush at exit finds nothing to fail on."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        """Write `text` while the reader is there; afterwards, drop it."""
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        """Flush while the reader is there."""
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script; returns the exit code. SIGTERM and
    SIGHUP stop a run as Ctrl-C does: children's process groups killed, rows kept."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    stdout = sys.stdout
    if not isinstance(stdout, ReaderGoneSafe):
        sys.stdout = ReaderGoneSafe(stdout)
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
    finally:
        sys.stdout.flush()  # while the wrapper can still drop what a gone reader left
        sys.stdout = stdout
