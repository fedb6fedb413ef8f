"""`harness compare`: what changed between two runs, with significance."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_rnn_harness.analysis.compare import device_problems, key_text
from edge_rnn_harness.analysis.compare_view import FORMATS, render
from edge_rnn_harness.cli.judging import add_pair_args, load_comparison
from edge_rnn_harness.cli.options import request_from
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.table import table_console


@dataclass(frozen=True)
class CompareRequest:
    """`harness compare`'s options, typed."""
    base: Path = Path()
    cand: Path = Path()
    min_effect: float = 0.05
    alpha: float = 0.01
    allow_mismatch: bool = False
    rename_model: list[str] = field(default_factory=list)
    rename_variant: list[str] = field(default_factory=list)
    format: str = "table"


def cmd_compare(args: argparse.Namespace) -> int:
    """`harness compare`: its typed request, run."""
    return compare_command(request_from(CompareRequest, args))


def compare_command(request: CompareRequest) -> int:
    """`harness compare BASE CAND`."""
    comparison = load_comparison(request, "compare")

    for case in comparison.cases:
        for problem in device_problems(case.base_row, case.cand_row):
            raise UsageError(f"harness compare: {key_text(case.key)}: {problem}")
    mismatched = [case for case in comparison.cases if case.mismatches]
    if mismatched and not request.allow_mismatch:
        first = mismatched[0]
        raise UsageError(f"harness compare: {len(mismatched)} case(s) measured under different "
                         f"settings, e.g. {key_text(first.key)}: {'; '.join(first.mismatches)}"
                         f"; use --allow-mismatch to compare them anyway")
    for note in comparison.identity_notes:  # stderr: the output stays data in every format
        print(f"harness compare: note: {note}", file=sys.stderr)
    output = render(comparison, request.format)
    if isinstance(output, str):
        print(output)
    else:
        table_console().print(output)
    return 0


def add_parser(commands: Any) -> None:
    """The `harness compare` subcommand."""
    compare = commands.add_parser(
        "compare", help="what changed between two runs, with significance",
        description="Join two runs on the case key and show, per metric, baseline, "
        "candidate, change and whether it is significant (latency: Mann-Whitney U on the "
        "raw values and a process-level bootstrap CI of the ratio).")
    add_pair_args(compare)
    compare.add_argument("--format", choices=FORMATS, default="table",
                         help="output format (default table)")
    compare.set_defaults(handler=cmd_compare)
