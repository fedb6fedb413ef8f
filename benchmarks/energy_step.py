"""What the energy step costs and whether it changes the latency row.

    python benchmarks/energy_step.py [--pairs 4] [--backends onnxruntime,openvino]
                                     [--profile default]

Exports the default model once into a bundle, then runs `harness run --bundle` in pairs,
alternating the order within each pair (ABBA...): once with `--power none` and once with a
fake INA219 reading a constant 2.5 W (HARNESS_SYSFS_ROOT pointed at a temporary sysfs
tree), so the energy step runs with its default durations (2 s idle + 4 s loop). Prints, per
pair and backend, the median latency with the step on / off, and the wall time of each run;
then the median ratio per backend and the median growth of wall time per case against the
step's configured duration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HARNESS = [sys.executable, "-m", "edge_rnn_harness"]
CONFIGURED_S = 2.0 + 4.0  # the energy step's default idle + loop seconds


def _run(bundle: Path, out: Path, backends: str, profile: str, env: dict[str, str],
         power: str) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    subprocess.run([*HARNESS, "run", "--bundle", str(bundle), "--backends", backends,
                    "--profile", profile, "--power", power, "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall_s = time.perf_counter() - start
    return wall_s, pd.read_csv(out).set_index("backend")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--backends", default="onnxruntime,openvino")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hwmon = tmp / "root/sys/class/hwmon/hwmon0"
        hwmon.mkdir(parents=True)
        (hwmon / "name").write_text("ina219\n")
        (hwmon / "power1_input").write_text("2500000\n")
        bundle = tmp / "bundle"
        subprocess.run([*HARNESS, "export", "--backends", args.backends, "--out", str(bundle)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sides = {"off": ({**os.environ}, "none"),
                 "on": ({**os.environ, "HARNESS_SYSFS_ROOT": str(tmp / "root")}, "hwmon")}
        backends = args.backends.split(",")
        ratios: dict[str, list[float]] = {b: [] for b in backends}
        growth_s: list[float] = []
        for pair in range(args.pairs):
            order = ("off", "on") if pair % 2 == 0 else ("on", "off")
            measured = {side: _run(bundle, tmp / f"{side}.csv", args.backends, args.profile,
                                   *sides[side]) for side in order}
            growth_s.append((measured["on"][0] - measured["off"][0]) / len(backends))
            for backend in backends:
                on = measured["on"][1].loc[backend, "latency_median_ms"]
                off = measured["off"][1].loc[backend, "latency_median_ms"]
                energy = measured["on"][1].loc[backend, "energy_per_inf_mj"]
                ratios[backend].append(on / off)
                print(f"pair {pair + 1} ({order[0]} first) {backend:12s} median on "
                      f"{on:.5f} ms / off {off:.5f} ms = {on / off:.4f}; energy "
                      f"{energy:.4f} mJ/inf")
            print(f"pair {pair + 1}: wall on {measured['on'][0]:.1f} s, off "
                  f"{measured['off'][0]:.1f} s")
        for backend, values in ratios.items():
            print(f"{backend}: median latency ratio on/off {statistics.median(values):.4f} "
                  f"over {len(values)} pairs (min {min(values):.4f}, max {max(values):.4f})")
        print(f"wall time added per case: median {statistics.median(growth_s):.2f} s "
              f"(configured energy step {CONFIGURED_S:g} s)")


if __name__ == "__main__":
    main()
