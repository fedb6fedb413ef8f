"""The report's figures (matplotlib, headless), each built from a run's `ok` rows and
returned as a Figure: the Markdown report saves them as PNG, the HTML report inlines them
as SVG, so both show the same data drawn the same way."""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edge_rnn_harness.core.plan import case_label

#: RMSEs closer than this fraction count as the same accuracy: fp32 runtimes differ by
#: about 1e-8 of it (floating-point order), far below what 1,311 test windows can tell apart
RMSE_TIE = 1e-3
#: the accuracy axis spans at least this many tie margins, so points that tie sit within
#: 1/20 of its height of each other: on one level, as the legend says they are
MIN_RMSE_SPAN_TIES = 20
#: at most this many timed values per case feed a distribution plot (evenly spaced order
#: statistics of all of them: the sample's own quantiles, so its shape is kept)
MAX_PLOTTED_VALUES = 2000


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> Path:
    """Write `fig` as a PNG to `path` and close it."""
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def svg_markup(fig: Any) -> str:
    """`fig` as an inline <svg> element (no XML prolog, no metadata, ids salted apart from
    other figures' on the same page), closed."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": uuid.uuid4().hex}):
        fig.savefig(buffer, format="svg", metadata=dict.fromkeys(
            ("Creator", "Date", "Format", "Type")))
    pyplot().close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def labels(rows: pd.DataFrame) -> list[str]:
    """One label per case."""
    return [case_label(row) for row in rows.to_dict("records")]


def case_axes(count: int, columns: int = 1, width: float = 9.0) -> tuple[Any, Any]:
    """A figure sized for `count` horizontal bars per panel, first case at the top."""
    height = 1.2 + 0.32 * count
    fig, axes = pyplot().subplots(1, columns, figsize=(width, height), squeeze=False)
    for ax in axes[0]:
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    return fig, axes[0]


def latency_figure(ok: pd.DataFrame) -> Any:
    """Median latency per case (bars) with a whisker up to p90."""
    fig, (ax,) = case_axes(len(ok))
    median = ok["latency_median_ms"].to_numpy(float)
    p90 = ok["latency_p90_ms"].to_numpy(float)
    names = labels(ok)
    ax.barh(names, median, color="tab:blue", label="median")
    whisker = np.clip(p90 - median, 0, None)  # a damaged row's p90 below its median
    ax.errorbar(median, names, xerr=[np.zeros_like(median), whisker], fmt="none",
                ecolor="black", capsize=3, label="whisker to p90")
    ax.set_xlim(0, float(np.nanmax(p90)) * 1.35)  # room for the legend
    ax.set_xlabel("latency per inference, batch 1 (ms)")
    ax.set_title("Latency per backend and variant")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def downsampled(values: np.ndarray, limit: int = MAX_PLOTTED_VALUES) -> np.ndarray:
    """At most `limit` of `values`: evenly spaced order statistics (min and max kept), so
    the quantiles of what is drawn are those of the whole sample."""
    ordered = np.sort(np.asarray(values, float))
    if ordered.size <= limit:
        return ordered
    return ordered[np.linspace(0, ordered.size - 1, limit).round().astype(int)]


def distribution_figure(cases: Sequence[tuple[str, Sequence[np.ndarray]]]) -> Any:
    """Per case, the distribution of every timed value of every worker process (a violin
    over log10 latency) with each process's median as a dot, so a bimodal case or one slow
    process shows. `cases`: (label, values per process in ms)."""
    fig, (ax,) = case_axes(len(cases), width=10)
    for position, (_, runs) in enumerate(cases):
        every = downsampled(np.concatenate([np.asarray(r, float) for r in runs]))
        every = every[every > 0]
        if every.size >= 2 and np.ptp(every) > 0:
            parts = ax.violinplot(np.log10(every), positions=[position], orientation="horizontal",
                                  widths=0.8, showextrema=False)
            for body in parts["bodies"]:
                body.set_alpha(0.45)
        medians = [float(np.median(r)) for r in runs if len(r)]
        jitter = np.linspace(-0.25, 0.25, len(medians)) if len(medians) > 1 else [0.0]
        ax.scatter(np.log10(medians), position + np.asarray(jitter), s=10, color="black",
                   zorder=3, label="a worker process's median" if position == 0 else None)
    ax.set_yticks(range(len(cases)), [name for name, _ in cases])
    ax.set_ylim(len(cases) - 0.5, -0.5)
    ticks = ax.get_xticks()
    ax.set_xticks(ticks, [f"{10 ** t:.3g}" for t in ticks])
    ax.set_xlabel("latency per call (ms, log scale)")
    ax.set_title("Latency distribution per case")
    if cases:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


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


def rmse_limits(rmse: np.ndarray, tie: float = RMSE_TIE,
                span_ties: int = MIN_RMSE_SPAN_TIES) -> tuple[float, float]:
    """The accuracy axis: the data with a margin, widened about its middle to at least
    `span_ties` tie margins of the largest RMSE, so tied points never look apart."""
    low, high = float(np.nanmin(rmse)), float(np.nanmax(rmse))
    middle = (low + high) / 2
    half = max((high - low) / 2 * 1.15, span_ties * tie * abs(high) / 2)
    if half == 0:
        half = 1.0
    return middle - half, middle + half


def pareto_figure(ok: pd.DataFrame, units: str) -> Any:
    """Test RMSE against median latency: a colour per backend, a marker per variant, each
    backend's variants of one model joined; the Pareto front (RMSE ties within RMSE_TIE)
    dashed; the RMSE axis never narrower than MIN_RMSE_SPAN_TIES tie margins."""
    plt = pyplot()
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
    if len(rows):
        ax.set_ylim(*rmse_limits(rows["rmse"].to_numpy(float)))
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xlabel("median latency per inference (ms, log scale)")
    ax.set_ylabel(f"test RMSE ({units}); the axis spans at least "
                  f"{MIN_RMSE_SPAN_TIES * RMSE_TIE:.0%} of it")
    ax.set_title("Accuracy vs latency per backend and variant (lower left is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def memory_size_figure(ok: pd.DataFrame) -> Any:
    """Peak RSS (split into before-runtime and runtime growth) and artifact size per case."""
    fig, (left, right) = case_axes(len(ok), columns=2, width=13)
    names = labels(ok)
    peak = ok["peak_rss_mb"].to_numpy(float)
    growth = ok["rss_delta_mb"].to_numpy(float)
    left.barh(names, peak - growth, color="lightgrey", label="before the runtime was imported")
    left.barh(names, growth, left=peak - growth, color="tab:orange",
              label="runtime + model (rss_delta_mb)")
    left.set_xlim(0, float(np.nanmax(peak)) * 1.7)  # room for the legend right of the bars
    left.set_xlabel("peak resident set of the worker, VmHWM (MiB)")
    left.set_title("Peak memory")
    left.legend(loc="lower right", fontsize=8)
    right.barh(names, ok["artifact_bytes"].to_numpy(float) / 1024, color="tab:green")
    right.set_xlabel("artifact size on disk (KiB)")
    right.set_title("Exported artifact size")
    right.set_yticklabels([])
    fig.tight_layout()
    return fig


def energy_figure(ok: pd.DataFrame) -> Any:
    """Gross energy per inference for the cases a power meter measured, split into what
    inference adds (net) and the idle power's share over the same time."""
    rows = ok.dropna(subset=["energy_per_inf_mj"])
    fig, (ax,) = case_axes(max(len(rows), 3))
    names = labels(rows)
    gross = rows["energy_per_inf_mj"].to_numpy(float)
    net = rows["energy_net_per_inf_mj"].to_numpy(float)
    ax.barh(names, net, color="tab:red", label="net: added by inference")
    ax.barh(names, gross - net, left=net, color="lightgrey",
            label="idle power over the same time")
    ax.set_xlim(0, float(np.nanmax(gross)) * 1.6)  # room for the legend right of the bars
    ax.set_xlabel("energy per inference (mJ)\nthe whole bar is gross: what the battery pays")
    ax.set_title("Energy per inference")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def frequency_figure(ok: pd.DataFrame) -> Any:
    """DVFS sweep: median latency and gross energy per inference against the pinned CPU
    frequency, a line per model/variant/backend."""
    rows = ok.dropna(subset=["cpu_freq_khz"]).sort_values("cpu_freq_khz")
    fig, (latency_ax, energy_ax) = pyplot().subplots(1, 2, figsize=(12, 4.5))
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
    return fig


def trend_figure(series: Mapping[str, pd.DataFrame], metric_label: str) -> Any:
    """A line per case of a metric over runs (x: the run's timestamp), change points
    ringed. Each frame has `when`, `value` and `change` (bool) columns."""
    fig, ax = pyplot().subplots(figsize=(10, 4.5))
    for name, frame in series.items():
        line, = ax.plot(frame["when"], frame["value"], ".-", label=name)
        changed = frame[frame["change"]]
        ax.scatter(changed["when"], changed["value"], s=120, facecolors="none",
                   edgecolors=line.get_color(), linewidths=2)
    if any(frame["change"].any() for frame in series.values()):
        ax.scatter([], [], s=120, facecolors="none", edgecolors="black",
                   label="change point (outside the prediction interval of the runs before)")
    ax.set_ylabel(metric_label)
    ax.set_xlabel("run (time)")
    ax.set_title(f"{metric_label} over runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
