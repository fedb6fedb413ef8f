"""Does the harness's timing distort what it measures? (a benchmark, not a test)

Compares, on the default model and ONNX Runtime with 1 thread:
  * harness: `harness run --backends onnxruntime --profile default`, median latency;
  * bare:    a plain `session.run` loop in this process on the same inputs and the same
             session options, each call timed with time.perf_counter (median), and the
             whole loop timed once (mean per call).
Rounds alternate harness and bare so drift on a shared machine hits both alike.

    python benchmarks/timing_overhead.py [--rounds 3] [--calls 3000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_rnn_harness.bundle.reader import Bundle, load_reference
from edge_rnn_harness.core.results import read_results


def bare_loop_ms(model_path: Path, x: np.ndarray, calls: int) -> tuple[float, float]:
    """(median of per-call times, mean from one timing of the whole loop), in ms."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model_path), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"x": x}
    for _ in range(300):
        session.run(None, feed)
    per_call = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, feed)
        per_call.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feed)
    block = (time.perf_counter() - start) / calls
    return statistics.median(per_call) * 1e3, block * 1e3


def harness_median_ms(out: Path, bundle_dir: Path) -> float:
    """Median latency of one default-profile harness run of onnxruntime."""
    subprocess.run([sys.executable, "-m", "edge_rnn_harness", "run", "--backends", "onnxruntime",
                    "--out", str(out), "--bundle", str(bundle_dir)],
                   check=True, capture_output=True)
    return float(read_results(out).loc[0, "latency_median_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bundle"
        subprocess.run([sys.executable, "-m", "edge_rnn_harness", "export", "--model", "lstm",
                        "--backends", "onnxruntime", "--out", str(root)],
                       check=True, capture_output=True)
        bundle = Bundle.load(root)
        artifact = bundle.path(bundle.artifact("lstm", "fp32", "onnxruntime").artifact)
        x = load_reference(bundle.path(bundle.models["lstm"].files["reference"]))[0][0]["x"]
        harness_ms, bare_median_ms, bare_block_ms = [], [], []
        for index in range(args.rounds):
            harness_ms.append(harness_median_ms(Path(tmp) / f"r{index}.csv", root))
            median, block = bare_loop_ms(artifact, x, args.calls)
            bare_median_ms.append(median)
            bare_block_ms.append(block)
            print(f"round {index + 1}: harness median {harness_ms[-1] * 1e3:.2f} us, "
                  f"bare per-call median {median * 1e3:.2f} us, bare loop mean "
                  f"{block * 1e3:.2f} us")
    h, b = statistics.median(harness_ms), statistics.median(bare_median_ms)
    print(f"median over rounds: harness {h * 1e3:.2f} us, bare {b * 1e3:.2f} us, "
          f"harness/bare = {h / b:.3f}; bare loop mean {statistics.median(bare_block_ms) * 1e3:.2f} us")


if __name__ == "__main__":
    main()
