"""`--power` specs: which meter a run uses. `auto` tries the Pi 5 PMIC, a Jetson's INA3221,
any hwmon power sensor, then RAPL, and takes the first that works; with none, there is no
power figure (never zero, never an estimate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge_rnn_harness.board.power.base import Meter, MeterUnavailable
from edge_rnn_harness.board.power.csvlog import CsvLogMeter
from edge_rnn_harness.board.power.hwmon import hwmon_meter, jetson_meter
from edge_rnn_harness.board.power.pi5 import Pi5Meter
from edge_rnn_harness.board.power.rapl import RaplMeter

POWER_SPEC_HELP = ("auto (default: the first meter that works here, else none), none, rapl, "
                   "hwmon[:NAME_OR_PATH], pi5, jetson, csv:PATH (an external meter's log "
                   "with timestamp and power_w, or voltage_v and current_a)")

_FIXED: dict[str, Callable[[], Meter]] = {
    "pi5": Pi5Meter, "jetson": jetson_meter, "hwmon": lambda: hwmon_meter(None),
    "rapl": RaplMeter,
}
AUTO_ORDER = ("pi5", "jetson", "hwmon", "rapl")


def parse_power_spec(spec: str) -> str:
    """`spec` unchanged if it is a valid --power value; ValueError (one line) if not."""
    kind, colon, argument = spec.partition(":")
    if kind in ("auto", "none", *_FIXED) and not colon:
        return spec
    if kind in ("hwmon", "csv") and argument:
        return spec
    raise ValueError(f"--power {spec!r} is not one of: {POWER_SPEC_HELP}")


def _first_working() -> tuple[str, Meter | None, str]:
    """`auto`: (name, meter, "") of the first meter in AUTO_ORDER that works here, else
    ("none", None, every meter's reason)."""
    reasons = []
    for name in AUTO_ORDER:
        try:
            return name, _FIXED[name](), ""
        except MeterUnavailable as error:
            reasons.append(str(error))
    return "none", None, "no power meter here (" + "; ".join(reasons) + ")"


def resolve_power(spec: str) -> tuple[str, str]:
    """The concrete spec `spec` comes to here and a note: `auto` becomes the first meter
    that works (or "none" and why); a named meter is checked to work. Raises ValueError
    for a bad spec, MeterUnavailable when a named meter does not work on this device."""
    if parse_power_spec(spec) == "auto":
        name, _, note = _first_working()
        return name, note
    open_meter(spec)
    return spec, ""


def open_meter(spec: str) -> tuple[Meter | None, str]:
    """The meter `spec` names and "", or (None, why none) for `none` and for `auto` with no
    meter here. Raises MeterUnavailable when a named meter does not work on this device."""
    kind, _, argument = parse_power_spec(spec).partition(":")
    if kind == "auto":
        _, meter, note = _first_working()
        return meter, note
    if kind == "none":
        return None, "--power none"
    if kind == "csv":
        return CsvLogMeter(Path(argument)), ""
    if kind == "hwmon" and argument:
        return hwmon_meter(argument), ""
    return _FIXED[kind](), ""
