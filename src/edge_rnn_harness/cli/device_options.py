"""`harness run`'s device options: the power meter and energy step, cool-down and start
temperature, the DVFS sweep (CPU frequency and governor), the counters and the target
precision. All are checked on the device before any case runs: a meter that does not work,
a temperature that cannot be read, a cpufreq file that cannot be written or a missing
valgrind is one line and exit 2."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from edge_rnn_harness.board.cpufreq import CpuPinning, PinningError
from edge_rnn_harness.board.power import POWER_SPEC_HELP, MeterUnavailable, resolve_power
from edge_rnn_harness.board.thermal import temperature_c
from edge_rnn_harness.cli.options import float_arg
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.measure.energy import DEFAULT_IDLE_S, DEFAULT_LOOP_S

#: longest wait or energy step an option may ask for, per case (seconds)
MAX_STEP_S = 3600.0


def seconds_arg(text: str) -> float:
    return float_arg(text, "a number of seconds", lambda v: 0 <= v <= MAX_STEP_S,
                     f"must be a number of seconds from 0 to {MAX_STEP_S:g}")


def celsius_arg(text: str) -> float:
    return float_arg(text, "a temperature in C", lambda v: -50 < v < 150,
                     "is not a CPU temperature in C (-50..150)")


def frequencies_khz_arg(text: str) -> list[int]:
    values = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) <= 0:
            raise argparse.ArgumentTypeError(f"{part!r} is not a frequency in kHz (e.g. "
                                             f"600000 for 600 MHz)")
        values.append(int(part))
    return list(dict.fromkeys(values))


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--power, --energy-seconds, --idle-seconds, --cooldown, --max-start-temp, --cpu-freq,
    --governor."""

    group = parser.add_argument_group("power, thermal and CPU frequency (on the device)")
    group.add_argument("--power", default="auto", metavar="METER",
                       help=f"power meter for the energy step after each measured case: "
                            f"{POWER_SPEC_HELP}. With no meter, power cells stay empty")
    group.add_argument("--energy-seconds", type=seconds_arg, default=DEFAULT_LOOP_S,
                       metavar="S", help="energy step: run the model back to back this long "
                       f"under the meter (default {DEFAULT_LOOP_S:g}); starting the step's "
                       f"process and loading the model come out of it (at most half), so a "
                       f"case takes about idle + energy seconds longer")
    group.add_argument("--idle-seconds", type=seconds_arg, default=DEFAULT_IDLE_S, metavar="S",
                       help="energy step: measure idle power this long first, for the net "
                       f"energy (default {DEFAULT_IDLE_S:g})")
    group.add_argument("--cooldown", type=seconds_arg, default=0.0, metavar="SECONDS",
                       help="wait this long before each case (default 0)")
    group.add_argument("--max-start-temp", type=celsius_arg, default=None, metavar="C",
                       help="before each case, wait until the hottest thermal zone is at or "
                            "below C (up to 600 s, else the case is skipped)")
    group.add_argument("--cpu-freq", type=frequencies_khz_arg, default=None,
                       metavar="KHZ[,KHZ...]",
                       help="DVFS sweep: run every case at each frequency, pinned through "
                            "cpufreq sysfs (needs root); the original settings are restored "
                            "at exit, on Ctrl-C and after a crash")
    group.add_argument("--governor", default=None, metavar="NAME",
                       help="cpufreq governor to set for the run (e.g. performance); "
                            "restored at exit")


#: what --counters takes
COUNTERS = ("valgrind", "perf")


def counter_names(text: str) -> list[str]:
    """--counters: a comma-separated subset of COUNTERS."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in COUNTERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(COUNTERS)}")
    return names


def precision_pct(text: str) -> float:
    """--target-precision: a percentage above 0 and at most 50."""
    return float_arg(text, "a precision in percent", lambda v: 0 < v <= 50,
                     "must be above 0 and at most 50")


def add_counter_args(parser: argparse.ArgumentParser) -> None:
    """--counters, --target-precision and --max-time."""
    group = parser.add_argument_group("counters and precision (on the device)")
    group.add_argument("--counters", type=counter_names, default=None, metavar="LIST",
                       help="also count, per case: valgrind: instructions per inference "
                            "under callgrind (only the timed calls; cache misses and "
                            "estimated cycles from its cache simulation; needs valgrind); "
                            "perf: this process's perf events in the timed calls "
                            "(instructions, cycles, cache and branch misses where the "
                            "kernel exposes a PMU; task-clock, page faults, context "
                            "switches everywhere)")
    group.add_argument("--target-precision", type=precision_pct, default=None,
                       metavar="PCT",
                       help="keep adding worker processes to a case until its median's "
                            "95%% interval is within +-PCT%% of it (or --max-time is spent); "
                            "the row records the precision reached")
    group.add_argument("--max-time", type=seconds_arg, default=120.0, metavar="SECONDS",
                       help="with --target-precision: the most a case may measure "
                            "(default 120)")


def device_config(request: Any) -> dict[str, Any]:
    """RunConfig fields for the device options of a run request, checked here;
    UsageError (one line) for
    what cannot work on this device."""

    try:
        power, note = resolve_power(request.power)
    except (ValueError, MeterUnavailable) as error:
        raise UsageError(f"harness run: {error}") from None
    if power != "none" and request.energy_seconds <= 0:
        raise UsageError("harness run: --energy-seconds must be > 0 with a power meter "
                         "(or give --power none)")
    if request.max_start_temp is not None and temperature_c() is None:
        raise UsageError("harness run: --max-start-temp needs a temperature sensor; this "
                         "device has no thermal zone and no vcgencmd")
    pinning = None
    if request.cpu_freq or request.governor:
        try:
            pinning = CpuPinning(request.cpu_freq or [], request.governor)
        except PinningError as error:
            raise UsageError(f"harness run: {error}") from None
    if "valgrind" in (request.counters or ()) and shutil.which("valgrind") is None:
        raise UsageError("harness run: --counters valgrind needs valgrind on this device "
                         "(apt-get install valgrind)")
    return {"power": power, "power_note": note, "idle_s": request.idle_seconds,
            "loop_s": request.energy_seconds, "cooldown_s": request.cooldown,
            "max_start_temp_c": request.max_start_temp, "pinning": pinning,
            "counters": tuple(request.counters or ()),
            "target_precision_pct": request.target_precision,
            "max_time_s": request.max_time}
