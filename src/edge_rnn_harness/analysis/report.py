"""`harness report`: the Markdown report of one run (PNG plots beside it), and the parts the
HTML report shares with it: the summary table's columns, the sections of text, and which
figures apply."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare_view import markdown_table
from edge_rnn_harness.analysis.figures import (
    energy_figure,
    frequency_figure,
    latency_figure,
    memory_size_figure,
    pareto_figure,
    save_png,
)
from edge_rnn_harness.analysis.report_devices import (
    device_label,
    device_lines,
    devices_figure,
    is_fleet,
)
from edge_rnn_harness.analysis.report_scaling import has_scaling, scaling_figure, scaling_lines
from edge_rnn_harness.core.metrics import COLD_START_METRICS
from edge_rnn_harness.core.plan import case_label
from edge_rnn_harness.core.table import P99_MIN_VALUES, swept, too_few_for_p99


def variant_lines(frame: pd.DataFrame) -> list[str]:
    """Per model, a table of variant x backend: status, median latency, peak RSS, artifact
    bytes, RMSE and its change against the same backend's fp32 (the trade-off at a
    glance); [] when the run has only fp32."""
    if set(frame["variant"].dropna()) <= {"fp32"}:
        return []
    lines = ["## Precision variants", "",
             ("RMSE change is against the same backend's fp32 artifact on the same test "
              "windows; `invalid` rows (degenerate forecasts or beyond the variant's accuracy "
              "policy) are shown but never ranked or gated."), ""]
    for model, rows in frame.groupby("model", sort=False):
        table = [[r["variant"], r["backend"], r["status"], _fmt(r["latency_median_ms"], ".4f"),
                  _fmt(r["peak_rss_mb"], ".1f"), _fmt(r["artifact_bytes"], ",.0f"),
                  _fmt(r["rmse"], ".4f"), _change(r["rmse"], r["fp32_rmse"]),
                  quantized_text(r["settings"])]
                 for _, r in rows.sort_values(["backend", "variant"]).iterrows()
                 if r["status"] != "unsupported"]
        lines += [f"### {model}", "", markdown_table(
            ["variant", "backend", "status", "median ms", "peak RSS MiB", "bytes", "RMSE",
             "RMSE vs fp32", "quantized / left float"], table), ""]
    return lines


def cold_start_lines(frame: pd.DataFrame) -> list[str]:
    """The cold_start rows' phase breakdown (median over each case's processes) and which
    runtime a cron-style forecast favours, by how much; [] without cold_start rows."""
    cold = frame[(frame["scenario"] == "cold_start") & (frame["status"] == "ok")]
    if not len(cold):
        return []
    cold = cold.sort_values("latency_median_ms")
    phases = [metric.column for metric in COLD_START_METRICS]
    table = [[case_label(r), _fmt(r["latency_median_ms"], ".1f"),
              *(_fmt(r[column], ".1f") for column in phases), _fmt(r["peak_rss_mb"], ".1f"),
              str(r["page_cache"] or "-")] for r in cold.to_dict("records")]
    headers = ["case", "exec to forecast ms", "interpreter", "numpy + harness", "runtime import",
               "model load", "input", "first inference", "output", "peak RSS MiB (process)",
               "page cache"]
    fastest, slowest = cold.iloc[0], cold.iloc[-1]
    verdict = (f"A cron-style forecast here is fastest with {fastest['backend']} "
               f"({float(fastest['latency_median_ms']):.0f} ms exec to forecast written), "
               f"{float(slowest['latency_median_ms']) / float(fastest['latency_median_ms']):.1f}x "
               f"faster than {slowest['backend']} "
               f"({float(slowest['latency_median_ms']):.0f} ms).") if len(cold) > 1 else ""
    return ["## Cold start", "",
            ("Each value is one forecast from a fresh process, as a cron job pays it: exec to "
             "the forecast written, in phases (median over the case's processes, ms). The "
             "peak resident set is the whole process's. A warm page cache means the "
             "runtime's and the model's files were read from memory after the first "
             "process."), "", markdown_table(headers, table), "",
            *([verdict, ""] if verdict else [])]


def paced_lines(frame: pd.DataFrame) -> list[str]:
    """The paced rows: per case and interval, the median call after idling, the same
    worker's back-to-back median and the penalty; [] without paced rows."""
    paced = frame[frame["scenario"].astype(str).str.startswith("paced-")
                  & (frame["status"] == "ok")]
    if not len(paced):
        return []
    table = [[case_label(r), _fmt(r["latency_median_ms"], ".4f"),
              _fmt(r["back_to_back_median_ms"], ".4f"), _fmt(r["paced_penalty"], ".2f"),
              _fmt(r["energy_per_inf_mj"], ".3g")] for r in paced.to_dict("records")]
    return ["## Paced calls", "",
            ("A long-lived process that sleeps between forecasts (paced-<interval>): each "
             "value is one call after the idle interval; back-to-back is the median of the "
             "same worker's calls without the idle, and the penalty their ratio. Energy per "
             "forecast, where a meter exists, includes the idle between calls."), "",
            markdown_table(["case", "median after idle ms", "back-to-back ms", "penalty x",
                            "energy per forecast mJ"], table), ""]


