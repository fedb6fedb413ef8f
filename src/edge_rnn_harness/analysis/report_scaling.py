"""The scaling part of `harness report`: how latency grows with the window length and the
batch, how throughput grows with batch and threads, and what a streaming step costs
against a whole window. Fitted exponents are least-squares slopes on log-log axes (1.0 =
linear); every sentence names the rows it comes from."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare_view import markdown_table
from edge_rnn_harness.analysis.figures import pyplot
from edge_rnn_harness.core.plan import SCENARIO_STREAMING

#: an exponent within this of 1.0 reads as "about linear"
LINEAR_BAND = 0.1
#: throughput that grows by less than this fraction from one batch (or thread count) to the
#: next has stopped growing
FLAT_GROWTH = 0.10
_GROUP = ["model", "variant", "backend", "device_name"]


def fitted_exponent(x: np.ndarray, y: np.ndarray) -> float:
    """Slope of log(y) against log(x) by least squares (needs two distinct x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def growth_words(exponent: float) -> str:
    """What an exponent means, in words."""
    if exponent > 1 + LINEAR_BAND:
        return "faster than linear"
    if exponent < 1 - LINEAR_BAND:
        return "slower than linear (a fixed cost per call weighs in)"
    return "about linear"


def stops_growing(x: np.ndarray, throughput: np.ndarray) -> float | None:
    """The first x after which throughput grows by less than FLAT_GROWTH (None: it grows
    up to the largest x measured)."""
    for i in range(1, len(x)):
        if throughput[i] < throughput[i - 1] * (1 + FLAT_GROWTH):
            return float(x[i - 1])
    return None


def _curves(ok: pd.DataFrame, along: str) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows sorted by `along`) per model/variant/backend/device where `along`
    takes two or more values, the other shape columns held fixed."""
    window = ok[ok["scenario"] != SCENARIO_STREAMING]
    fixed = {"seq_len": ["batch", "threads"], "batch": ["seq_len", "threads"],
             "threads": ["seq_len", "batch"]}[along]
    curves = []
    for keys, group in window.groupby(_GROUP + fixed, dropna=False, sort=False):
        group = group.dropna(subset=[along, "latency_median_ms"]).sort_values(along)
        if group[along].nunique() >= 2:
            model, variant, backend, device = keys[:4]
            where = ", ".join(f"{c} {v}" for c, v in zip(fixed, keys[4:]))
            label = f"{model}/{variant}/{backend}" + (f"@{device}" if not pd.isna(device)
                                                      else "")
            curves.append((f"{label} ({where})", group.drop_duplicates(along)))
    return curves


def scaling_lines(frame: pd.DataFrame) -> list[str]:
    """Markdown: fitted latency exponents against seq_len and batch, where throughput stops
    growing with batch and threads, and the streaming step against a window."""
    ok = frame[frame["status"] == "ok"]
    lines: list[str] = []
    rows = []
    for along in ("seq_len", "batch"):
        for label, group in _curves(ok, along):
            x = group[along].to_numpy(float)
            exponent = fitted_exponent(x, group["latency_median_ms"].to_numpy(float))
            sentence = f"latency grows as {along}^{exponent:.2f}: {growth_words(exponent)}"
            if along == "batch":
                flat = stops_growing(x, group["throughput_ips"].to_numpy(float))
                sentence += ("; throughput still grows at batch " f"{x[-1]:g}" if flat is None
                             else f"; throughput stops growing beyond batch {flat:g}")
            rows.append([label, along, f"{x[0]:g}-{x[-1]:g}", f"{exponent:.2f}", sentence])
    for label, group in _curves(ok, "threads"):
        x = group["threads"].to_numpy(float)
        flat = stops_growing(x, group["throughput_ips"].to_numpy(float))
        rows.append([label, "threads", f"{x[0]:g}-{x[-1]:g}", "-",
                     "throughput still grows at the most threads" if flat is None
                     else f"throughput stops growing beyond {flat:g} thread(s)"])
    if rows:
        lines += ["## Scaling", "", (
            "Exponent: the least-squares slope of log(median latency) against log(x) (1.0 = "
            f"linear). Throughput stops growing where the next step adds less than "
            f"{FLAT_GROWTH:.0%}."), "",
                  markdown_table(["case", "x", "range", "exponent", "reading"], rows), ""]
    lines += streaming_lines(ok)
    return lines


def streaming_lines(ok: pd.DataFrame) -> list[str]:
    """Markdown: each streaming step's median against the same backend's single window
    divided by its length: how much a call's fixed cost weighs on one step."""
    steps = ok[ok["scenario"] == SCENARIO_STREAMING]
    rows = []
    for record in steps.to_dict("records"):
        window = ok[(ok["scenario"] == "single_stream") & (ok["batch"] == 1)
                    & (ok["seq_len"] == record["seq_len"])
                    & (ok["threads"] == record["threads"])
                    & (ok["model"] == record["model"]) & (ok["variant"] == record["variant"])
                    & (ok["backend"] == record["backend"])]
        step_ms = float(record["latency_median_ms"])
        if len(window):
            per_value = float(window["latency_median_ms"].iloc[0]) / int(record["seq_len"])
            ratio = f"{step_ms / per_value:.1f}"
            window_text = f"{float(window['latency_median_ms'].iloc[0]):.4f}"
        else:
            ratio, window_text = "-", "not measured"
        rows.append([f"{record['model']}/{record['variant']}/{record['backend']}",
                     f"{step_ms:.4f}", window_text, str(record["seq_len"]), ratio])
    if not rows:
        return []
    return ["## Streaming", "", (
        "A step: one new value in with the state carried (feeding the state is timed). "
        "Ratio: step median / (single-window median / window length); near 1 the "
        "recurrence dominates, far above 1 the per-call cost does."),
            "", markdown_table(["case", "step median ms", "window median ms", "window length",
                                "step / (window / length)"], rows), ""]


def has_scaling(ok: pd.DataFrame) -> bool:
    """Whether any curve (seq_len, batch or threads) can be drawn."""
    return any(_curves(ok, along) for along in ("seq_len", "batch", "threads"))


def scaling_figure(ok: pd.DataFrame) -> Any:
    """Latency against seq_len and batch (log-log, fitted exponent in the legend), and
    throughput against threads; a panel for each that has a curve."""
    plt = pyplot()
    panels = [along for along in ("seq_len", "batch", "threads") if _curves(ok, along)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, along in zip(axes[0], panels):
        for label, group in _curves(ok, along):
            x = group[along].to_numpy(float)
            if along == "threads":
                ax.plot(x, group["throughput_ips"].to_numpy(float), "o-", label=label)
                continue
            y = group["latency_median_ms"].to_numpy(float)
            ax.loglog(x, y, "o-", label=f"{label}: x^{fitted_exponent(x, y):.2f}")
        ax.set_xlabel(along)
        ax.set_ylabel("throughput (windows/s)" if along == "threads"
                      else "median latency per call (ms)")
        ax.set_title(f"{'throughput' if along == 'threads' else 'latency'} against {along}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
