"""The device half's costs: how heavy the parent of `harness run --bundle` is and how soon
it starts measuring, and the wall time of a bundle run against a cached host run.

    python benchmarks/bundle_run.py [--model lstm] [--rounds 2] [--profile default]

Prints: the export time of every backend; per round, alternating, the wall time of
`harness run` (host, artifacts cached) and of `harness run --bundle` (same profile); and
for each bundle run the parent's peak resident set (VmHWM, read from /proc while it runs)
and the time from the command's start to its first case's pyperf manager process.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HARNESS = [sys.executable, "-m", "edge_rnn_harness"]


def _vmhwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watched_run(args: list[str]) -> tuple[float, float, float]:
    """(wall s, parent peak RSS MiB, s until the first case's manager process started)."""
    start = time.perf_counter()
    proc = subprocess.Popen(HARNESS + args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    peak_mb, first_case_s = 0.0, float("nan")
    while proc.poll() is None:
        peak_mb = max(peak_mb, _vmhwm_mb(proc.pid) or 0.0)
        if math.isnan(first_case_s):
            try:
                if any("edge_rnn_harness.measure.worker" in " ".join(c.cmdline())
                       for c in parent.children(recursive=True)):
                    first_case_s = time.perf_counter() - start
            except psutil.Error:
                pass
        time.sleep(0.01)
    if proc.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} exited {proc.returncode}")
    return time.perf_counter() - start, peak_mb, first_case_s


def main() -> None:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        bundle, cache = tmp / "bundle", tmp / "cache"
        start = time.perf_counter()
        subprocess.run(HARNESS + ["export", "--model", args.model, "--backends", "all",
                                  "--out", str(bundle)], check=True, capture_output=True)
        print(f"harness export --model {args.model} --backends all: "
              f"{time.perf_counter() - start:.1f} s")
        subprocess.run(HARNESS + ["run", "--model", args.model, "--profile", "quick",
                                  "--bundle-dir", str(cache), "--out", str(tmp / "warm.csv")],
                       check=True, capture_output=True)
        host, device = [], []
        for index in range(args.rounds):
            wall, _, _ = watched_run(["run", "--model", args.model, "--profile", args.profile,
                                      "--bundle-dir", str(cache),
                                      "--out", str(tmp / f"h{index}.csv")])
            host.append(wall)
            wall_b, peak_mb, first_s = watched_run(
                ["run", "--bundle", str(bundle), "--profile", args.profile,
                 "--out", str(tmp / f"b{index}.csv")])
            device.append(wall_b)
            print(f"round {index + 1}: host run (cached) {wall:.1f} s, bundle run "
                  f"{wall_b:.1f} s; bundle run parent peak RSS {peak_mb:.0f} MiB, first case "
                  f"started after {first_s:.2f} s")
        print(f"median: host run (cached) {statistics.median(host):.1f} s, bundle run "
              f"{statistics.median(device):.1f} s, ratio bundle/host "
              f"{statistics.median(device) / statistics.median(host):.2f}")


if __name__ == "__main__":
    main()
