"""`harness gate`: the CI regression gate (0 pass, 1 regression, 2 inconclusive)."""

from __future__ import annotations

import argparse
from typing import Any

from edge_rnn_harness.analysis.gate import judge
from edge_rnn_harness.cli.judging import (
    add_gate_args,
    add_pair_args,
    load_comparison,
    load_history_comparison,
    report_verdict,
    thresholds_of,
    whole_runs,
)
from edge_rnn_harness.core.errors import UsageError


def cmd_gate(args: argparse.Namespace) -> int:
    """`harness gate BASE CAND`: print the verdict, return its exit code."""

    if args.history is not None:
        comparison = load_history_comparison(args)
    else:
        if len(args.paths) != 2:
            raise UsageError("harness gate: give BASE and CAND results (or --history "
                             "DIR_OR_GLOB and CAND)")
        comparison = load_comparison(args, "gate", *args.paths)
    thresholds = thresholds_of(args)
    return report_verdict(judge(comparison, thresholds, args.allow_mismatch), comparison,
                          args.summary)


def add_parser(commands: Any) -> None:
    """The `harness gate` subcommand."""
    gate = commands.add_parser(
        "gate", help="0 when every gated metric passes, 1 on a regression, 2 inconclusive",
        description="A CI regression gate: harness gate BASE CAND, or harness gate --history "
        "DIR_OR_GLOB CAND. Every gated metric gets a verdict: regression (a significant "
        "change beyond its threshold), pass (the data rule out a growth beyond the "
        "threshold) or inconclusive (neither: the gate says how large a change the data "
        "could resolve and what to measure). Every threshold is a growth in percent. Exit 0 "
        "pass, 1 regression (each named), 2 inconclusive or cannot judge (bad input, a case "
        "missing from the candidate, a throttled or invalid row, mismatched settings, "
        "latencies that are missing, not positive or disagree with the pyperf JSON).")
    add_pair_args(gate, history=True)
    gate.add_argument("--history", default=None, metavar="DIR_OR_GLOB",
                      help="judge CAND against the last runs of each case (same device, "
                           "runtime version and settings) among these results CSVs instead "
                           "of one baseline: their spread sets what is noise")
    gate.add_argument("--history-runs", type=whole_runs, default=10, metavar="N",
                      help="with --history: how many of the latest matching runs (default 10)")
    gate.add_argument("--min-history", type=whole_runs, default=5, metavar="N",
                      help="with --history: refuse (exit 2) with fewer matching runs than "
                           "this (default 5; at least 2)")
    add_gate_args(gate)
    gate.set_defaults(handler=cmd_gate)
