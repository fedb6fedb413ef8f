"""Intel/AMD RAPL through the powercap interface: the CPU packages' energy counters
(`/sys/class/powercap/intel-rapl:N/energy_uj`), which wrap at `max_energy_range_uj`."""

from __future__ import annotations

from pathlib import Path

from edge_rnn_harness.board.devicefs import device_path, read_int, read_text
from edge_rnn_harness.board.power.base import MeterUnavailable, SampledMeter

POWERCAP = "/sys/class/powercap"
UJ_PER_J = 1_000_000


def _package_zones() -> list[Path]:
    base = device_path(POWERCAP)
    zones = sorted(base.glob("intel-rapl:*")) if base.is_dir() else []
    return [zone for zone in zones if zone.name.count(":") == 1
            and (read_text(zone / "name") or "").startswith("package")]


class RaplMeter(SampledMeter):
    """Sum of every CPU package's RAPL energy counter, read as joules since the meter was
    opened (each counter's wrap at max_energy_range_uj is added back between readings)."""

    cumulative = True
    interval_s = 0.05

    def __init__(self) -> None:
        zones = _package_zones()
        if not zones:
            raise MeterUnavailable(f"rapl: no RAPL package domain under {POWERCAP}")
        for zone in zones:
            counter = zone / "energy_uj"
            try:
                counter.read_bytes()
            except PermissionError:
                raise MeterUnavailable(
                    f"rapl: {counter} is readable by root only; run as root or make it "
                    f"readable (sudo chmod a+r {POWERCAP}/intel-rapl:*/energy_uj)") from None
            except OSError as error:
                raise MeterUnavailable(f"rapl: cannot read {counter} "
                                       f"({error.strerror or error})") from None
        self._zones = zones
        self._ranges_uj = [read_int(zone / "max_energy_range_uj") for zone in zones]
        self._last_uj: list[int] = [self._counter_uj(zone) for zone in zones]
        self._total_uj = 0
        names = ", ".join(read_text(zone / "name") or zone.name for zone in zones)
        self.name = "rapl"
        self.covers = (f"CPU package energy ({names}: cores, caches, uncore); not DRAM, "
                       f"storage or the rest of the machine")

    @staticmethod
    def _counter_uj(zone: Path) -> int:
        value = read_int(zone / "energy_uj")
        if value is None:
            raise OSError(f"{zone / 'energy_uj'} vanished or is unreadable")
        return value

    def read(self) -> float:
        """Joules counted since the meter was opened, wraps added back."""
        for i, zone in enumerate(self._zones):
            now_uj = self._counter_uj(zone)
            delta_uj = now_uj - self._last_uj[i]
            if delta_uj < 0:  # the counter wrapped (once: we read far more often than that)
                if self._ranges_uj[i] is None:
                    raise OSError(f"{zone} wrapped and has no max_energy_range_uj")
                delta_uj += self._ranges_uj[i]
            self._total_uj += delta_uj
            self._last_uj[i] = now_uj
        return self._total_uj / UJ_PER_J
