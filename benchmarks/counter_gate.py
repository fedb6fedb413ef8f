"""The instruction-count gate's error rates: N+1 runs of lstm and N runs of lstm-h65 (hidden
65 instead of 64: about 4% more instructions on onnxruntime), each `harness run --counters valgrind
--profile quick` on one backend, then `harness gate` on N identical pairs (lstm run i
against lstm run i+1) and N changed pairs (lstm run i against lstm-h65 run i), judging the
instruction count alone (every other threshold off).

    python benchmarks/counter_gate.py [--pairs 20] [--backend onnxruntime] [--out DIR]

Prints each pair's exit code and change, then the counts: identical pairs should pass
(exit 0) and changed pairs be regressions (exit 1). Also prints the spread of the
instruction count over the lstm runs (max-min over the median) and the seconds the
callgrind child took per case (from the run's wall time minus a run without counters).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

HARNESS = [sys.executable, "-m", "edge_rnn_harness"]
OFF = ["--max-slowdown", "off", "--max-memory-growth", "off", "--max-size-growth", "off",
       "--max-rmse-growth", "off", "--max-energy-growth", "off"]


def measure(model: str, backend: str, out: Path, counters: bool = True) -> float:
    """One quick run; its wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([*HARNESS, "run", "--model", model, "--backends", backend,
                           "--profile", "quick", "--out", str(out),
                           *(["--counters", "valgrind"] if counters else [])],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"counter_gate: run failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def instructions(path: Path) -> float:
    """The run's instructions per inference."""
    with path.open() as handle:
        return float(next(csv.DictReader(handle))["instructions_per_inf"])


def gate(base: Path, cand: Path) -> tuple[int, str]:
    """The gate's exit code and its first line."""
    done = subprocess.run([*HARNESS, "gate", str(base), str(cand), "--rename-model",
                           "lstm-h65=lstm", *OFF], capture_output=True, text=True,
                          check=False)
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--out", type=Path, default=Path("results/counter-gate"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plain = measure("lstm", args.backend, args.out / "plain.csv", counters=False)
    walls = []
    for index in range(args.pairs + 1):
        walls.append(measure("lstm", args.backend, args.out / f"lstm{index}.csv"))
        if index < args.pairs:
            walls.append(measure("lstm-h65", args.backend, args.out / f"h65-{index}.csv"))
        print(f"run {index}: lstm {instructions(args.out / f'lstm{index}.csv'):,.0f}",
              flush=True)
    counts = [instructions(args.out / f"lstm{i}.csv") for i in range(args.pairs + 1)]
    outcomes = {"identical": [], "changed": []}
    for index in range(args.pairs):
        same = gate(args.out / f"lstm{index}.csv", args.out / f"lstm{index + 1}.csv")
        changed = gate(args.out / f"lstm{index}.csv", args.out / f"h65-{index}.csv")
        outcomes["identical"].append(same[0])
        outcomes["changed"].append(changed[0])
        print(f"pair {index}: identical exit {same[0]}; +hidden exit {changed[0]}", flush=True)
    median = statistics.median(counts)
    growth = statistics.median(instructions(args.out / f"h65-{i}.csv")
                               for i in range(args.pairs)) / median - 1
    print(f"lstm instructions/inf over {len(counts)} runs: median {median:,.0f}, spread "
          f"{(max(counts) - min(counts)) / median:.4%}; lstm-h65 {growth:+.2%}")
    for kind, codes in outcomes.items():
        print(f"{kind}: exit 0 {codes.count(0)}, exit 1 {codes.count(1)}, exit 2 "
              f"{codes.count(2)} of {len(codes)}")
    print(f"a quick run with the callgrind child: {statistics.median(walls):.1f} s median; "
          f"without counters {plain:.1f} s: the child costs about "
          f"{statistics.median(walls) - plain:.1f} s per case")


if __name__ == "__main__":
    main()
