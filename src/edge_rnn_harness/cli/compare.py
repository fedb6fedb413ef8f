"""`harness compare`, `harness gate` and `harness report`: reading runs back."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.metrics import METRICS


def _limit(text: str) -> float | None:
    """A threshold in percent (as a fraction), or None for 'off'."""
    return None if text == "off" else _percent(text)


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percent") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0 percent")
    return value / 100


def _whole(text: str) -> int:
    """A whole number of runs, at least 2 (a spread needs two)."""
    from edge_rnn_harness.cli.main import _positive_int

    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} must be at least 2")
    return value


def _probability(text: str) -> float:
    from edge_rnn_harness.cli.main import float_arg

    return float_arg(text, "a number", lambda v: 0 < v < 1,
                     "must be between 0 and 1 (exclusive)")


def _rename(values: list[str], what: str = "model") -> dict[str, str]:
    mapping = {}
    for item in values:
        cand, sep, base = item.partition("=")
        if not (sep and cand and base):
            raise UsageError(f"--rename-{what} {item!r} is not CANDIDATE_{what.upper()}="
                             f"BASELINE_{what.upper()}")
        mapping[cand] = base
    return mapping


def _add_pair_args(parser: argparse.ArgumentParser, history: bool = False) -> None:
    from edge_rnn_harness.cli.main import user_path

    if history:
        parser.add_argument("paths", type=user_path, nargs="+", metavar="RESULTS",
                            help="baseline and candidate results CSVs (or the pyperf JSON "
                                 "beside each); with --history, the candidate alone")
    else:
        parser.add_argument("base", type=user_path, metavar="BASE",
                            help="baseline results CSV (or the pyperf JSON beside it)")
        parser.add_argument("cand", type=user_path, metavar="CAND",
                            help="candidate results CSV (or the pyperf JSON beside it)")
    add_judging_args(parser)
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="compare rows measured on another device, runtime version or "
                             "settings (refused by default)")
    parser.add_argument("--rename-model", action="append", default=[],
                        metavar="CAND_MODEL=BASE_MODEL",
                        help="treat a candidate model as a baseline model (repeatable), "
                             "e.g. to compare two models as one case")
    parser.add_argument("--rename-variant", action="append", default=[],
                        metavar="CAND_VARIANT=BASE_VARIANT",
                        help="treat a candidate variant as a baseline variant (repeatable), "
                             "e.g. int8-dynamic=fp32 to judge what quantizing changed "
                             "(settings differ: add --allow-mismatch)")


def add_gate_args(parser: argparse.ArgumentParser) -> None:
    """The thresholds of every gated metric, and --summary."""
    from edge_rnn_harness.cli.main import user_path

    for metric in METRICS:
        default = metric.default_threshold
        parser.add_argument(metric.gate_option, type=_limit, default=default,
                            metavar="PERCENT",
                            help=f"largest tolerated growth of {metric.label} ({metric.unit}), "
                                 f"or 'off' " + (f"(default {default * 100:g})"
                                                 if default is not None
                                                 else "(default off)"))
    parser.add_argument("--summary", type=user_path, default=None, metavar="FILE",
                        help="also write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")


def add_judging_args(parser: argparse.ArgumentParser) -> None:
    """--min-effect and --alpha: when a change counts as significant."""
    parser.add_argument("--min-effect", type=_percent, default=0.05, metavar="PERCENT",
                        help="a change smaller than this is never significant (default 5)")
    parser.add_argument("--alpha", type=_probability, default=0.01,
                        help="significance level of the rank test (default 0.01)")


def report_verdict(verdict: Any, comparison: Any, summary: Path | None) -> int:
    """Print the gate's verdict lines and table (and the Markdown summary); its exit code."""
    text = _verdict_lines(verdict)
    print("\n".join(text))
    if verdict.metrics:
        print("\n" + verdict_table(verdict, "simple"))
    if summary is not None:
        _write_summary(summary, verdict, comparison, text)
    return verdict.exit_code


