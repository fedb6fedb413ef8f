"""The results schema and its CSV file: one row per case, the contract between run,
show, compare, gate and users' own scripts.

Schema history (bump SCHEMA_VERSION on any change; old files must still load):
  1: first version.
  2: `interleaving` ("calls" or "processes" for rows of an interleaved A/B run, else empty).
  3: power and energy from the energy step (`power_covers`, `power_samples`,
     `energy_net_per_inf_mj`, `energy_inferences`, `energy_seconds`; `energy_per_inf_mj` is
     gross: idle included), the DVFS key `cpu_freq_khz` (the frequency pinned for the case,
     empty when not pinned), the frequency before and after the case
     (`cpu_freq_start_khz`, `cpu_freq_end_khz`), the cpufreq limits and `kernel`.
  4: precision variants: `calibration_windows` (training windows a calibrated variant's
     quantizer saw), `fp32_max_abs_err` (largest |output - the same backend's fp32
     output| over the test windows, else the parity windows) and `fp32_rmse` (that fp32
     artifact's RMSE on the same test windows). `invalid` also marks degenerate forecasts.
  5: `device_name`: the inventory name of the device a remote run (`--on`) measured the row
     on (empty for a local run); part of the case key, so a fleet's merged CSV has one row
     per device and case. `scenario`, `seq_len` and `batch` take other values than
     single_stream/24/1 (streaming, batch; swept lengths and batches).
     `runtime_latency_median_ms`: the runtime's own latency per call where it reports one
     (OpenVINO's InferRequest.latency), median over the timed calls, beside the harness's.
  6: `device_tags`: the tags of the board farm place (labgrid) a remote run measured the
     row on, KEY=VALUE;KEY=VALUE (empty for inventory devices and local runs).
  7: the 95% intervals of the median, p90 and p99 (`latency_<p>_ci_low_ms`/`_high_ms`,
     empty where the value count cannot support one) and `median_precision_pct`;
     `stability` (stable, drifting, multimodal, noisy tail) and `stability_reason`; the
     counted figures (`instructions_per_inf` .. `context_switches_per_inf`, with
     `--counters`) and `counters_note` (why a counter's cells are empty).
  8: what was measured: `model_id` (the model's identity in the bundle: its definition and
     weights, or its ONNX file) and `artifact_id` (sha256 over the artifact's files' sha256,
     the file(s) the runtime loaded); `--resume` keeps a row only when both match the
     bundle it runs, and compare/gate say when the two sides measured different models.
     Readers refuse schema versions outside 1..8 and booleans other than True/False.
     The cold_start scenario's phases (`cold_interpreter_ms` .. `cold_output_ms`, median
     over its processes) and `page_cache` ("warm", or "dropped before each sample"). The
     paced scenario's `back_to_back_median_ms` (the same worker's calls without the idle)
     and `paced_penalty` (latency_median_ms over it).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import math
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from edge_rnn_harness.core.metrics import (
    COLD_START_METRICS,
    COUNTER_METRICS,
    DECLARED_METRICS,
    ENERGY_METRICS,
    INTERVAL_METRICS,
    LATE_METRICS,
    METRICS,
    PACED_METRICS,
    Metric,
)
from edge_rnn_harness.core.plan import KEY_COLUMNS
from edge_rnn_harness.core.status import STATUSES

SCHEMA_VERSION = 8

#: the columns that are not metrics, by place in the CSV -> dtype ("str", "int", "float",
#: "bool"); the metrics' columns come from their declarations (core.metrics)
_IDENTITY_COLUMNS: dict[str, str] = {
    "schema_version": "int", "run_id": "str", "timestamp": "str",
    "model": "str", "variant": "str", "backend": "str", "backend_version": "str",
    "params": "int", "dataset": "str",
    "scenario": "str", "threads": "int", "batch": "int", "seq_len": "int",
    "status": "str", "reason": "str", "settings": "str", "n_values": "int",
}
_POWER_COLUMNS: dict[str, str] = {"power_meter": "str", "power_covers": "str"}
_DEVICE_COLUMNS: dict[str, str] = {
    "temp_start_c": "float", "temp_end_c": "float", "throttled": "bool",
    "cpu_freq_khz": "int", "cpu_freq_start_khz": "int", "cpu_freq_end_khz": "int",
    "device": "str", "cpu": "str", "cores": "int", "governor": "str",
    "cpu_freq_min_khz": "int", "cpu_freq_max_khz": "int",
    "os": "str", "kernel": "str", "python": "str", "harness_version": "str",
    "interleaving": "str", "device_name": "str",
}


#: schema 6: where a farm run measured the row
_FARM_COLUMNS: dict[str, str] = {"device_tags": "str"}
#: schema 7: the stability verdict and why the counters' cells are empty
_VERDICT_COLUMNS: dict[str, str] = {"stability": "str", "stability_reason": "str",
                                    "counters_note": "str"}
#: schema 8: the model and the artifact a row measured; a cold start's page cache state
_MEASURED_COLUMNS: dict[str, str] = {"model_id": "str", "artifact_id": "str"}
_COLD_START_COLUMNS: dict[str, str] = {"page_cache": "str"}


def columns() -> dict[str, str]:
    """Every results column -> its dtype, in the CSV's column order: the case's identity
    and status, the metrics, the power meter, the energy metrics, the device's facts, the
    late metrics, the farm's place tags, the intervals, the verdicts, the counters, what
    was measured (model and artifact identity), and any metric declared since."""
    def of(metrics: list[Metric]) -> dict[str, str]:
        return {metric.column: metric.dtype for metric in metrics}

    return {**_IDENTITY_COLUMNS, **of(METRICS), **_POWER_COLUMNS, **of(ENERGY_METRICS),
            **_DEVICE_COLUMNS, **of(LATE_METRICS), **_FARM_COLUMNS, **of(INTERVAL_METRICS),
            **_VERDICT_COLUMNS, **of(COUNTER_METRICS), **_MEASURED_COLUMNS,
            **of(COLD_START_METRICS), **_COLD_START_COLUMNS, **of(PACED_METRICS),
            **of(DECLARED_METRICS)}


#: the columns every schema version has (cpu_freq_khz came with schema 3, device_name with
#: schema 5: empty before)
REQUIRED_COLUMNS = ("schema_version", *KEY_COLUMNS[:-2], "status")

_PANDAS_DTYPES = {"str": "string", "int": "Int64", "float": "Float64", "bool": "boolean"}


def new_row(**fields: object) -> dict[str, object]:
    """A row with every schema column; absent fields are empty (None), never zero.

    Raises ValueError on a field that is not a column or an unknown status.
    """
    unknown = set(fields) - set(columns())
    if unknown:
        raise ValueError(f"not results columns: {', '.join(sorted(unknown))}")
    status = fields.get("status")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    row: dict[str, object] = dict.fromkeys(columns())
    row.update(fields)
    row["schema_version"] = SCHEMA_VERSION
    return row


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=_PANDAS_DTYPES[kind])
                         for name, kind in columns().items()})


class OutputBusy(ValueError):
    """Another process is writing the same results file."""


def check_not_busy(path: Path) -> None:
    """OutputBusy if another process holds `path` as its results file right now (checked
    before a run starts; the run's ResultsWriter then takes the lock for good)."""
    if not path.is_file():
        return
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(f"{path} is being written by another harness process; give "
                             f"another --out") from None


class ResultsWriter:
    """Holds an exclusive lock on the results file for its lifetime (a second run with the
    same --out is refused instead of mixing rows), writes the header, then appends and
    flushes one row per finished case, so a crash or Ctrl-C later keeps every row already
    measured."""

    def __init__(self, path: Path) -> None:
        """Lock, then truncate `path`; OutputBusy if another process holds it, OSError if it
        cannot be written."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # rows go straight to the descriptor (_write: os.write), never through a buffer
        self._handle = path.open("ab", buffering=0)  # no truncation before the lock is ours
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise OutputBusy(f"{path} is being written by another harness process; give "
                             f"another --out") from None
        self._handle.truncate(0)
        self._write(_empty_frame().to_csv(index=False))
        self.rows: list[dict[str, object]] = []

    def _write(self, text: str) -> None:
        """Append `text` whole or not at all: a write that fails part-way (a full disk) is
        cut back off, so the file never ends in half a row; the OSError is raised."""
        data = memoryview(text.encode())
        size = os.fstat(self._handle.fileno()).st_size
        try:
            while data:
                data = data[os.write(self._handle.fileno(), data):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._handle.fileno(), size)
            raise

    def append(self, row: Mapping[str, object]) -> None:
        """Append one row (a `new_row` dict) to the file, whole or not at all."""
        frame = pd.DataFrame([row], columns=list(columns()))
        self._write(frame.to_csv(header=False, index=False, float_format="%.9g"))
        self.rows.append(dict(row))

    def close(self) -> None:
        """Release the lock. Idempotent."""
        self._handle.close()


def dump_suite(suite: object, path: Path) -> None:
    """Write a pyperf BenchmarkSuite to `path` atomically (temporary file, then rename), so
    a full disk or a crash never leaves a truncated JSON where a good one was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        suite.dump(str(tmp), replace=True)  # type: ignore[attr-defined]
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


#: largest results CSV or pyperf JSON read (a run of thousands of cases stays far below it)
MAX_RESULTS_BYTES = 256 << 20


def load_benchmarks(path: Path) -> list:
    """The benchmarks of a pyperf JSON file ([] when there is none); ValueError naming the
    file for one that is too large or not pyperf JSON."""
    import pyperf

    if not path.exists():
        return []
    if not path.is_file() or path.stat().st_size > MAX_RESULTS_BYTES:
        raise ValueError(f"{path}: not a pyperf JSON file (not a regular file of at most "
                         f"{MAX_RESULTS_BYTES >> 20} MiB)")
    try:
        return pyperf.BenchmarkSuite.load(str(path)).get_benchmarks()
    except Exception as error:  # noqa: BLE001 -- pyperf raises several types for a bad file
        raise ValueError(f"{path}: not a pyperf JSON file ({error})") from None


def read_results(path: Path) -> pd.DataFrame:
    """Load a results CSV into a frame with every current column and its dtype.

    Columns added in later schema versions are filled empty for older files. Raises
    ValueError (naming the file) for a file that is not a results CSV or is from a newer
    schema than this harness reads.
    """
    try:
        if path.exists() and not path.is_dir() and (
                not path.is_file() or path.stat().st_size > MAX_RESULTS_BYTES):
            raise ValueError(f"{path}: not a results CSV (not a regular file of at most "
                             f"{MAX_RESULTS_BYTES >> 20} MiB)")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as error:
        raise ValueError(f"{path}: not a readable file ({error.strerror or error})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "empty"
        raise ValueError(f"{path}: not a results CSV ({detail})") from None
    short = _first_short_row(path)
    if short is not None:
        raise ValueError(f"{path}: data row {short} has fewer fields than the header (the "
                         f"file was cut short or damaged)")
    missing = set(REQUIRED_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not a results CSV (missing columns: "
                         f"{', '.join(sorted(missing))})")
    versions = set(frame["schema_version"])
    bad = {v for v in versions if not v.isdigit() or not 1 <= int(v) <= SCHEMA_VERSION}
    if bad:
        raise ValueError(f"{path}: schema_version {', '.join(sorted(bad))} is not readable "
                         f"by this harness (reads 1..{SCHEMA_VERSION}; a newer "
                         f"one needs a newer harness)")
    unknown = sorted(set(frame["status"]) - set(STATUSES))
    if unknown:
        raise ValueError(f"{path}: status {unknown[0]!r} is not one of {', '.join(STATUSES)}")
    return _typed(frame.reindex(columns=list(columns()), fill_value=""), path)


def _first_short_row(path: Path) -> int | None:
    """The number (1 = first after the header) of the first data row with fewer fields
    than the header, or None. pandas fills such a row's missing fields silently."""
    limit = csv.field_size_limit(MAX_RESULTS_BYTES)
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = (row for row in csv.reader(handle) if row)  # pandas skips blank lines
            width = len(next(rows, []))
            return next((number for number, row in enumerate(rows, start=1)
                         if len(row) < width), None)
    finally:
        csv.field_size_limit(limit)


def _typed(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = frame.replace("", pd.NA)
    for name, kind in columns().items():
        try:
            if kind == "bool":
                frame[name] = _strict_bools(frame[name])
            elif kind in ("int", "float"):
                frame[name] = pd.to_numeric(frame[name]).astype(_PANDAS_DTYPES[kind])
            else:
                frame[name] = frame[name].astype("string")
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(f"{path}: column {name!r} has a bad value ({error})") from None
    return frame


#: the only texts a boolean cell may hold (as pandas writes them); anything else is refused
_BOOLEANS = {"True": True, "False": False}


def _strict_bools(texts: pd.Series) -> pd.Series:
    """A boolean column read strictly: True, False or empty; ValueError for any other text
    (a lower-case "true" is never read as not set)."""
    present = texts.dropna()
    bad = present[~present.isin(list(_BOOLEANS))]
    if len(bad):
        raise ValueError(f"{bad.iloc[0]!r} is not True or False")
    return texts.map(_BOOLEANS, na_action="ignore").astype("boolean")


def conformed(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (rows read back from a store, a parquet file, another schema version) with
    exactly the current results columns, in order, each of its dtype: columns it lacks are
    empty, others dropped. ValueError naming the column for a value of the wrong kind."""
    frame = frame.reindex(columns=list(columns()))
    for name, kind in columns().items():
        try:
            frame[name] = frame[name].astype(_PANDAS_DTYPES[kind])
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(f"column {name!r} has a bad value ({error})") from None
    return frame


def row_dicts(frame: pd.DataFrame) -> list[dict[str, object]]:
    """A results frame's rows as plain dicts, empty cells as None (as `new_row` makes
    them), ready for ResultsWriter.append."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def is_finite_number(value: object) -> bool:
    """True for a real, finite number (not None, NA or NaN)."""
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
