"""`harness recommend RESULTS.csv`: the configuration to ship under budgets, with the
evidence (analysis.recommend); text, Markdown or JSON for a CI summary."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from edge_rnn_harness.analysis.recommend import (
    BUDGETS,
    Recommendation,
    recommend,
    reproduce_command,
)
from edge_rnn_harness.cli.options import (
    EXIT_FAILED_CASES,
    EXIT_OK,
    float_arg,
    request_from,
    user_path,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import case_label
from edge_rnn_harness.core.results import read_results

FORMATS = ("text", "markdown", "json")


def _limit(text: str) -> float:
    return float_arg(text, "a number", lambda v: v >= 0, "must be a finite number >= 0")


@dataclass(frozen=True)
class RecommendRequest:
    """`harness recommend`'s options, typed."""
    results: Path = Path()
    scenario: str | None = None
    device: str | None = None
    format: str = "text"
    limits: dict[str, float] = field(default_factory=dict)


def cmd_recommend(args: argparse.Namespace) -> int:
    """`harness recommend`: its typed request, run."""
    limits = {dest: getattr(args, dest) for dest in BUDGETS if getattr(args, dest) is not None}
    return recommend_command(request_from(RecommendRequest, args, limits=limits))


def recommend_command(request: RecommendRequest) -> int:
    """Print the recommendation; exit 0 with one, 1 when nothing fits, 2 for bad input."""
    try:
        frame = read_results(request.results)
    except ValueError as error:
        raise UsageError(f"harness recommend: {error}") from None
    frame = _one_device(_one_scenario(frame, request.scenario), request.device)
    found = recommend(frame, request.limits)
    command = reproduce_command(found.winner, str(request.results)) if found.winner else None
    if request.format == "json":
        print(json.dumps(_as_json(found, command), indent=1, default=str))
    elif request.format == "markdown":  # paragraphs apart; list items kept together
        lines = _lines(found, command, markdown=True)
        print("\n".join(f"{line}\n" if not line.startswith("- ") and not
                        (index + 1 < len(lines) and lines[index + 1].startswith("- "))
                        else line for index, line in enumerate(lines)))
    else:
        print("\n".join(_lines(found, command, markdown=False)))
    return EXIT_OK if found.winner else EXIT_FAILED_CASES


def _one_scenario(frame: pd.DataFrame, scenario: str | None) -> pd.DataFrame:
    """The rows of one scenario: the one asked for, or the file's only one."""
    present = sorted(set(frame["scenario"].dropna()))
    if scenario is None and len(present) > 1:
        raise UsageError(f"harness recommend: the file holds the scenarios "
                         f"{', '.join(present)}; choose one with --scenario (a deployment "
                         f"runs one)")
    chosen = scenario or (present[0] if present else None)
    if chosen not in present:
        raise UsageError(f"harness recommend: no rows of scenario {chosen!r} (the file "
                         f"holds {', '.join(present) or 'none'})")
    return frame[frame["scenario"] == chosen]


def _one_device(frame: pd.DataFrame, device: str | None) -> pd.DataFrame:
    """The rows of one device (a fleet run's device_name, else the machine's `device`):
    configurations measured on two devices are never ranked against each other."""
    names = frame["device_name"].fillna(frame["device"]).fillna("this machine")
    present = sorted(set(names))
    if device is None and len(present) > 1:
        raise UsageError(f"harness recommend: the rows come from {len(present)} devices "
                         f"({', '.join(present)}); a recommendation is per device: choose "
                         f"one with --device")
    if device is not None and device not in present:
        raise UsageError(f"harness recommend: --device {device} has no rows (the file holds "
                         f"{', '.join(present)})")
    return frame[names == (device or present[0])] if present else frame


def _figures(row: dict[str, Any]) -> str:
    """A row's figures in one line."""
    def number(column: str, spec: str, unit: str, scale: float = 1.0) -> str | None:
        value = row.get(column)
        return None if value is None or pd.isna(value) else \
            f"{format(float(value) * scale, spec)} {unit}"
    parts = [("median", number("latency_median_ms", ".4g", "ms")),
             ("95% CI", None if row.get("latency_median_ci_low_ms") is None else
              f"{float(row['latency_median_ci_low_ms']):.4g}-"
              f"{float(row['latency_median_ci_high_ms']):.4g} ms"),
             ("peak", number("peak_rss_mb", ".1f", "MiB")),
             ("size", number("artifact_bytes", ".1f", "KiB", 1 / 1024)),
             ("RMSE", number("rmse", ".4f", "")),
             ("energy", number("energy_per_inf_mj", ".3g", "mJ"))]
    return ", ".join(f"{name} {text.strip()}" for name, text in parts if text)


