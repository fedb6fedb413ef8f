"""The fleet part of `harness report`: for a results file measured on several devices (a
`harness run --on` merge), a device x backend table of median latency and energy per
inference, and a grouped bar plot of the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare_view import markdown_table
from edge_rnn_harness.analysis.figures import pyplot


def device_label(row: pd.Series | dict) -> str:
    """A device for people: its inventory name and what it said it is, or just the latter
    for a local run."""
    name, model = row["device_name"], row["device"]
    model_text = "" if pd.isna(model) else str(model)
    if pd.isna(name):
        return model_text or "this machine"
    return f"{name} ({model_text})" if model_text else str(name)


def is_fleet(frame: pd.DataFrame) -> bool:
    """Whether the rows come from remote devices (any device_name) or from several."""
    return bool(frame["device_name"].notna().any())


def _groups(ok: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per model/variant/threads/scenario combination present."""
    keys = ["model", "variant", "threads", "scenario"]
    return [(f"{m}/{v} t{t} {s}", group)
            for (m, v, t, s), group in ok.groupby(keys, sort=False)]


def _pivot(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    table = rows.assign(device_label=[device_label(r) for _, r in rows.iterrows()])
    return table.pivot_table(index="device_label", columns="backend", values=column,
                             aggfunc="first", sort=False)


def device_lines(frame: pd.DataFrame) -> list[str]:
    """Markdown: a device x backend table of median latency (ms) and, where a meter
    measured it, gross energy per inference (mJ), per model/variant/threads."""
    if not is_fleet(frame):
        return []
    ok = frame[frame["status"] == "ok"]
    devices = frame.drop_duplicates("device_name")
    lines = ["## Devices x backends", "",
             f"{len(devices)} device(s): " + "; ".join(
                 f"{device_label(r)}, {r['cpu'] if not pd.isna(r['cpu']) else 'cpu unknown'}"
                 for _, r in devices.iterrows()) + ". Each number was measured on its "
             "device by that device's harness; a cell is - where the case did not "
             "measure ok there.", ""]
    for title, rows in _groups(ok):
        for column, what, spec in (("latency_median_ms", "median latency (ms)", ".4f"),
                                   ("energy_per_inf_mj", "energy per inference, gross (mJ)",
                                    ".3f")):
            if rows[column].isna().all():
                if column == "energy_per_inf_mj":
                    lines += [f"{title}: energy not measured (no power meter on these devices).",
                              ""]
                continue
            pivot = _pivot(rows, column)
            body = [[label, *("-" if pd.isna(v) else format(float(v), spec) for v in values)]
                    for label, values in zip(pivot.index, pivot.to_numpy())]
            lines += [f"**{title}: {what}**", "",
                      markdown_table(["device", *map(str, pivot.columns)], body), ""]
    return lines


def devices_figure(ok: pd.DataFrame) -> Any:
    """Grouped bars: median latency per backend (x), one bar per device, a panel per
    model/variant/threads combination (the first four)."""
    plt = pyplot()
    groups = _groups(ok)[:4]
    panels = [("latency_median_ms", "median latency (ms)")]
    if ok["energy_per_inf_mj"].notna().any():
        panels.append(("energy_per_inf_mj", "gross energy per inference (mJ)"))
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(9 * len(panels),
                                                                3.2 * len(groups)),
                             squeeze=False)
    for row_axes, (title, rows) in zip(axes, groups):
        for ax, (column, what) in zip(row_axes, panels):
            _grouped_bars(ax, _pivot(rows, column), what)
            ax.set_title(f"{title}: each device measured on itself")

    fig.tight_layout()
    return fig


def _grouped_bars(ax: object, pivot: pd.DataFrame, what: str) -> None:
    """Bars per backend (x), one per device; a device without the value has no bar."""
    width = 0.8 / max(len(pivot.index), 1)
    x = np.arange(len(pivot.columns))
    for i, (label, values) in enumerate(zip(pivot.index, pivot.to_numpy(float))):
        ax.bar(x + i * width, values, width, label=label)  # type: ignore[attr-defined]
    ax.set_xticks(x + width * (len(pivot.index) - 1) / 2,  # type: ignore[attr-defined]
                  list(pivot.columns))
    ax.set_ylabel(what)  # type: ignore[attr-defined]
    ax.grid(axis="y", alpha=0.3)  # type: ignore[attr-defined]
    ax.legend(fontsize=8)  # type: ignore[attr-defined]
