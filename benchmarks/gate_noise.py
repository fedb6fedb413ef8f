"""Does the gate stay quiet on noise and catch a real slowdown? (a benchmark, not a test)

Noise: run the same build twice (default profile, onnxruntime + openvino) in --pairs
pairs and gate each pair with the default thresholds. Signal: gate the default `lstm`
(baseline) against `lstm-x4` (4x the hidden size) renamed to the same case key.

    python benchmarks/gate_noise.py [--pairs 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BACKENDS = "onnxruntime,openvino"


def harness(*args: str) -> subprocess.CompletedProcess:
    """Run the harness CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "edge_rnn_harness", *args], capture_output=True,
                          text=True, check=False)


def measure(out: Path, bundle: Path, model: str = "lstm") -> Path:
    """One default-profile run; returns the CSV."""
    result = harness("run", "--backends", BACKENDS, "--model", model, "--out", str(out),
                     "--bundle-dir", str(bundle))
    if result.returncode != 0:
        raise SystemExit(f"run failed: {result.stderr}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        passes, largest_pct = 0, 0.0
        for index in range(args.pairs):
            base = measure(root / f"a{index}.csv", root / "bundle")
            cand = measure(root / f"b{index}.csv", root / "bundle")
            gate = harness("gate", str(base), str(cand))
            passes += gate.returncode == 0
            rows = json.loads(harness("compare", str(base), str(cand), "--format",
                                      "json").stdout)
            changes = [abs(r["change_pct"]) for r in rows
                       if r["metric"] == "latency_median_ms" and r["change_pct"] is not None]
            largest_pct = max([largest_pct, *changes])
            print(f"pair {index + 1}: exit {gate.returncode}, largest median change "
                  f"{max(changes):.1f}%: {gate.stdout.strip()}", flush=True)
        print(f"noise: {passes}/{args.pairs} pairs pass; largest median latency change "
              f"{largest_pct:.1f}%")
        slow = measure(root / "x4.csv", root / "bundle", model="lstm-x4")
        gate = harness("gate", str(root / "a0.csv"), str(slow), "--rename-model",
                       "lstm-x4=lstm", "--allow-mismatch")
        print(f"signal: exit {gate.returncode}:\n{gate.stdout.strip()}")


if __name__ == "__main__":
    main()