def quantized_text(settings: object) -> str:
    """What a variant's quantizer did, from its row's settings: the ops (or weights) it
    made low-precision and those it left float ("Gemm / LSTM"), so an int8 row whose
    recurrent part stayed float says so; "-" where the row records neither."""
    try:
        recorded = json.loads(str(settings)) if not pd.isna(settings) else {}
    except ValueError:
        return "-"
    if not isinstance(recorded, dict):
        return "-"
    low = recorded.get("int8_ops") or recorded.get("quantized_ops") or \
        recorded.get("int8_weights")
    left = recorded.get("float_ops") or recorded.get("float_weights")
    return f"{low or '-'} / {left or '-'}" if low or left else "-"


def _change(value: object, base: object) -> str:
    if pd.isna(value) or pd.isna(base) or not float(base):
        return "-"
    return f"{float(value) / float(base) - 1:+.2%}"


def power_lines(frame: pd.DataFrame) -> list[str]:
    """What the run's power figures are and what they leave out, one line per meter."""
    meters = frame.dropna(subset=["power_meter"]).drop_duplicates("power_meter")
    if not len(meters) or set(meters["power_meter"]) == {"none"}:
        return ["Energy per inference: not measured (no power meter on this device).", ""]
    lines = [f"- `{r['power_meter']}`: {r['power_covers'] or 'coverage not recorded'}"
             for _, r in meters.iterrows() if r["power_meter"] != "none"]
    method = ("Energy per inference comes from a separate step after the timing: idle power "
              "first, then the model run back to back under the meter. Gross = mean power x "
              "loop time / inferences; net subtracts idle power.")
    return ["## Power meters", "", method, "", *lines, ""]


def _fmt(value: object, spec: str) -> str:
    return "-" if pd.isna(value) else format(float(value), spec)


#: columns the plots scale their axes on: an ok row must have them finite and >= 0
PLOTTED_COLUMNS = ("latency_median_ms", "latency_p90_ms", "peak_rss_mb")


def unplottable(ok: pd.DataFrame) -> dict[int, str]:
    """Ok rows whose plotted figures are missing, infinite or negative (a hand-edited or
    damaged CSV): {row index: why}. They stay in the table and are left out of the plots."""
    problems = {}
    for index, row in ok.iterrows():
        for column in PLOTTED_COLUMNS:
            value = row[column]
            if pd.isna(value) or not np.isfinite(float(value)) or float(value) < 0:
                problems[int(index)] = f"{column} is {value!s}"  # type: ignore[arg-type]
                break
    return problems


