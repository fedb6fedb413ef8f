"""`harness report`: a Markdown report and PNG plots of one run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare_view import markdown_table
from edge_rnn_harness.analysis.report_devices import (
    device_label,
    device_lines,
    is_fleet,
    plot_devices,
)
from edge_rnn_harness.analysis.report_scaling import has_scaling, plot_scaling, scaling_lines
from edge_rnn_harness.core.plan import case_label
from edge_rnn_harness.core.table import swept


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _labels(rows: pd.DataFrame) -> list[str]:
    """One line per case: the case's label."""
    return [case_label(row) for row in rows.to_dict("records")]


def _case_axes(plt: object, count: int, columns: int = 1, width: float = 9.0) -> tuple:
    """A figure sized for `count` horizontal bars per panel."""
    height = 1.2 + 0.32 * count
    fig, axes = plt.subplots(1, columns, figsize=(width, height), squeeze=False)  # type: ignore
    for ax in axes[0]:
        ax.invert_yaxis()  # first case at the top, as in the table
        ax.grid(axis="x", alpha=0.3)
    return fig, axes[0]


def plot_latency(ok: pd.DataFrame, path: Path) -> Path:
    """Median latency per case (bars) with a whisker up to p90."""
    plt = _pyplot()
    fig, (ax,) = _case_axes(plt, len(ok))
    median = ok["latency_median_ms"].to_numpy(float)
    p90 = ok["latency_p90_ms"].to_numpy(float)
    labels = _labels(ok)
    ax.barh(labels, median, color="tab:blue", label="median")
    ax.errorbar(median, labels, xerr=[np.zeros_like(median), p90 - median], fmt="none",
                ecolor="black", capsize=3, label="whisker to p90")
    ax.set_xlim(0, float(np.nanmax(p90)) * 1.35)  # room for the legend
    ax.set_xlabel("latency per inference, batch 1 (ms)")
    ax.set_title("Latency per backend and variant")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


#: RMSEs closer than this fraction count as the same accuracy: fp32 runtimes differ by
#: about 1e-8 of it (floating-point order), far below what 1,311 test windows can tell apart
RMSE_TIE = 1e-3


def pareto_front(latency: np.ndarray, error: np.ndarray, tie: float = RMSE_TIE) -> np.ndarray:
    """Indices of the points no faster point beats on error by more than the `tie`
    fraction, by latency: errors within `tie` of each other are ties, and of tied points
    only the fastest is on the front."""
    order = np.argsort(latency, kind="stable")
    front, best = [], np.inf
    for index in order:
        if error[index] < best * (1 - tie):
            front.append(index)
            best = error[index]
    return np.asarray(front, dtype=int)