def _lines(found: Recommendation, command: str | None, markdown: bool) -> list[str]:
    """The recommendation for people (plain text, or Markdown for a CI summary)."""
    bullet, code = ("- ", "`") if markdown else ("  ", "")
    budgets = ", ".join(f"{BUDGETS[d].what} <= {v:g} {BUDGETS[d].unit}"
                        for d, v in found.limits.items()) or "none (the fastest ok row)"
    lines = [("## " if markdown else "") + "harness recommend", f"budgets: {budgets}",
             "ranked by median latency; only ok rows are candidates"]
    if found.winner is None:
        lines.append("nothing fits the budgets")
        if found.nearest is not None:
            lines.append(f"nearest: {case_label(found.nearest)} ({_figures(found.nearest)}) "
                         f"misses: {'; '.join(found.nearest_misses)}")
    else:
        lines.append(f"recommended: {case_label(found.winner)} ({_figures(found.winner)})")
        second, apart = found.runner_up, found.distinguishable
        if second is None:
            lines.append("runner-up: none (the only configuration that fits)")
        else:
            verdict = {True: "faster beyond both 95% intervals",
                       False: "tie: the medians' 95% intervals overlap",
                       None: "not shown apart: the rows lack the median's 95% interval "
                             "(it needs 6 worker processes: --profile default)"}[apart]
            lines.append(f"runner-up: {case_label(second)} ({_figures(second)}): {verdict}")
        lines.append(f"reproduce: {code}{command}{code}")
        lines.append(f"Pareto set ({len(found.pareto)}; latency, memory, size, RMSE):")
        lines += [f"{bullet}{case_label(row)} ({_figures(row)})" for row in found.pareto]
    if found.left_out:
        lines.append(f"left out ({len(found.left_out)}):")
        lines += [f"{bullet}{label}: {why}" for label, why in found.left_out]
    return lines


def _as_json(found: Recommendation, command: str | None) -> dict[str, Any]:
    """The recommendation as data."""
    def brief(row: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if row is None else {"case": case_label(row), **{
            key: row.get(key) for key in ("model", "variant", "backend", "threads",
                                          "scenario", "seq_len", "batch",
                                          "latency_median_ms", "latency_median_ci_low_ms",
                                          "latency_median_ci_high_ms", "peak_rss_mb",
                                          "artifact_bytes", "rmse", "energy_per_inf_mj")}}
    return {"budgets": found.limits, "winner": brief(found.winner),
            "runner_up": brief(found.runner_up),
            "distinguishable": found.distinguishable, "reproduce": command,
            "pareto": [brief(row) for row in found.pareto],
            "nearest": brief(found.nearest), "nearest_misses": found.nearest_misses,
            "left_out": [{"case": label, "why": why} for label, why in found.left_out]}


def add_parser(commands: Any) -> None:
    """The `harness recommend` subcommand."""
    parser = commands.add_parser(
        "recommend", help="the configuration to ship under budgets, with the evidence",
        description="From a run's ok rows (one device, one scenario), the fastest "
        "configuration that fits every budget given (a value exactly at a limit fits), "
        "whether it is faster than the runner-up beyond both rows' 95%% intervals (else a "
        "tie), the Pareto set (median latency, peak memory, size, RMSE) and the command "
        "that measures it again. Invalid, failed and skipped rows never rank. Nothing "
        "fits: exit 1, naming the nearest row and what it misses.")
    parser.add_argument("results", type=user_path, metavar="RESULTS.csv")
    for dest, budget in BUDGETS.items():
        parser.add_argument(budget.option, dest=dest, type=_limit, default=None,
                            metavar=budget.unit.upper().replace("%", "PCT"),
                            help=f"budget: {budget.what} at most this many {budget.unit}"
                                 .replace("%", "%%"))
    parser.add_argument("--scenario", default=None, metavar="NAME",
                        help="the scenario to recommend for (needed when the file holds "
                             "several)")
    parser.add_argument("--device", default=None, metavar="NAME",
                        help="the device to recommend for (needed when the rows come from "
                             "several: its device_name, else its device)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default), markdown (a CI job summary) or json")
    parser.set_defaults(handler=cmd_recommend)