@dataclass(frozen=True)
class SummaryColumn:
    """A column of the report's summary table: its header (with the unit), the results
    column it shows and how the number is printed."""
    header: str
    column: str
    spec: str = ""
    scale: float = 1.0
    #: rows whose figure is shown in parentheses (too few values to trust it)
    doubt: Callable[[Mapping[str, Any]], bool] | None = None

    def text(self, row: Mapping[str, Any]) -> str:
        """The cell as printed."""
        value = row[self.column]
        if not self.spec:
            return "" if pd.isna(value) else str(value)
        text = _fmt(value if pd.isna(value) else float(value) * self.scale, self.spec)
        return f"({text})" if self.doubt and text != "-" and self.doubt(row) else text


def summary_columns(frame: pd.DataFrame) -> list[SummaryColumn]:
    """The summary table's columns for `frame`: the device for a fleet, the shape for a
    sweep, then the figures every run has."""
    fleet = [SummaryColumn("device", "device_label")] if is_fleet(frame) else []
    shaped = [SummaryColumn("scenario", "scenario"), SummaryColumn("seq_len", "seq_len"),
              SummaryColumn("batch", "batch")] if swept(frame) else []
    return [*fleet, SummaryColumn("model", "model"), SummaryColumn("variant", "variant"),
            SummaryColumn("backend", "backend"), *shaped, SummaryColumn("threads", "threads"),
            SummaryColumn("status", "status"),
            SummaryColumn("median ms", "latency_median_ms", ".4f"),
            SummaryColumn("p90 ms", "latency_p90_ms", ".4f"),
            SummaryColumn("p99 ms", "latency_p99_ms", ".4f", doubt=too_few_for_p99),
            SummaryColumn("peak RSS MiB", "peak_rss_mb", ".1f"),
            SummaryColumn("bytes", "artifact_bytes", ",.0f"),
            SummaryColumn("max abs err", "max_abs_err", ".1e"),
            SummaryColumn("RMSE", "rmse", ".4f"),
            SummaryColumn("pinned MHz", "cpu_freq_khz", ".0f", 1e-3),
            SummaryColumn("mJ/inf gross", "energy_per_inf_mj", ".3f"),
            SummaryColumn("mJ/inf net", "energy_net_per_inf_mj", ".3f"),
            *([SummaryColumn("instr/inf", "instructions_per_inf", ",.0f")]
              if frame["instructions_per_inf"].notna().any() else []),
            SummaryColumn("median +-% (95%)", "median_precision_pct", ".1f"),
            SummaryColumn("stability", "stability")]


def summary_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of `frame` as dicts with a `device_label` for the summary table."""
    return [{**row, "device_label": device_label(row)} for row in frame.to_dict("records")]


def run_line(frame: pd.DataFrame) -> str:
    """One sentence: which run, when, on which machine (or which fleet)."""
    first = frame.iloc[0]
    if is_fleet(frame):
        return (f"Fleet run at {first['timestamp']}: rows from "
                f"{frame['device_name'].nunique(dropna=False)} device(s), each measured on "
                f"its device (see Devices x backends).")
    return (f"Run `{first['run_id']}` at {first['timestamp']} on {first['device']} "
            f"({first['cpu']}, {first['cores']} cores, {first['os']}, Python "
            f"{first['python']}).")


def units_of(frame: pd.DataFrame) -> str:
    """The unit of the run's RMSE: GW for the electricity dataset, else data units."""
    datasets = frame["dataset"].dropna()
    return "GW" if len(datasets) and str(datasets.iloc[0]) == "elecdemand" else "data units"


#: the figures a report draws: file stem, title, and whether it applies to the ok rows
FIGURES: list[tuple[str, str, Callable[[pd.DataFrame], bool]]] = [
    ("latency", "Latency", lambda ok: True),
    ("memory_size", "Memory and size", lambda ok: True),
    ("pareto", "Accuracy vs latency", lambda ok: bool(ok["rmse"].notna().any())),
    ("energy", "Energy", lambda ok: bool(ok["energy_per_inf_mj"].notna().any())),
    ("scaling", "Scaling", has_scaling),
    ("devices", "Devices x backends", is_fleet),
    ("frequency", "CPU frequency sweep", lambda ok: ok["cpu_freq_khz"].nunique() >= 2),
]


