"""How fast the run store answers with a long history: N runs generated from a real
results CSV (its rows copied with new run_ids, timestamps an hour apart, and every figure
multiplied by log-normal noise of `--noise` plus a step of `--step` from the middle run on),
added to a fresh store, then `harness history trend` and `harness gate --history STORE`
timed as a user runs them (the whole command, Python start included) and in-process.

    python benchmarks/history_store.py RUN.csv [--runs 1000] [--repeat 5] [--store DIR]

Prints the size of the store, the time to add the runs, and the median and range of each
query in seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.history import compare_history
from edge_rnn_harness.analysis.store import open_store
from edge_rnn_harness.analysis.trend import trend_frame
from edge_rnn_harness.core.metrics import METRICS
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.stats import raw_values

_NUMERIC = [m.column for m in METRICS if m.dtype == "float"]


def generated_runs(real: pd.DataFrame, count: int, noise: float,
                   step: float) -> list[pd.DataFrame]:
    """`count` copies of the real run, each its own run_id an hour apart, perturbed."""
    rng = np.random.default_rng(0)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    runs = []
    for index in range(count):
        frame = real.copy()
        factor = np.exp(rng.normal(0, noise, len(frame))) * (1 + step * (index >= count // 2))
        for column in _NUMERIC:
            frame[column] = frame[column] * factor
        frame["run_id"] = f"gen{index:05d}"
        frame["timestamp"] = (start + dt.timedelta(hours=index)).isoformat()
        runs.append(frame)
    return runs


def timed(command: list[str]) -> float:
    """Wall seconds of one command (which must succeed or say why)."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1, 2) or "Traceback" in result.stderr:
        raise SystemExit(f"history_store: {' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def spread(samples: list[float]) -> str:
    """median (min-max) in seconds."""
    return f"{statistics.median(samples):.3f} s ({min(samples):.3f}-{max(samples):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--step", type=float, default=0.10)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--keep", action="store_true",
                        help="reuse the --store folder's runs when it has them")
    args = parser.parse_args()
    real = read_results(args.results)
    values = raw_values(args.results.with_suffix(".json"))
    folder = args.store or Path(tempfile.mkdtemp(prefix="history-store-"))
    runs = generated_runs(real, args.runs, args.noise, args.step)
    if args.keep and (folder / "store.json").exists():
        store, added_s = open_store(folder), float("nan")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        store = open_store(folder, create=True)
        start = time.perf_counter()
        for frame in runs:
            store.add(frame, values)
        added_s = time.perf_counter() - start
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    print(f"store: {args.runs} runs x {len(real)} rows, {size_mb:.1f} MiB, added in "
          f"{added_s:.1f} s ({added_s / args.runs * 1e3:.1f} ms per run)")
    ok = real[real["status"] == "ok"].iloc[0]
    cand = args.results.parent / f".{args.results.stem}-candidate.csv"
    last = runs[-1]
    last[last["status"] == "ok"].assign(run_id="candidate").to_csv(cand, index=False)
    harness = [sys.executable, "-m", "edge_rnn_harness"]
    trend_cli = [timed([*harness, "history", "trend", str(folder), "--model", ok["model"],
                        "--backend", ok["backend"]]) for _ in range(args.repeat)]
    gate_cli = [timed([*harness, "gate", "--history", str(folder), str(cand)])
                for _ in range(args.repeat)]
    trend_in, gate_in = [], []
    for _ in range(args.repeat):
        mark = time.perf_counter()
        trend_frame(store.rows("WHERE model = ? AND backend = ?", [ok["model"], ok["backend"]]),
                    "latency_median_ms")
        trend_in.append(time.perf_counter() - mark)
        mark = time.perf_counter()
        compare_history(store.rows(), read_results(cand))
        gate_in.append(time.perf_counter() - mark)
    cand.unlink()
    print(f"history trend (command): {spread(trend_cli)}")
    print(f"gate --history STORE (command): {spread(gate_cli)}")
    print(f"history trend (in-process query + change points): {spread(trend_in)}")
    print(f"gate --history STORE (in-process): {spread(gate_in)}")
    if args.store is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
