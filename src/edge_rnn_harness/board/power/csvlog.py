"""An external meter's log (USB power meter, bench supply): a CSV file with a `timestamp`
column (Unix seconds, or ISO 8601 with a time zone) and either `power_w`, or `voltage_v`
and `current_a`. The rows whose timestamps fall inside the loop's wall-clock interval are
averaged. The logging machine's clock must agree with the device's (NTP), and the log must
cover the interval; the Pi 4 has no power sensor, so this is how its users measure."""

from __future__ import annotations

import csv
import datetime as dt
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_rnn_harness.board.power.base import (
    Meter,
    MeterUnavailable,
    PowerWindow,
    check_watts,
)

#: a longer log is refused (bytes)
MAX_LOG_BYTES = 1 << 30
#: after the loop, how long to wait for the external logger to write its last rows (s)
SETTLE_S = 1.0


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        stamp = dt.datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            raise ValueError(f"timestamp {text!r} has no time zone") from None
        return stamp.timestamp()


def _row_watts(row: dict[str, str]) -> float:
    if row.get("power_w") not in (None, ""):
        return check_watts(float(row["power_w"]), "power_w")
    return check_watts(float(row["voltage_v"]) * float(row["current_a"]),
                       "voltage_v x current_a")


def window_mean_w(path: Path, start_s: float, end_s: float) -> tuple[float, int]:
    """Mean watts of the log's rows with start_s <= timestamp <= end_s, and their count.

    Raises ValueError for a log that is too big, has the wrong columns, a timestamp that
    is not finite or goes back in time, a row inside the interval whose value is not a
    plausible power (base.check_watts), or no row inside the interval; OSError when it
    cannot be read.
    """
    if path.stat().st_size > MAX_LOG_BYTES:
        raise ValueError(f"{path} is larger than {MAX_LOG_BYTES >> 20} MiB")
    total_w, count, last_s = 0.0, 0, -math.inf
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or ())
        if "timestamp" not in fields or not ({"power_w"} <= fields
                                             or {"voltage_v", "current_a"} <= fields):
            raise ValueError(f"{path} needs a timestamp column and power_w (or voltage_v "
                             f"and current_a)")
        for line, row in enumerate(reader, start=2):
            try:
                stamp_s = _seconds(row["timestamp"])
                if not math.isfinite(stamp_s) or stamp_s < last_s:
                    raise ValueError(f"timestamp {row['timestamp']!r} is not finite or goes "
                                     f"back in time (the log must be in time order)")
                if start_s <= stamp_s <= end_s:  # the readings used: each must be a power
                    total_w, count = total_w + _row_watts(row), count + 1
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path} line {line}: {error}") from None
            last_s = stamp_s
    if count == 0:
        raise ValueError(f"{path} has no row between {start_s:.3f} and {end_s:.3f} (Unix s): "
                         f"is the logger running, and its clock right?")
    return total_w / count, count


class CsvLogMeter(Meter):
    """Power from an external meter's timestamped CSV log, aligned to the block's wall-clock
    interval after it ends."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise MeterUnavailable(f"csv: no such log file {path}")
        self._path = path
        self.name = f"csv:{path.name}"
        self.covers = f"whatever the external meter logging to {path} is wired to measure"

    @contextmanager
    def measure(self) -> Iterator[PowerWindow]:
        """Note the wall-clock interval; afterwards, average the log rows inside it."""
        window = PowerWindow(started_at=time.time())
        start_s = time.perf_counter()
        try:
            yield window
        finally:
            window.ended_at, window.seconds = time.time(), time.perf_counter() - start_s
            time.sleep(SETTLE_S)
            try:
                window.mean_w, window.samples = window_mean_w(self._path, window.started_at,
                                                              window.ended_at)
            except (OSError, ValueError) as error:
                window.error = f"{self.name}: {' '.join(str(error).split())}"