def build_figure(stem: str, ok: pd.DataFrame, units: str) -> Any:
    """The figure named `stem` in FIGURES, drawn from the plottable ok rows."""
    builders: dict[str, Callable[[], Any]] = {
        "latency": lambda: latency_figure(ok),
        "memory_size": lambda: memory_size_figure(ok),
        "pareto": lambda: pareto_figure(ok, units),
        "energy": lambda: energy_figure(ok),
        "scaling": lambda: scaling_figure(ok),
        "devices": lambda: devices_figure(ok),
        "frequency": lambda: frequency_figure(ok),
    }
    return builders[stem]()


def figures_for(ok: pd.DataFrame) -> list[tuple[str, str]]:
    """(stem, title) of every figure that applies to the plottable ok rows."""
    return [(stem, title) for stem, title, applies in FIGURES if len(ok) and applies(ok)]


def plottable(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The ok rows the plots can draw, and {case label: why} for ok rows left out."""
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    left_out = unplottable(ok)
    why = {case_label(ok.loc[i].to_dict()): reason for i, reason in left_out.items()}
    return ok.drop(index=list(left_out)).reset_index(drop=True), why


def reading_lines(frame: pd.DataFrame) -> list[str]:
    """How to read the summary's doubts: p99 in parentheses, unstable cases and why."""
    lines = []
    if any(too_few_for_p99(row) for row in frame.to_dict("records")):
        lines.append(f"A p99 in parentheses comes from fewer than {P99_MIN_VALUES} values: too "
                     f"few for its 95% interval (a longer --profile gives one).")
    unstable = frame[frame["stability"].notna() & (frame["stability"] != "stable")]
    if len(unstable):
        lines += ["", ("Cases whose values are not stable (the numbers are partly the "
                  "machine's):"), ""]
        lines += [f"- {case_label(r)}: {r['stability']}: {r['stability_reason']}"
                  for r in unstable.to_dict("records")]
    return [*lines, ""] if lines else []


def text_sections(frame: pd.DataFrame, left_out: Mapping[str, str]) -> list[str]:
    """The report's Markdown sections after the summary table: how to read it, variants,
    devices, scaling, power, the cases that did not measure and the rows left out of the
    plots."""
    sections = [*reading_lines(frame), *variant_lines(frame), *cold_start_lines(frame),
                *paced_lines(frame), *device_lines(frame), *scaling_lines(frame),
                *power_lines(frame)]
    bad = frame[frame["status"] != "ok"]
    if len(bad):
        sections += ["## Cases that did not measure", ""]
        sections += [f"- {case_label(r)}: "
                     f"{r['status']}: {'' if pd.isna(r['reason']) else r['reason']}"
                     for r in bad.to_dict("records")] + [""]
    if left_out:
        sections += ["## Rows left out of the plots", ""]
        sections += [f"- {label}: {why}" for label, why in left_out.items()] + [""]
    return sections


def write_report(frame: pd.DataFrame, source: Path, out_dir: Path) -> list[Path]:
    """Write report.md and the PNG plots for `frame` into `out_dir`; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [f"# Benchmark report: {source.name}", ""]
    if len(frame):
        sections += [run_line(frame), ""]
    columns, rows = summary_columns(frame), summary_rows(frame)
    sections += [markdown_table([c.header for c in columns],
                                [[c.text(r) for c in columns] for r in rows]), ""]
    ok, left_out = plottable(frame)
    sections += text_sections(frame, left_out)
    written: list[Path] = []
    for stem, title in figures_for(ok):
        path = save_png(build_figure(stem, ok, units_of(frame)), out_dir / f"{stem}.png")
        sections += [f"## {title}", "", f"![{title}]({path.name})", ""]
        written.append(path)
    report = out_dir / "report.md"
    report.write_text("\n".join(sections))
    return [report, *written]
