"""Raspberry Pi 5: the PMIC's own rail monitors, read with `vcgencmd pmic_read_adc`, which
prints each rail's current (`NAME_A current(N)=0.123A`) and voltage (`NAME_V volt(N)=0.8V`).
Power is the sum of V x I over the rails that have both. That covers the board's PMIC rails
only: not the 5 V input's conversion losses, USB devices or HATs."""

from __future__ import annotations

import re

from edge_rnn_harness.board.devicefs import CommandFailed, run_command
from edge_rnn_harness.board.power.base import MeterUnavailable, SampledMeter

COMMAND = ["vcgencmd", "pmic_read_adc"]
_READING = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+)[AV]\s*$")


def rail_watts(output: str) -> dict[str, float]:
    """Watts per rail from `pmic_read_adc` output; rails without both V and A are left out.

    Raises ValueError when the output has no paired rail at all.
    """
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in output.splitlines():
        match = _READING.match(line)
        if match:
            rail, unit, value = match.groups()
            (amps if unit == "A" else volts)[rail] = float(value)
    paired = sorted(set(amps) & set(volts))
    if not paired:
        raise ValueError("vcgencmd pmic_read_adc printed no rail with both volts and amps")
    return {rail: volts[rail] * amps[rail] for rail in paired}


class Pi5Meter(SampledMeter):
    """Sum of the Pi 5 PMIC rails' V x I, polled through vcgencmd."""

    interval_s = 0.2  # one vcgencmd call takes tens of milliseconds

    def __init__(self) -> None:
        try:
            rails = rail_watts(run_command(COMMAND))
        except (CommandFailed, ValueError) as error:
            raise MeterUnavailable(f"pi5: {error}") from None
        self.name = "pi5:pmic_read_adc"
        self.covers = (f"the Raspberry Pi 5 PMIC rails ({len(rails)} rails: "
                       f"{', '.join(rails)}); not the 5 V input's conversion losses, USB "
                       f"devices or HATs")

    def read(self) -> float:
        """Watts summed over the paired rails."""
        return sum(rail_watts(run_command(COMMAND)).values())
