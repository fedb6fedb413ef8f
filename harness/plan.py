"""The plan: which cases a run measures, in a deterministic order."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

#: the case key's columns, in order (results.KEY_COLUMNS is this tuple)
KEY_COLUMNS = ("model", "variant", "backend", "scenario", "threads", "batch", "seq_len",
               "cpu_freq_khz", "device_name")

SCENARIO_SINGLE_STREAM = "single_stream"


def _pinned_khz(row: Mapping[str, object]) -> int | None:
    """The case's pinned frequency (kHz), None when not pinned (None, NaN or pandas NA)."""
    value = row.get("cpu_freq_khz")
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):  # None, NaN ("cannot convert float NaN") or pandas NA
        return None


def _device_name(row: Mapping[str, object]) -> str:
    """The inventory name of the device the case runs on ("" for a local run)."""
    value = row.get("device_name")
    return value if isinstance(value, str) else ""


def case_label(row: Mapping[str, object]) -> str:
    """The one human-readable label of a case (a Case's dict or a results row):
    model/variant/backend scenario s<seq_len> t<threads> b<batch> [f<MHz> pinned]
    [@device on a remote device]."""
    khz, device = _pinned_khz(row), _device_name(row)
    return (f"{row['model']}/{row['variant']}/{row['backend']} {row['scenario']} "
            f"s{row['seq_len']} t{row['threads']} b{row['batch']}"
            + (f" f{khz / 1000:g}MHz" if khz is not None else "")
            + (f" @{device}" if device else ""))


def bench_name(row: Mapping[str, object]) -> str:
    """The pyperf benchmark name of a case: every key column, so it is unique in a run (a
    fleet's merged run too: a remote device's cases end in @<device name>)."""
    khz, device = _pinned_khz(row), _device_name(row)
    return (f"{row['model']}/{row['variant']}/{row['backend']}/{row['scenario']}/"
            f"s{row['seq_len']}/t{row['threads']}/b{row['batch']}"
            + (f"/f{khz}" if khz is not None else "") + (f"@{device}" if device else ""))


def legacy_bench_name(row: Mapping[str, object]) -> str:
    """The benchmark name harness 0.1 runs used (no scenario or seq_len), so their pyperf
    JSON files still compare."""
    return f"{row['model']}/{row['variant']}/{row['backend']}/t{row['threads']}/b{row['batch']}"


def case_key(row: Mapping[str, object]) -> tuple:
    """The case key of a row or a Case's dict, with empty values made None, as text."""
    return tuple(None if _empty(row.get(column)) else str(row.get(column))
                 for column in KEY_COLUMNS)


def _empty(value: object) -> bool:
    """None, NaN, pandas NA or an empty string."""
    return value is None or (isinstance(value, float) and math.isnan(value)) \
        or str(value) in ("", "<NA>", "nan")


@dataclass(frozen=True)
class Case:
    """One measured configuration: a row of the results table.

    The key (model, variant, backend, scenario, threads, batch, seq_len, cpu_freq_khz,
    device_name) identifies the case across runs; compare and gate join on it. cpu_freq_khz
    is the frequency a DVFS sweep pins for the case (None: not pinned); device_name the
    inventory name of the remote device it runs on (None: a local run).
    """

    model: str
    variant: str
    backend: str
    threads: int
    seq_len: int
    batch: int = 1
    scenario: str = SCENARIO_SINGLE_STREAM
    cpu_freq_khz: int | None = None
    device_name: str | None = None

    @property
    def bench_name(self) -> str:
        """The pyperf benchmark name: unique within a run."""
        return bench_name(self.to_dict())

    @property
    def label(self) -> str:
        """The case's label for people (progress, logs, reasons)."""
        return case_label(self.to_dict())

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-friendly)."""
        return asdict(self)


def build_plan(models: list[tuple[str, int]], variants: list[str], backends: list[str],
               threads: list[int], cpu_freqs_khz: list[int] | None = None,
               device_name: str | None = None) -> list[Case]:
    """All combinations, ordered model > variant > backend > threads > frequency as given.

    models: (name, seq_len) pairs. cpu_freqs_khz: a DVFS sweep's frequencies (None or
    empty: the CPU is not pinned). device_name: the inventory name of the remote device the
    cases run on (None: here). Every argument keeps the user's order, so a run's row order
    is reproducible.
    """
    return [
        Case(model=model, variant=variant, backend=backend, threads=n, seq_len=seq_len,
             cpu_freq_khz=khz, device_name=device_name)
        for (model, seq_len), variant, backend, n, khz in itertools.product(
            models, variants, backends, threads, cpu_freqs_khz or [None])
    ]
