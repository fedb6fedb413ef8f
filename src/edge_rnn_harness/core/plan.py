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
SCENARIO_STREAMING = "streaming"
SCENARIO_BATCH = "batch"
SCENARIO_COLD_START = "cold_start"
SCENARIO_PACED = "paced"
#: a paced case's scenario is this prefix and its interval's label ("paced-1s")
PACED_PREFIX = "paced-"
#: the intervals --scenario paced sleeps between calls unless --interval says (s)
DEFAULT_INTERVALS_S = (0.01, 1.0)
#: scenario -> what one timed value is
SCENARIOS = {
    SCENARIO_SINGLE_STREAM: "one window per call (batch 1), the default",
    SCENARIO_STREAMING: "one step of a step graph with its recurrent state carried between "
                        "calls (one new hour in, the forecast out)",
    SCENARIO_BATCH: "--batch windows per call (throughput in windows per second)",
    SCENARIO_COLD_START: "one forecast from a fresh process, exec to the forecast written "
                         "(interpreter, imports, model load, input, inference, output), "
                         "--cold-samples processes",
    SCENARIO_PACED: "one window per call in a long-lived process that sleeps --interval "
                    "between calls (caches and clocks gone cold); a case per interval, "
                    "paced-<interval>, with its penalty over back-to-back calls",
}


def interval_label(seconds: float) -> str:
    """An interval as a paced scenario names it: "10ms", "1s", "1.5s", "60s"."""
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def paced_interval_s(scenario: str) -> float | None:
    """The interval (s) of a paced case's scenario ("paced-10ms" -> 0.01); None for any
    other scenario."""
    if not scenario.startswith(PACED_PREFIX):
        return None
    label = scenario[len(PACED_PREFIX):]
    return float(label[:-2]) / 1000 if label.endswith("ms") else float(label[:-1])
#: the artifact form of a step graph (streaming)
STEP_FORM = "step"


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


def artifact_form(case: Case, native_seq_len: int) -> str:
    """Which exported form of the model a case runs: "" the model as exported for a single
    window of its own length, "step" the streaming step graph, "s<seq_len>-b<batch>" the
    window model exported for another window length or batch."""
    if case.scenario == SCENARIO_STREAMING:
        return STEP_FORM
    if case.seq_len == native_seq_len and case.batch == 1:
        return ""
    return f"s{case.seq_len}-b{case.batch}"


def form_text(form: str) -> str:
    """A form for people: "the streaming step graph" or "window length 168, batch 8"."""
    if form == STEP_FORM:
        return "the streaming step graph"
    seq_len, batch = (part[1:] for part in form.split("-"))
    return f"window length {seq_len}, batch {batch}"


@dataclass(frozen=True)
class Shapes:
    """The scenario, window-length and batch sweep of a run.

    scenarios: None picks by batch (single_stream for 1, batch for more); single_stream
    runs batch 1, batch every --batch value, streaming one step (its seq_len is the window
    its parity steps through: the model's own), cold_start batch 1, paced batch 1 once per
    interval. seq_lens: None means each model's own.
    """

    scenarios: tuple[str, ...] | None = None
    seq_lens: tuple[int, ...] | None = None
    batches: tuple[int, ...] = (1,)
    #: the paced scenario's intervals (s): one case each
    intervals_s: tuple[float, ...] = DEFAULT_INTERVALS_S

    def for_model(self, native_seq_len: int) -> list[tuple[str, int, int]]:
        """(scenario, seq_len, batch) of one model's cases, in order, without repeats."""
        seq_lens = self.seq_lens or (native_seq_len,)
        chosen: list[tuple[str, int, int]] = []
        for scenario in self.scenarios or (None,):
            if scenario == SCENARIO_STREAMING:
                chosen.append((scenario, native_seq_len, 1))
                continue
            if scenario == SCENARIO_PACED:
                chosen += [(PACED_PREFIX + interval_label(interval), seq_len, 1)
                           for seq_len in seq_lens for interval in self.intervals_s]
                continue
            for seq_len in seq_lens:
                one_window = scenario in (SCENARIO_SINGLE_STREAM, SCENARIO_COLD_START)
                for batch in ((1,) if one_window else self.batches):
                    picked = scenario or (SCENARIO_SINGLE_STREAM if batch == 1
                                          else SCENARIO_BATCH)
                    chosen.append((picked, seq_len, batch))
        return list(dict.fromkeys(chosen))


def build_plan(models: list[tuple[str, int]], variants: list[str], backends: list[str],
               threads: list[int], cpu_freqs_khz: list[int] | None = None,
               device_name: str | None = None, shapes: Shapes | None = None) -> list[Case]:
    """All combinations, ordered model > scenario > seq_len > batch > variant > backend >
    threads > frequency as given.

    models: (name, seq_len) pairs. cpu_freqs_khz: a DVFS sweep's frequencies (None or
    empty: the CPU is not pinned). device_name: the inventory name of the remote device the
    cases run on (None: here). shapes: the scenario/seq_len/batch sweep (None: one window
    of each model's length, batch 1). Every argument keeps the user's order, so a run's
    row order is reproducible.
    """
    shapes = shapes or Shapes()
    return [
        Case(model=model, variant=variant, backend=backend, threads=n, seq_len=seq_len,
             batch=batch, scenario=scenario, cpu_freq_khz=khz, device_name=device_name)
        for model, native in models
        for scenario, seq_len, batch in shapes.for_model(native)
        for variant, backend, n, khz in itertools.product(
            variants, backends, threads, cpu_freqs_khz or [None])
    ]