def add_parsers(commands: Any) -> None:
    """Add the compare, gate and report subcommands."""
    from edge_rnn_harness.analysis.compare_view import FORMATS
    from edge_rnn_harness.cli.main import user_path

    compare = commands.add_parser(
        "compare", help="what changed between two runs, with significance",
        description="Join two runs on the case key and show, per metric, baseline, "
        "candidate, change and whether it is significant (latency: Mann-Whitney U on the "
        "raw values and a process-level bootstrap CI of the ratio).")
    _add_pair_args(compare)
    compare.add_argument("--format", choices=FORMATS, default="table",
                         help="output format (default table)")

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
    _add_pair_args(gate, history=True)
    gate.add_argument("--history", default=None, metavar="DIR_OR_GLOB",
                      help="judge CAND against the last runs of each case (same device, "
                           "runtime version and settings) among these results CSVs instead "
                           "of one baseline: their spread sets what is noise")
    gate.add_argument("--history-runs", type=_whole, default=10, metavar="N",
                      help="with --history: how many of the latest matching runs (default 10)")
    gate.add_argument("--min-history", type=_whole, default=5, metavar="N",
                      help="with --history: refuse (exit 2) with fewer matching runs than "
                           "this (default 5; at least 2)")
    add_gate_args(gate)

    from edge_rnn_harness.cli.ab import add_ab_parser

    add_ab_parser(commands)

    report = commands.add_parser(
        "report", help="Markdown report and PNG plots of a run",
        description="Write report.md and PNG plots: latency per backend and variant with "
        "p90 whiskers, accuracy vs latency (Pareto front), memory and artifact size, and "
        "energy per inference where measured.")
    report.add_argument("results", type=user_path, metavar="RUN.csv")
    report.add_argument("--out", type=user_path, required=True, metavar="DIR",
                        help="folder for report.md and the plots")


def _comparison(args: argparse.Namespace, command: str) -> Any:
    from edge_rnn_harness.analysis.compare import compare_runs

    try:
        comparison = compare_runs(args.base, args.cand, args.min_effect, args.alpha,
                                  _rename(args.rename_model),
                                  _rename(args.rename_variant, "variant"))
    except (ValueError, UsageError) as error:
        raise UsageError(f"harness {command}: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness {command}: needs scipy ({error}); install the [stats] "
                         f"extra") from None
    return comparison


def _history_comparison(args: argparse.Namespace) -> Any:
    from edge_rnn_harness.analysis.compare import resolve_pair
    from edge_rnn_harness.analysis.history import compare_history, history_files

    if len(args.paths) != 1:
        raise UsageError("harness gate: with --history give only the candidate results")
    if args.min_history > args.history_runs:
        raise UsageError("harness gate: --min-history cannot exceed --history-runs")
    try:
        cand_csv, _ = resolve_pair(args.paths[0])
        return compare_history(history_files(args.history, cand_csv), cand_csv,
                               args.history_runs, args.min_history, args.min_effect)
    except ValueError as error:
        raise UsageError(f"harness gate: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness gate: needs scipy ({error}); install the [stats] "
                         f"extra") from None