def _plain_axis(ax: object) -> None:
    """Tick labels in plain units: no offset ("1e-8+5.96e-2") and no scientific factor."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")  # type: ignore[attr-defined]


def plot_pareto(ok: pd.DataFrame, path: Path, units: str) -> Path:
    """Test RMSE against median latency: a colour per backend, a marker per variant, each
    backend's variants of one model joined; the Pareto front (RMSE ties within RMSE_TIE)
    dashed."""
    plt = _pyplot()
    rows = ok.dropna(subset=["rmse", "latency_median_ms"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = dict(zip(dict.fromkeys(rows["backend"]), plt.get_cmap("tab10").colors))
    markers = dict(zip(dict.fromkeys(rows["variant"]), "osD^v<>ph*"))
    for (_, backend), group in rows.groupby(["model", "backend"], sort=False):
        group = group.sort_values("latency_median_ms")
        ax.plot(group["latency_median_ms"], group["rmse"], "-", color=colours[backend],
                alpha=0.35)
        for r in group.itertuples():
            ax.scatter(r.latency_median_ms, r.rmse, marker=markers[r.variant],
                       color=colours[backend], s=60)
    front = pareto_front(rows["latency_median_ms"].to_numpy(float), rows["rmse"].to_numpy(float))
    ax.plot(rows.loc[front, "latency_median_ms"], rows.loc[front, "rmse"], "--", color="grey",
            label=f"Pareto front (RMSE within {RMSE_TIE:.1%} is a tie)")
    for backend, colour in colours.items():
        ax.scatter([], [], marker="s", color=colour, label=f"backend: {backend}")
    for variant, marker in markers.items():
        ax.scatter([], [], marker=marker, color="black", label=f"variant: {variant}")
    if rows["model"].nunique() > 1:
        for r in rows.itertuples():
            ax.annotate(r.model, (r.latency_median_ms, r.rmse), fontsize=6, alpha=0.6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    _plain_axis(ax)
    ax.set_xlabel("median latency per inference (ms, log scale)")
    ax.set_ylabel(f"test RMSE ({units})")
    ax.set_title("Accuracy vs latency per backend and variant (lower left is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
                  _fmt(r["rmse"], ".4f"), _change(r["rmse"], r["fp32_rmse"])]
                 for _, r in rows.sort_values(["backend", "variant"]).iterrows()
                 if r["status"] != "unsupported"]
        lines += [f"### {model}", "", markdown_table(
            ["variant", "backend", "status", "median ms", "peak RSS MiB", "bytes", "RMSE",
             "RMSE vs fp32"], table), ""]
    return lines


def _change(value: object, base: object) -> str:
    if pd.isna(value) or pd.isna(base) or not float(base):
        return "-"
    return f"{float(value) / float(base) - 1:+.2%}"


def plot_memory_size(ok: pd.DataFrame, path: Path) -> Path:
    """Peak RSS (split into before-runtime and runtime growth) and artifact size per case."""
    plt = _pyplot()
    fig, (left, right) = _case_axes(plt, len(ok), columns=2, width=13)
    labels = _labels(ok)
    peak = ok["peak_rss_mb"].to_numpy(float)
    growth = ok["rss_delta_mb"].to_numpy(float)
    left.barh(labels, peak - growth, color="lightgrey", label="before the runtime was imported")
    left.barh(labels, growth, left=peak - growth, color="tab:orange",
              label="runtime + model (rss_delta_mb)")
    left.set_xlim(0, float(np.nanmax(peak)) * 1.7)  # room for the legend right of the bars
    left.set_xlabel("peak resident set of the worker, VmHWM (MiB)")
    left.set_title("Peak memory")
    left.legend(loc="lower right", fontsize=8)
    right.barh(labels, ok["artifact_bytes"].to_numpy(float) / 1024, color="tab:green")
    right.set_xlabel("artifact size on disk (KiB)")
    right.set_title("Exported artifact size")
    right.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_energy(ok: pd.DataFrame, path: Path) -> Path:
    """Gross energy per inference for the cases a power meter measured, split into what
    inference adds (net) and the idle power's share over the same time."""
    plt = _pyplot()
    rows = ok.dropna(subset=["energy_per_inf_mj"])
    fig, (ax,) = _case_axes(plt, max(len(rows), 3))
    labels = _labels(rows)
    gross = rows["energy_per_inf_mj"].to_numpy(float)
    net = rows["energy_net_per_inf_mj"].to_numpy(float)
    ax.barh(labels, net, color="tab:red", label="net: added by inference")
    ax.barh(labels, gross - net, left=net, color="lightgrey",
            label="idle power over the same time")
    ax.set_xlim(0, float(np.nanmax(gross)) * 1.6)  # room for the legend right of the bars
    ax.set_xlabel("energy per inference (mJ)\nthe whole bar is gross: what the battery pays")
    ax.set_title("Energy per inference")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_frequency(ok: pd.DataFrame, path: Path) -> Path:
    """DVFS sweep: median latency and gross energy per inference against the pinned CPU
    frequency, a line per model/variant/backend."""
    plt = _pyplot()
    rows = ok.dropna(subset=["cpu_freq_khz"]).sort_values("cpu_freq_khz")
    fig, (latency_ax, energy_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (model, variant, backend), group in rows.groupby(["model", "variant", "backend"],
                                                         sort=False):
        mhz = group["cpu_freq_khz"].to_numpy(float) / 1000
        label = f"{model}/{variant}/{backend}"
        latency_ax.plot(mhz, group["latency_median_ms"].to_numpy(float), "o-", label=label)
        energy = group["energy_per_inf_mj"].to_numpy(float)
        if np.isfinite(energy).any():
            energy_ax.plot(mhz, energy, "o-", label=label)
    latency_ax.set_xlabel("pinned CPU frequency (MHz)")
    latency_ax.set_ylabel("median latency per inference (ms)")
    latency_ax.set_title("Latency against CPU frequency")
    energy_ax.set_xlabel("pinned CPU frequency (MHz)")
    energy_ax.set_ylabel("gross energy per inference (mJ)")
    energy_ax.set_title("Energy against CPU frequency"
                        + ("" if rows["energy_per_inf_mj"].notna().any() else
                           ": no power meter"))
    for ax in (latency_ax, energy_ax):
        ax.grid(alpha=0.3)
    latency_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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


def write_report(frame: pd.DataFrame, source: Path, out_dir: Path) -> list[Path]:
    """Write report.md and the plots for `frame` into `out_dir`; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    units = str(ok["dataset"].iloc[0]) if len(ok) and not pd.isna(ok["dataset"].iloc[0]) else ""
    units = "GW" if units == "elecdemand" else "data units"
    written: list[Path] = []
    sections = [f"# Benchmark report: {source.name}", ""]
    if len(frame):
        first = frame.iloc[0]
        machine = (f"Run `{first['run_id']}` at {first['timestamp']} on {first['device']} "
                   f"({first['cpu']}, {first['cores']} cores, {first['os']}, Python "
                   f"{first['python']}).")
        if is_fleet(frame):
            machine = (f"Fleet run at {first['timestamp']}: rows from "
                       f"{frame['device_name'].nunique(dropna=False)} device(s), each "
                       f"measured on its device (see Devices x backends).")
        sections += [machine, ""]
    fleet, shaped = is_fleet(frame), swept(frame)
    rows = [[*([device_label(r)] if fleet else []),
             r["model"], r["variant"], r["backend"],
             *([r["scenario"], str(r["seq_len"]), str(r["batch"])] if shaped else []),
             str(r["threads"]), r["status"],
             _fmt(r["latency_median_ms"], ".4f"), _fmt(r["latency_p90_ms"], ".4f"),
             _fmt(r["latency_p99_ms"], ".4f"), _fmt(r["peak_rss_mb"], ".1f"),
             _fmt(r["artifact_bytes"], ",.0f"), _fmt(r["max_abs_err"], ".1e"),
             _fmt(r["rmse"], ".4f"), _fmt(r["cpu_freq_khz"] / 1000, ".0f")
             if not pd.isna(r["cpu_freq_khz"]) else "-", _fmt(r["energy_per_inf_mj"], ".3f"),
             _fmt(r["energy_net_per_inf_mj"], ".3f")]
            for _, r in frame.iterrows()]
    sections += [markdown_table([*(["device"] if fleet else []),
                                 "model", "variant", "backend",
                                 *(["scenario", "seq_len", "batch"] if shaped else []),
                                 "threads", "status",
                                 "median ms", "p90 ms", "p99 ms", "peak RSS MiB", "bytes",
                                 "max abs err", "RMSE", "pinned MHz", "mJ/inf gross",
                                 "mJ/inf net"], rows), ""]
    sections += variant_lines(frame)
    sections += device_lines(frame)
    sections += scaling_lines(frame)
    sections += power_lines(frame)
    bad = frame[frame["status"] != "ok"]
    if len(bad):
        sections += ["## Cases that did not measure", ""]
        sections += [f"- {case_label(r)}: "
                     f"{r['status']}: {'' if pd.isna(r['reason']) else r['reason']}"
                     for r in bad.to_dict("records")] + [""]
    left_out = unplottable(ok)
    if left_out:
        sections += ["## Rows left out of the plots", ""]
        sections += [f"- {ok.at[i, 'model']}/{ok.at[i, 'variant']}/{ok.at[i, 'backend']} "
                     f"t{ok.at[i, 'threads']}: {why}" for i, why in left_out.items()] + [""]
        ok = ok.drop(index=list(left_out)).reset_index(drop=True)
    if len(ok):
        plots = [("Latency", plot_latency(ok, out_dir / "latency.png")),
                 ("Memory and size", plot_memory_size(ok, out_dir / "memory_size.png"))]
        if ok["rmse"].notna().any():
            plots.append(("Accuracy vs latency", plot_pareto(ok, out_dir / "pareto.png", units)))
        if ok["energy_per_inf_mj"].notna().any():
            plots.append(("Energy", plot_energy(ok, out_dir / "energy.png")))
        if has_scaling(ok):
            plots.append(("Scaling", plot_scaling(ok, out_dir / "scaling.png")))
        if is_fleet(ok):
            plots.append(("Devices x backends", plot_devices(ok, out_dir / "devices.png")))
        if ok["cpu_freq_khz"].nunique() >= 2:
            plots.append(("CPU frequency sweep", plot_frequency(ok, out_dir / "frequency.png")))
        for title, path in plots:
            sections += [f"## {title}", "", f"![{title}]({path.name})", ""]
            written.append(path)
    report = out_dir / "report.md"
    report.write_text("\n".join(sections))
    return [report, *written]
