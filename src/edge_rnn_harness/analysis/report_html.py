"""`harness report --html`: the run as one self-contained HTML page: styles, the sorting
script and every figure (inline SVG) are in the file, so it opens with no network, prints,
and reads in light and dark. It holds the sortable summary table, the latency
distribution of every case (from the pyperf values), the report's figures and text
sections (the same ones the Markdown report has), the comparison with a baseline (each
gated metric's verdict and interval), and trends from a run store."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edge_rnn_harness import __version__
from edge_rnn_harness.analysis.compare import bench_name_in
from edge_rnn_harness.analysis.figures import (
    MAX_PLOTTED_VALUES,
    distribution_figure,
    svg_markup,
    trend_figure,
)
from edge_rnn_harness.analysis.gate import Verdict
from edge_rnn_harness.analysis.report import (
    build_figure,
    figures_for,
    plottable,
    run_line,
    summary_columns,
    summary_rows,
    text_sections,
    units_of,
)
from edge_rnn_harness.analysis.trend import figure_series
from edge_rnn_harness.core.plan import case_label

#: the page's stated bound for a run of 100 cases
MAX_REPORT_BYTES = 5 << 20

_STYLE = """
:root { --fg: #1b1b1b; --bg: #ffffff; --muted: #5c5c5c; --line: #d0d0d0; --head: #f1f3f5;
  --bad: #b00020; --good: #1b7f3b; --warn: #8a5a00; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e4e4; --bg: #15171a; --muted: #a0a0a0; --line: #3a3d42;
    --head: #23262b; --bad: #ff6b81; --good: #5fd38d; --warn: #e0b050; }
  figure svg { filter: invert(0.92) hue-rotate(180deg); }
}
body { font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg);
  max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5rem 0; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; }
th { background: var(--head); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th[aria-sort=ascending] button::after { content: " \\2191"; }
th[aria-sort=descending] button::after { content: " \\2193"; }
figure { margin: 1rem 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
figcaption, .muted { color: var(--muted); font-size: 13px; }
.regression { color: var(--bad); font-weight: 600; } .pass { color: var(--good); }
.inconclusive { color: var(--warn); font-weight: 600; }
code { font-size: 90%; }
@media print {
  body { max-width: none; font-size: 11px; } th button::after { content: none !important; }
  figure, table { break-inside: avoid; } figure svg { filter: none; }
}
"""

#: sorts a table by a column: numbers by value (data-sort), text alphabetically; empty last
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th button").forEach(function (button, column) {
    button.addEventListener("click", function () {
      var th = button.parentElement;
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var value = cell.getAttribute("data-sort");
        return value === null ? cell.textContent : value;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
        var nx = Number(x), ny = Number(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


@dataclass(frozen=True)
class Baseline:
    """A comparison with a baseline run for the page: its file and the gate's verdict."""
    path: Path
    verdict: Verdict


def _esc(value: object) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and np.isnan(value))
                       else str(value))


