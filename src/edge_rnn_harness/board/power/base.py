"""What every power meter is: a context manager around a stretch of work that gives the
mean power over it (W), the number of sensor samples behind that figure, and what the
figure covers. A meter that fails part-way gives no figure and the reason, never zero."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class MeterUnavailable(ValueError):
    """This meter cannot work on this device (no such sensor, not readable); one line."""


#: the most power a device this harness measures can draw (W): a larger reading is a
#: meter fault (a desktop package peaks at a few hundred watts, a Pi at about 12)
MAX_PLAUSIBLE_W = 1000.0


def check_watts(watts: float, what: str = "power reading") -> float:
    """`watts` when it is a finite number from 0 to MAX_PLAUSIBLE_W (the one rule every
    meter reading and every mean power passes); ValueError saying what is wrong otherwise.
    """
    if not (isinstance(watts, int | float) and math.isfinite(watts)
            and 0 <= watts <= MAX_PLAUSIBLE_W):
        raise ValueError(f"{what} {watts!r} W is not a number from 0 to "
                         f"{MAX_PLAUSIBLE_W:g} W (a meter fault, or the wrong units)")
    return float(watts)


@dataclass
class PowerWindow:
    """The power over one measured stretch (filled when the `with` block ends).

    mean_w: mean power in watts, None when the meter failed (then `error` says why).
    samples: sensor readings behind it. seconds: the stretch's wall-clock length.
    """

    mean_w: float | None = None
    samples: int = 0
    seconds: float = 0.0
    error: str | None = None
    #: wall-clock (time.time) start and end, for meters aligned to an external log
    started_at: float = 0.0
    ended_at: float = 0.0


class Meter(ABC):
    """One power source. `name` goes into the row's power_meter column, `covers` says what
    the figure includes (which rails, which parts of the board)."""

    name: str
    covers: str

    @abstractmethod
    @contextmanager
    def measure(self) -> Iterator[PowerWindow]:
        """Yield a PowerWindow that is filled in when the block ends."""


@dataclass
class _Readings:
    times_s: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    error: str | None = None


class SampledMeter(Meter):
    """A meter read by polling: `read()` returns either the instantaneous power in watts
    (`cumulative = False`) or a running energy total in joules (`cumulative = True`, e.g.
    RAPL, whose counter wrap the subclass handles). A background thread polls it every
    `interval_s` while the block runs."""

    cumulative = False
    interval_s = 0.05

    @abstractmethod
    def read(self) -> float:
        """One reading (W, or J if cumulative). Raises OSError or ValueError on failure."""

    @contextmanager
    def measure(self) -> Iterator[PowerWindow]:
        """Poll `read()` on a background thread for the duration of the block."""
        window, readings, stop = PowerWindow(), _Readings(), threading.Event()
        self._take(readings)
        window.started_at, start_s = time.time(), time.perf_counter()
        thread = threading.Thread(target=self._poll, args=(readings, stop), daemon=True)
        thread.start()
        try:
            yield window
        finally:
            stop.set()
            thread.join()
            self._take(readings)
            window.ended_at, window.seconds = time.time(), time.perf_counter() - start_s
            self._summarise(readings, window)

    def _poll(self, readings: _Readings, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s) and readings.error is None:
            self._take(readings)

    def _take(self, readings: _Readings) -> None:
        if readings.error is not None:
            return
        try:
            value = self.read()
            if not self.cumulative:
                check_watts(value)
            elif not math.isfinite(value):
                raise ValueError(f"energy counter reading {value!r} J is not a finite number")
        except (OSError, ValueError) as error:
            readings.error = (f"{self.name} failed after {len(readings.values)} sample(s): "
                              f"{' '.join(str(error).split())}")
            return
        readings.times_s.append(time.perf_counter())
        readings.values.append(value)

    def _summarise(self, readings: _Readings, window: PowerWindow) -> None:
        window.samples = len(readings.values)
        if readings.error is not None:
            window.error = readings.error
        elif self.cumulative:
            elapsed_s = readings.times_s[-1] - readings.times_s[0]
            window.mean_w = (readings.values[-1] - readings.values[0]) / elapsed_s \
                if elapsed_s > 0 else None
            window.samples -= 1  # n readings of a counter are n - 1 intervals
        else:
            window.mean_w = sum(readings.values) / len(readings.values)
        if window.mean_w is None and window.error is None:
            window.error = f"{self.name}: too few samples"
        elif window.mean_w is not None:
            try:
                check_watts(window.mean_w, "mean power")
            except ValueError as error:
                window.mean_w, window.error = None, f"{self.name}: {error}"
