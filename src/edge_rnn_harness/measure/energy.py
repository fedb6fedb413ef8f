"""Child program: the energy step of a case, separate from pyperf's timing (a sensor
updates every few ms to 1 s; one inference takes ~25 us, so a sensor cannot be read per
timed value):

  python -P -m edge_rnn_harness.measure.energy JOB.json --power SPEC --idle-seconds S
      --loop-seconds S -o OUT.json

prepares the case's model, warms it up, measures idle power for --idle-seconds (the model
loaded, nothing running), then runs it back to back for --loop-seconds while the meter
samples on a background thread. The runner gives it --ends-at (its start + idle + loop
seconds): the time spent starting the process and preparing the model comes out of the
loop (never more than half of it), so the step costs a case about what it is configured
to. Gross energy per inference (what the battery pays) is mean power x loop time /
inferences; net subtracts the idle power (what inference adds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_rnn_harness.board.power import MeterUnavailable, check_watts, open_meter
from edge_rnn_harness.bundle.reader import load_reference
from edge_rnn_harness.core.errors import error_line
from edge_rnn_harness.core.launcher import exit_without_teardown
from edge_rnn_harness.measure.worker import WorkerJob, open_for_timing

DEFAULT_IDLE_S = 2.0
DEFAULT_LOOP_S = 4.0
WARMUP_CALLS = 20
#: the loop is never cut below this share of --energy-seconds to keep the step on time
MIN_LOOP_SHARE = 0.5
MJ_PER_J = 1000.0


@dataclass(frozen=True)
class EnergyResult:
    """What the energy step measured (watts, seconds; None where the meter gave nothing)."""

    meter: str
    covers: str
    idle_w: float | None
    busy_w: float | None
    samples: int
    loop_s: float
    inferences: int
    error: str | None

    def _implausible(self) -> str | None:
        """Why the idle or busy power is no figure (base.check_watts), or None."""
        for what, watts in (("idle power", self.idle_w), ("busy power", self.busy_w)):
            if watts is not None:
                try:
                    check_watts(watts, what)
                except ValueError as error:
                    return f"{self.meter}: {error}"
        return None

    def row_fields(self) -> dict[str, Any]:
        """The results columns: power and energy per inference (mJ), or empty cells and
        the meter's failure as the row's reason."""
        fields: dict[str, Any] = {"power_meter": self.meter, "power_covers": self.covers}
        problem = self.error or self._implausible()
        if problem or self.busy_w is None or self.idle_w is None or not self.inferences:
            return {**fields, "reason": f"power: {problem or 'no figure from the meter'}"}
        seconds_per_inf = self.loop_s / self.inferences
        return {**fields, "power_idle_w": self.idle_w, "power_mean_w": self.busy_w,
                "power_samples": self.samples, "energy_seconds": self.loop_s,
                "energy_inferences": self.inferences,
                "energy_per_inf_mj": self.busy_w * seconds_per_inf * MJ_PER_J,
                "energy_net_per_inf_mj": (self.busy_w - self.idle_w) * seconds_per_inf
                * MJ_PER_J}


def loop_seconds(loop_s: float, ends_at: float | None) -> float:
    """How long the loop runs: `loop_s`, shortened so the step ends by `ends_at`
    (time.monotonic, system-wide) when starting the process and preparing the model took
    time, but never below MIN_LOOP_SHARE of `loop_s`."""
    if ends_at is None:
        return loop_s
    return min(loop_s, max(loop_s * MIN_LOOP_SHARE, ends_at - time.monotonic()))


def measure_energy(run: Any, fed: object, meter: Any, idle_s: float, loop_s: float,
                   ends_at: float | None = None, interval_s: float = 0.0) -> EnergyResult:
    """Idle power for `idle_s`, then `run(fed)` under `meter` for `loop_s` seconds (or
    until `ends_at`, see `loop_seconds`): back to back, or for a paced case each call after
    sleeping `interval_s`, so its energy per forecast includes the idle between them."""
    for _ in range(WARMUP_CALLS):
        run(fed)
    with meter.measure() as idle:
        time.sleep(idle_s)
    inferences = 0
    with meter.measure() as busy:
        deadline = time.perf_counter() + loop_seconds(loop_s, ends_at)
        while time.perf_counter() < deadline:
            if interval_s:
                time.sleep(interval_s)
            run(fed)
            inferences += 1
    return EnergyResult(meter.name, meter.covers, idle.mean_w, busy.mean_w, busy.samples,
                        busy.seconds, inferences, idle.error or busy.error)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the energy step's child process."""

    parser = argparse.ArgumentParser(prog="python -m edge_rnn_harness.measure.energy")
    parser.add_argument("job", type=Path)
    parser.add_argument("--power", required=True)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_S)
    parser.add_argument("--loop-seconds", type=float, default=DEFAULT_LOOP_S)
    parser.add_argument("--ends-at", type=float, default=None,
                        help="time.monotonic() by which the step should end")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="a paced case's sleep before each call (s)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        job = WorkerJob.load(args.job)
        meter, why_none = open_meter(args.power)
        if meter is None:
            raise MeterUnavailable(why_none)
        windows = load_reference(Path(job.reference))
        model, fed = open_for_timing(job, windows)
        result = measure_energy(model.run, fed, meter, args.idle_seconds, args.loop_seconds,
                                args.ends_at, args.interval)
        model.close()
    except Exception as error:  # noqa: BLE001 -- any failure is this step's reason
        traceback.print_exc()
        print(error_line(error), file=sys.stderr)
        return 1
    args.output.write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
