"""Power meters: where a device's power figure comes from (RAPL, hwmon INA sensors, the
Raspberry Pi 5 PMIC, Jetson INA3221, an external meter's CSV log). Each meter is a context
manager around the energy step's loop (see `edge_rnn_harness.measure.energy`), never inside a
backend; `open_meter` turns a `--power` spec into one."""

from edge_rnn_harness.board.power.base import (
    MAX_PLAUSIBLE_W,
    Meter,
    MeterUnavailable,
    PowerWindow,
    check_watts,
)
from edge_rnn_harness.board.power.choose import (
    POWER_SPEC_HELP,
    open_meter,
    parse_power_spec,
    resolve_power,
)

__all__ = ["MAX_PLAUSIBLE_W", "POWER_SPEC_HELP", "Meter", "MeterUnavailable", "PowerWindow",
           "check_watts", "open_meter", "parse_power_spec", "resolve_power"]
