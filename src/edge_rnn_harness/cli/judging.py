"""What `compare`, `gate` and `ab` share: the two-run arguments, the gate's thresholds,
loading a comparison (two runs, or a run against its history) and reporting a verdict."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from tabulate import tabulate

from edge_rnn_harness.analysis.compare import compare_runs, resolve_pair
from edge_rnn_harness.analysis.compare_view import render
from edge_rnn_harness.analysis.gate import Thresholds
from edge_rnn_harness.analysis.history import compare_history, history_frame
from edge_rnn_harness.cli.options import float_arg, positive_int, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.metrics import judged_metrics
from edge_rnn_harness.core.results import read_results


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


def whole_runs(text: str) -> int:
    """A whole number of runs, at least 2 (a spread needs two)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} must be at least 2")
    return value


def _probability(text: str) -> float:
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


def add_pair_args(parser: argparse.ArgumentParser, history: bool = False) -> None:
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
    for metric in judged_metrics():
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
    text = _verdict_lines(verdict) + [f"  note: {note}" for note in
                                      comparison.identity_notes]
    print("\n".join(text))
    if verdict.metrics:
        print("\n" + verdict_table(verdict, "simple"))
    if summary is not None:
        write_summary(summary, verdict, comparison, text)
    return verdict.exit_code


def load_comparison(args: argparse.Namespace, command: str, base: Path | None = None,
                    cand: Path | None = None) -> Any:
    """Two runs compared as the options say (BASE and CAND from the arguments, or given);
    UsageError (one line) for what cannot be compared."""

    try:
        comparison = compare_runs(base or args.base, cand or args.cand, args.min_effect,
                                  args.alpha,
                                  _rename(args.rename_model),
                                  _rename(args.rename_variant, "variant"))
    except (ValueError, UsageError) as error:
        raise UsageError(f"harness {command}: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness {command}: needs scipy ({error}); install the [stats] "
                         f"extra") from None
    return comparison


def load_history_comparison(args: argparse.Namespace) -> Any:
    if len(args.paths) != 1:
        raise UsageError("harness gate: with --history give only the candidate results")
    if args.min_history > args.history_runs:
        raise UsageError("harness gate: --min-history cannot exceed --history-runs")
    try:
        cand_csv, _ = resolve_pair(args.paths[0])
        return compare_history(history_frame(args.history, cand_csv), read_results(cand_csv),
                               args.history_runs, args.min_history, args.min_effect)
    except ValueError as error:
        raise UsageError(f"harness gate: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness gate: needs scipy ({error}); install the [stats] "
                         f"extra") from None


def thresholds_dict(args: argparse.Namespace) -> dict[str, float | None]:
    """Every gated metric's limit by column, from the parsed threshold options."""
    return {metric.column: getattr(args, metric.threshold_dest)
            for metric in judged_metrics()}


def thresholds_of(request: Any) -> Any:
    """The gate's Thresholds of a request's `thresholds`."""
    return Thresholds(request.thresholds)


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
    rows = [[m.case, m.metric.label, f"{(m.ratio - 1) * 100:+.1f}%" if m.ratio == m.ratio
             else "-", f"{m.ci_low:.3f}-{m.ci_high:.3f}" if m.ci_low is not None else "-",
             m.verdict] for m in verdict.metrics]
    return tabulate(rows, headers=["case", "metric", "change", "95% CI of ratio", "verdict"],
                    tablefmt=tablefmt) if rows else ""


def write_summary(path: Path, verdict: Any, comparison: Any, lines: list[str]) -> None:
    body = [f"## {lines[0].removeprefix('harness gate: ')}", ""]
    body += [f"- {line.strip()}" for line in lines[1:]]
    body += ["", verdict_table(verdict, "github"), "", render(comparison, "markdown"), ""]
    try:
        with path.open("a") as handle:
            handle.write("\n".join(body))
    except OSError as error:
        raise UsageError(f"harness gate: cannot write --summary {path} "
                         f"({error.strerror or error})") from None
