"""`harness gate`: the CI regression gate (0 pass, 1 regression, 2 inconclusive)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_rnn_harness.analysis.gate import judge
from edge_rnn_harness.cli.judging import (
    add_gate_args,
    add_pair_args,
    load_comparison,
    load_history_comparison,
    report_verdict,
    thresholds_dict,
    thresholds_of,
    whole_runs,
)
from edge_rnn_harness.cli.options import request_from
from edge_rnn_harness.core.errors import UsageError


@dataclass(frozen=True)
class GateRequest:
    """`harness gate`'s options, typed; `thresholds` holds every gated metric's
    limit by column."""
    paths: list[Path] = field(default_factory=list)
    min_effect: float = 0.05
    alpha: float = 0.01
    allow_mismatch: bool = False
    rename_model: list[str] = field(default_factory=list)
    rename_variant: list[str] = field(default_factory=list)
    history: str | None = None
    history_runs: int = 10
    min_history: int = 5
    summary: Path | None = None
    thresholds: dict[str, float | None] = field(default_factory=dict)


def cmd_gate(args: argparse.Namespace) -> int:
    """`harness gate`: its typed request, run."""
    return gate_command(request_from(GateRequest, args, thresholds=thresholds_dict(args)))


def gate_command(request: GateRequest) -> int:
    """`harness gate BASE CAND`: print the verdict, return its exit code."""
    if request.history is not None:
        comparison = load_history_comparison(request)
    else:
        if len(request.paths) != 2:
            raise UsageError("harness gate: give BASE and CAND results (or --history "
                             "DIR_OR_GLOB and CAND)")
        comparison = load_comparison(request, "gate", *request.paths)
    thresholds = thresholds_of(request)
    return report_verdict(judge(comparison, thresholds, request.allow_mismatch), comparison,
                          request.summary)


def add_parser(commands: Any) -> None:
    """The `harness gate` subcommand."""
    gate = commands.add_parser(
        "gate", help="0 when every gated metric passes, 1 on a regression, 2 inconclusive",
        description="A CI regression gate: harness gate BASE CAND, or harness gate --history "
        "STORE_OR_CSVS CAND. Every gated metric gets a verdict: regression (a significant "
        "change beyond its threshold), pass (the data rule out a growth beyond the "
        "threshold) or inconclusive (neither: the gate says how large a change the data "
        "could resolve and what to measure). Every threshold is a growth in percent. Exit 0 "
        "pass, 1 regression (each named), 2 inconclusive or cannot judge (bad input, a case "
        "missing from the candidate, a throttled or invalid row, mismatched settings, "
        "latencies that are missing, not positive or disagree with the pyperf JSON).")
    add_pair_args(gate, history=True)
    gate.add_argument("--history", default=None, metavar="STORE_OR_CSVS",
                      help="judge CAND against the last runs of each case (same device, "
                           "runtime version and settings) in a run store (harness history) "
                           "or among the results CSVs a folder or glob names, instead of "
                           "one baseline: their spread sets what is noise. Each run_id "
                           "counts once; CAND's own run_id is left out")
    gate.add_argument("--history-runs", type=whole_runs, default=10, metavar="N",
                      help="with --history: how many of the latest matching runs (default 10)")
    gate.add_argument("--min-history", type=whole_runs, default=5, metavar="N",
                      help="with --history: refuse (exit 2) with fewer matching runs than "
                           "this (default 5; at least 2)")
    add_gate_args(gate)
    gate.set_defaults(handler=cmd_gate)
