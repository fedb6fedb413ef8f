"""Render a comparison: rich table, Markdown, CSV or JSON (one row per case and metric)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from rich.table import Table
from tabulate import tabulate

from edge_rnn_harness.analysis.compare import Comparison, key_text

FORMATS = ("table", "markdown", "csv", "json")


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per (case, metric), plus a row per case that cannot be judged (its
    problems) and per case present on one side only."""
    rows = []
    for case in comparison.cases:
        if case.problems:  # said in every format, never dropped
            rows.append({"case": key_text(case.key), "metric": "",
                         "note": "cannot judge: " + "; ".join(case.problems),
                         "base_status": case.base_row["status"],
                         "cand_status": case.cand_row["status"]})
        for change in case.changes:
            rows.append({
                "case": key_text(case.key), "metric": change.metric.column,
                "base": change.base, "cand": change.cand, "ratio": change.ratio,
                "change_pct": (change.ratio - 1) * 100 if np.isfinite(change.ratio) else np.nan,
                "p_value": change.p_value, "ci_low": change.ci_low, "ci_high": change.ci_high,
                "significant": change.significant, "note": change.note,
                "base_status": case.base_row["status"], "cand_status": case.cand_row["status"],
            })
    for side, keys in (("baseline only", comparison.only_base),
                       ("candidate only", comparison.only_cand)):
        rows.extend({"case": key_text(key), "metric": "", "note": side} for key in keys)
    return pd.DataFrame(rows)


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(float(value), spec)


def _display_rows(frame: pd.DataFrame) -> list[list[str]]:
    rows = []
    for r in frame.to_dict("records"):
        if not r["metric"]:
            rows.append([r["case"], "", "", "", "", "", "", r["note"]])
            continue
        ci = "-" if pd.isna(r["ci_low"]) else f"{r['ci_low']:.3f}-{r['ci_high']:.3f}"
        verdict = "yes" if r["significant"] else "no"
        rows.append([r["case"], r["metric"], _fmt(r["base"], ".6g"), _fmt(r["cand"], ".6g"),
                     _fmt(r["change_pct"], "+.1f"), ci, verdict, r["note"] or ""])
    return rows


HEADERS = ["case", "metric", "base", "cand", "change %", "95% CI of ratio", "significant",
           "note"]


def render(comparison: Comparison, fmt: str) -> str | Table:
    """The comparison in `fmt` (a rich Table for "table", else text)."""
    frame = comparison_frame(comparison)
    if fmt == "csv":
        return frame.to_csv(index=False, float_format="%.6g")
    if fmt == "json":
        return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
    if fmt == "markdown":
        return markdown_table(HEADERS, _display_rows(frame))
    table = Table(header_style="bold")
    for header in HEADERS:
        table.add_column(header)
    for row in _display_rows(frame):
        if row[6] == "yes":
            row[4] = f"[bold]{row[4]}[/]"
        table.add_row(*row)
    return table


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""

    return tabulate(rows, headers=headers, tablefmt="github")