def cmd_compare(args: argparse.Namespace) -> int:
    """`harness compare BASE CAND`."""
    from edge_rnn_harness.analysis.compare_view import render
    from edge_rnn_harness.core.table import table_console

    comparison = _comparison(args, "compare")
    from edge_rnn_harness.analysis.compare import device_problems, key_text

    for case in comparison.cases:
        for problem in device_problems(case.base_row, case.cand_row):
            raise UsageError(f"harness compare: {key_text(case.key)}: {problem}")
    mismatched = [case for case in comparison.cases if case.mismatches]
    if mismatched and not args.allow_mismatch:
        first = mismatched[0]
        raise UsageError(f"harness compare: {len(mismatched)} case(s) measured under different "
                         f"settings, e.g. {key_text(first.key)}: {'; '.join(first.mismatches)}"
                         f"; use --allow-mismatch to compare them anyway")
    output = render(comparison, args.format)
    if isinstance(output, str):
        print(output)
    else:
        table_console().print(output)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """`harness gate BASE CAND`: print the verdict, return its exit code."""
    from edge_rnn_harness.analysis.gate import judge

    if args.history is not None:
        comparison = _history_comparison(args)
    else:
        if len(args.paths) != 2:
            raise UsageError("harness gate: give BASE and CAND results (or --history "
                             "DIR_OR_GLOB and CAND)")
        args.base, args.cand = args.paths
        comparison = _comparison(args, "gate")
    thresholds = thresholds_of(args)
    return report_verdict(judge(comparison, thresholds, args.allow_mismatch), comparison,
                          args.summary)


def thresholds_of(args: argparse.Namespace) -> Any:
    """The gate's Thresholds from the parsed threshold options."""
    from edge_rnn_harness.analysis.gate import Thresholds

    return Thresholds({metric.column: getattr(args, metric.threshold_dest)
                       for metric in METRICS})


def _verdict_lines(verdict: Any) -> list[str]:
    heading = {0: "PASS", 1: "REGRESSION", 2: "CANNOT JUDGE" if verdict.problems
               else "INCONCLUSIVE"}[verdict.exit_code]
    summary = (f"harness gate: {heading} ({len(verdict.passed)} case(s) pass, "
               f"{len(verdict.regressions)} regression(s), {len(verdict.inconclusive)} "
               f"inconclusive, {len(verdict.problems)} problem(s))")
    lines = [summary]
    lines += [f"  regression: {item}" for item in verdict.regressions]
    lines += [f"  inconclusive: {item}" for item in verdict.inconclusive]
    lines += [f"  cannot judge: {item}" for item in verdict.problems]
    return lines


def verdict_table(verdict: Any, tablefmt: str) -> str:
    """Every gated metric's verdict: case, metric, change, 95% interval, verdict."""
    from tabulate import tabulate

    rows = [[m.case, m.metric.label, f"{(m.ratio - 1) * 100:+.1f}%" if m.ratio == m.ratio
             else "-", f"{m.ci_low:.3f}-{m.ci_high:.3f}" if m.ci_low is not None else "-",
             m.verdict] for m in verdict.metrics]
    return tabulate(rows, headers=["case", "metric", "change", "95% CI of ratio", "verdict"],
                    tablefmt=tablefmt) if rows else ""


def _write_summary(path: Path, verdict: Any, comparison: Any, lines: list[str]) -> None:
    from edge_rnn_harness.analysis.compare_view import render

    body = [f"## {lines[0].removeprefix('harness gate: ')}", ""]
    body += [f"- {line.strip()}" for line in lines[1:]]
    body += ["", verdict_table(verdict, "github"), "", render(comparison, "markdown"), ""]
    try:
        with path.open("a") as handle:
            handle.write("\n".join(body))
    except OSError as error:
        raise UsageError(f"harness gate: cannot write --summary {path} "
                         f"({error.strerror or error})") from None


def cmd_report(args: argparse.Namespace) -> int:
    """`harness report RUN.csv --out DIR`."""
    from edge_rnn_harness.analysis.report import write_report
    from edge_rnn_harness.core.results import read_results

    try:
        frame = read_results(args.results)
    except ValueError as error:
        raise UsageError(f"harness report: {error}") from None
    try:
        written = write_report(frame, args.results, args.out)
    except ImportError as error:
        raise UsageError(f"harness report: needs matplotlib ({error}); install the [plot] "
                         f"extra") from None
    except OSError as error:
        raise UsageError(f"harness report: cannot write to {args.out} "
                         f"({error.strerror or error})") from None
    for path in written:
        print(path)
    return 0
