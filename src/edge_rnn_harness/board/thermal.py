"""Temperature and throttling, read before and after every case: thermal zones (or
`vcgencmd measure_temp`), the Raspberry Pi's `vcgencmd get_throttled` flags, x86's
thermal_throttle counters, and the CPU frequency. Nothing here is timed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_rnn_harness.board import cpufreq
from edge_rnn_harness.board.devicefs import CommandFailed, device_path, read_int, run_command

THERMAL = "/sys/class/thermal"
MILLI = 1000.0
#: get_throttled bits: 0-3 are true now, 16-19 have occurred since boot
THROTTLE_BITS = {
    0: "under-voltage", 1: "ARM frequency capped", 2: "throttled",
    3: "soft temperature limit active",
    16: "under-voltage occurred", 17: "ARM frequency capping occurred",
    18: "throttling occurred", 19: "soft temperature limit occurred",
}
NOW_MASK = 0xF
STICKY_SHIFT = 16
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+)")
_TEMP = re.compile(r"temp=([-0-9.]+)")


def decode_throttled(bits: int) -> list[str]:
    """The names of the get_throttled flags set in `bits` (e.g. 0x50005 -> under-voltage,
    throttled, under-voltage occurred, throttling occurred)."""
    return [name for bit, name in THROTTLE_BITS.items() if bits >> bit & 1]


def read_throttled() -> int | None:
    """`vcgencmd get_throttled` as an integer, or None where there is no vcgencmd."""
    try:
        match = _THROTTLED.search(run_command(["vcgencmd", "get_throttled"]))
    except CommandFailed:
        return None
    return int(match.group(1), 16) if match else None


def temperature_c() -> float | None:
    """The hottest thermal zone in degrees C, else `vcgencmd measure_temp`, else None."""
    zones = sorted(device_path(THERMAL).glob("thermal_zone*/temp"))
    readings = [value / MILLI for zone in zones if (value := read_int(zone)) is not None]
    if readings:
        return max(readings)
    try:
        match = _TEMP.search(run_command(["vcgencmd", "measure_temp"]))
    except CommandFailed:
        return None
    return float(match.group(1)) if match else None


def throttle_count() -> int | None:
    """x86: the sum of every CPU's core and package thermal-throttle counters, or None."""
    files = sorted(device_path(cpufreq.CPU_DIR).glob("cpu[0-9]*/thermal_throttle/*_count"))
    counts = [value for path in files if (value := read_int(path)) is not None]
    return sum(counts) if counts else None


@dataclass(frozen=True)
class ThermalState:
    """One reading: temperature (C), get_throttled bits, throttle count, frequency (kHz);
    each None where the device does not expose it."""

    temp_c: float | None
    throttled_bits: int | None
    throttle_count: int | None
    freq_khz: int | None

    @classmethod
    def read(cls) -> ThermalState:
        """Read everything now."""
        return cls(temperature_c(), read_throttled(), throttle_count(), cpufreq.current_khz())


def throttle_reason(before: ThermalState, after: ThermalState) -> str | None:
    """Why the stretch between two readings was throttled (flags true at either end, sticky
    flags that appeared, throttle counters that rose), or None. The Pi's sticky flags cannot
    show a new event when they were already set before: then only the "now" flags count."""
    reasons: list[str] = []
    if after.throttled_bits is not None:
        now = (after.throttled_bits | (before.throttled_bits or 0)) & NOW_MASK
        new = after.throttled_bits >> STICKY_SHIFT & ~((before.throttled_bits or 0)
                                                        >> STICKY_SHIFT)
        bits = now | (new & NOW_MASK) << STICKY_SHIFT
        if bits:
            reasons.append(f"get_throttled=0x{after.throttled_bits:x} ("
                           f"{', '.join(decode_throttled(bits))})")
    if before.throttle_count is not None and after.throttle_count is not None \
            and after.throttle_count > before.throttle_count:
        reasons.append(f"CPU thermal throttle count rose by "
                       f"{after.throttle_count - before.throttle_count}")
    return "; ".join(reasons) or None


def is_throttle_readable(state: ThermalState) -> bool:
    """Whether this device tells at all if it throttled (else the row's throttled is empty)."""
    return state.throttled_bits is not None or state.throttle_count is not None
