"""Percentile intervals (order statistics), the stability verdict per case, and
--target-precision: what a row says about how far its numbers can be trusted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_rnn_harness.core.percentiles import (
    interval_fields,
    median_precision_pct,
    min_values,
    order_ranks,
    percentile_ci,
)
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.stability import (
    DRIFTING,
    MULTIMODAL,
    NOISY_TAIL,
    STABLE,
    stability,
)
from tests.conftest import ROOT, run_cli


def test_order_statistic_intervals_are_exact_and_cover() -> None:
    assert order_ranks(200, 50) == (86, 115)
    assert min_values(99) == 368 and order_ranks(368, 99) and order_ranks(367, 99) is None
    assert min_values(99.9) == 3688
    rng = np.random.default_rng(0)
    truth = np.log(10)  # the exponential's 90th percentile
    covered = sum(low <= truth <= high for low, high in (
        percentile_ci(rng.exponential(size=200), 90) for _ in range(2000)))
    assert 0.95 <= covered / 2000 <= 0.99  # at least 95% (discrete: a little above)


def test_a_percentile_the_values_cannot_support_is_empty() -> None:
    rng = np.random.default_rng(1)
    six = [rng.lognormal(0, 0.1, 100) for _ in range(6)]  # 600 values: p99 supported
    fields = interval_fields(six)
    pooled = np.concatenate(six)
    assert fields["latency_median_ci_low_ms"] < np.median(pooled) < \
        fields["latency_median_ci_high_ms"]
    assert fields["latency_p99_ci_low_ms"] < np.percentile(pooled, 99) < \
        fields["latency_p99_ci_high_ms"]
    two = interval_fields(six[:2])  # 200 values, 2 processes
    assert two["latency_p99_ci_low_ms"] is None and two["latency_p99_ci_high_ms"] is None
    assert two["latency_median_ci_low_ms"] is None  # 2 processes: no interval across them
    assert two["latency_p90_ci_low_ms"] is not None
    assert 0 < median_precision_pct(six) < 5 and median_precision_pct(six[:5]) is None


def test_a_slower_process_widens_the_medians_interval() -> None:
    """Five processes at 30 us and one at 36 us: the pooled interval would be about
    +-0.5%, the interval over processes reaches the slow one."""
    rng = np.random.default_rng(3)
    runs = [0.030 * rng.lognormal(0, 0.02, 300) for _ in range(5)] + \
        [0.036 * rng.lognormal(0, 0.02, 300)]
    pooled = percentile_ci(np.concatenate(runs), 50)
    low, high = interval_fields(runs)["latency_median_ci_low_ms"], \
        interval_fields(runs)["latency_median_ci_high_ms"]
    assert (pooled[1] - pooled[0]) / 2 / 0.03 < 0.01
    assert low <= pooled[0] and high >= float(np.median(runs[-1])) * 0.99
    assert median_precision_pct(runs) > 5


def _process(rng: np.random.Generator, median: float, n: int = 200,
             spread: float = 0.03) -> np.ndarray:
    return median * rng.lognormal(0, spread, n)


def test_each_rule_names_its_verdict() -> None:
    rng = np.random.default_rng(2)
    steady = [_process(rng, 0.03) for _ in range(6)]
    assert stability(steady)[0] == STABLE
    preempted = [run.copy() for run in steady]
    for run in preempted[:3]:
        run[50] = 4.0  # a 4 ms time slice of another task in half the processes
    verdict, why = stability(preempted)
    assert verdict == NOISY_TAIL and "in 3 of 6 worker processes" in why
    one_slip = [run.copy() for run in steady]
    one_slip[0][10] = 4.0  # one preempted value of 1,200 in one process of six
    assert stability(one_slip)[0] == STABLE
    switched = stability(steady, context_switches=[0.01, 0.02, 0.0, 0.01, 0.0, 0.0])
    assert switched[0] == NOISY_TAIL and "context switches" in switched[1]
    phases = [_process(rng, 0.055) for _ in range(3)] + [_process(rng, 0.1) for _ in range(3)]
    verdict, why = stability(phases)
    assert verdict == MULTIMODAL and "apart" in why
    warming = [np.concatenate([_process(rng, 0.04, 50), _process(rng, 0.03, 150)])
               for _ in range(3)]
    verdict, why = stability(warming)
    assert verdict == DRIFTING and "last quarter" in why
    trend = [_process(rng, 0.03 * (1 + 0.05 * i)) for i in range(6)]
    assert stability(trend)[0] in (DRIFTING, MULTIMODAL)
    assert stability(trend[:1])[1].startswith("few values to judge by")


def _hog(cpu: int) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c",
                             "while True: pass"])


@pytest.mark.slow
def test_a_case_beside_a_cpu_hog_is_not_stable_and_a_quiet_one_is(tmp_path: Path) -> None:
    """The same case twice (6 worker processes each): alone, and sharing one CPU with a
    busy loop (both pinned to CPU 0, so the scheduler must slice between them)."""
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    args = ("run", "--model", "lstm", "--backends", "onnxruntime", "--profile", "default",
            "--bundle-dir", str(tmp_path / "bundle"))
    quiet = run_cli(*args, "--out", str(tmp_path / "quiet.csv"))
    assert quiet.returncode == 0, quiet.stderr
    hog = _hog(0)
    try:
        loaded = subprocess.run(["taskset", "-c", "0", sys.executable, "-m",
                                 "edge_rnn_harness", *args, "--out",
                                 str(tmp_path / "loaded.csv")], capture_output=True,
                                text=True, cwd=ROOT, timeout=600, check=False)
    finally:
        hog.kill()
        hog.wait()
    assert loaded.returncode == 0, loaded.stderr
    calm = read_results(tmp_path / "quiet.csv").iloc[0]
    busy = read_results(tmp_path / "loaded.csv").iloc[0]
    assert calm["stability"] == STABLE, calm["stability_reason"]
    assert busy["stability"] != STABLE, busy["stability_reason"]
    assert busy["stability"] == NOISY_TAIL and "preempted" in busy["stability_reason"]


@pytest.mark.slow
def test_target_precision_adds_processes_until_it_is_reached_or_says_why(
        tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", "tiny", "--backends", "onnxruntime", "--profile",
                     "quick", "--target-precision", "0.5", "--max-time", "8", "--out",
                     str(out), "--bundle-dir", str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    row = read_results(out).iloc[0]
    assert row["n_values"] >= 200 and row["n_values"] % 200 == 0  # whole rounds of 2 x 100
    if row["median_precision_pct"] <= 0.5:
        print(f"branch: reached +-{row['median_precision_pct']:.2f}% with {row['n_values']}")
        assert pd.isna(row["reason"]) or "precision:" not in row["reason"]
    else:
        print(f"branch: not reached: {row['reason']}")
        assert f"+-{row['median_precision_pct']:.2f}%" in row["reason"]
        assert "target +-0.5%" in row["reason"]
    bad = run_cli("run", "--target-precision", "0", "--out", str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and "above 0 and at most 50" in bad.stderr