def _sort_key(value: object) -> str:
    """The data-sort attribute of a cell: the number, or empty for a missing one."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    return repr(number) if np.isfinite(number) else ""


def summary_table(frame: pd.DataFrame) -> str:
    """The sortable summary table: the Markdown report's columns, units in the headers."""
    columns = summary_columns(frame)
    head = "".join(f'<th scope="col"><button type="button">{_esc(c.header)}</button></th>'
                   for c in columns)
    body = []
    for row in summary_rows(frame):
        cells = []
        for column in columns:
            if column.spec:
                cells.append(f'<td class="num" data-sort="{_sort_key(row[column.column])}">'
                             f"{_esc(column.text(row))}</td>")
            else:
                cells.append(f"<td>{_esc(column.text(row))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="sortable" id="summary"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


_CODE = re.compile(r"`([^`]*)`")


def _inline(text: str) -> str:
    """A line of our Markdown as HTML: escaped first, then `code` spans."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text))


def markdown_html(lines: Sequence[str]) -> str:
    """The subset of Markdown the report's text sections use (## and ### headings, pipe
    tables, "- " lists, paragraphs) as HTML; every text escaped, nothing else
    interpreted, so no row's text can become markup, a link or a script."""
    lines = [part for line in lines for part in line.split("\n")]
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            block = []
            while index < len(lines) and lines[index].startswith("|"):
                block.append(lines[index])
                index += 1
            out.append(_pipe_table(block))
            continue
        if line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith("- "):
                items.append(f"<li>{_inline(lines[index][2:])}</li>")
                index += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        heading = re.match(r"^(#{2,3}) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        index += 1
    return "\n".join(out)


def _pipe_table(block: Sequence[str]) -> str:
    """A Markdown pipe table (header, separator, rows) as a sortable HTML table."""
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    rows = [cells(line) for line in block if not re.match(r"^\|[\s:|-]+\|$", line.strip())]
    if not rows:
        return ""
    head = "".join(f'<th scope="col"><button type="button">{_inline(c)}</button></th>'
                   for c in rows[0])
    body = "".join("<tr>" + "".join(
        f'<td data-sort="{_sort_key(c.replace(",", "").rstrip("%"))}">{_inline(c)}</td>'
        for c in row) + "</tr>" for row in rows[1:])
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _figure(stem: str, title: str, fig: Any, caption: str = "") -> str:
    """A figure element with the SVG inline; the accuracy plot also carries its RMSE
    axis range (data-y-min, data-y-max) for readers and tests."""
    attributes = f'data-plot="{stem}"'
    if stem == "pareto" and fig.axes:
        low, high = fig.axes[0].get_ylim()
        attributes += f' data-y-min="{float(low)!r}" data-y-max="{float(high)!r}"'
    return (f'<figure {attributes} aria-label="{_esc(title)}">{svg_markup(fig)}'
            + (f"<figcaption>{_esc(caption)}</figcaption>" if caption else "") + "</figure>")


def distribution_cases(ok: pd.DataFrame, values: Mapping[str, list[np.ndarray]]
                       ) -> list[tuple[str, list[np.ndarray]]]:
    """(label, values per process in ms) of each ok case with timed values."""
    cases = []
    for row in ok.to_dict("records"):
        runs = values.get(bench_name_in(values, row), [])
        if runs:
            cases.append((case_label(row), [np.asarray(r, float) * 1e3 for r in runs]))
    return cases


def _baseline_section(baseline: Baseline) -> list[str]:
    verdict = baseline.verdict
    heading = {0: "pass", 1: "regression", 2: "inconclusive"}[verdict.exit_code]
    rows = "".join(
        f"<tr><td>{_esc(m.case)}</td><td>{_esc(m.metric.label)}</td>"
        f'<td class="num" data-sort="{_sort_key(m.ratio)}">'
        f"{(m.ratio - 1) * 100:+.1f}%</td>"
        f"<td>{'-' if m.ci_low is None else f'{m.ci_low:.3f}-{m.ci_high:.3f}'}</td>"
        f'<td class="{m.verdict}">{m.verdict}</td></tr>' for m in verdict.metrics)
    parts = [f"<h2>Against the baseline {_esc(baseline.path.name)}</h2>",
             (f'<p>Gate verdict with the default thresholds: <span class="{heading}">'
             f"{heading}</span> (exit {verdict.exit_code}).</p>"),
             '<table class="sortable" id="baseline"><thead><tr>'
             + "".join(f'<th scope="col"><button type="button">{h}</button></th>'
                       for h in ("case", "metric", "change", "95% CI of ratio", "verdict"))
             + f"</tr></thead><tbody>{rows}</tbody></table>"]
    notes = [*verdict.problems, *verdict.regressions, *verdict.inconclusive]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    return parts


def _history_section(trend: pd.DataFrame) -> list[str]:
    parts = ["<h2>History</h2>",
             ('<p class="muted">Median latency of this run\'s cases over the stored runs; '
             "a ringed point is a change point: outside the 95% prediction interval of the "
             "runs before it (at most 10 since the last change) by 5% or more.</p>")]
    for backend, group in trend.groupby(trend["case"].str.split("/").str[2], sort=True):
        fig = trend_figure(figure_series(group), "median latency (ms)")
        parts.append(_figure(f"trend-{backend}", f"History: {backend}", fig))
    changes = trend[trend["mark"] == "change"]
    if len(changes):
        parts.append("<ul>" + "".join(
            f"<li>{_esc(r['case'])}: change of {r['change_pct']:+.1f}% at run "
            f"<code>{_esc(r['run_id'])}</code> ({_esc(r['timestamp'])})</li>"
            for r in changes.to_dict("records")) + "</ul>")
    return parts


def render_html(frame: pd.DataFrame, source: Path,
                values: Mapping[str, list[np.ndarray]] | None = None,
                baseline: Baseline | None = None, trend: pd.DataFrame | None = None) -> str:
    """The page's text."""
    ok, left_out = plottable(frame)
    body = [f"<h1>Benchmark report: {_esc(source.name)}</h1>"]
    if len(frame):
        body.append(f"<p>{_inline(run_line(frame))}</p>")
    body += ["<h2>Summary</h2>",
             ('<p class="muted">Click a column heading to sort. Latencies are per inference '
             "(ms), memory is the worker's peak resident set (MiB), energy per inference is "
             "in mJ; empty cells were not measured.</p>"), summary_table(frame)]
    if baseline is not None:
        body += _baseline_section(baseline)
    cases = distribution_cases(ok, values or {})
    if cases:
        body += ["<h2>Latency distribution</h2>",
                 _figure("distribution", "Latency distribution", distribution_figure(cases),
                         "Each violin is every timed value of the case (every worker "
                         f"process; at most {MAX_PLOTTED_VALUES:,} drawn per case, as evenly "
                         "spaced order statistics: the sample's own quantiles); dots are "
                         "each process's median. A wide or two-humped violin, or dots far "
                         "apart, says the machine or the runtime was not steady.")]
    for stem, title in figures_for(ok):
        body += [f"<h2>{_esc(title)}</h2>",
                 _figure(stem, title, build_figure(stem, ok, units_of(frame)))]
    body.append(markdown_html(text_sections(frame, left_out)))
    if trend is not None and len(trend):
        body += _history_section(trend)
    body.append(f'<p class="muted">Written by edge-rnn-harness {_esc(__version__)} from '
                f"{_esc(source.name)}. Self-contained: no network is used to show it.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"color-scheme\" content=\"light dark\">"
            f"<title>Benchmark report: {_esc(source.name)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{_SCRIPT}</script></body></html>\n")


def write_html(path: Path, page: str) -> int:
    """Write the page to `path` atomically; return its size in bytes."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size
