"""The gate's three verdicts: it never passes what it could not judge, validates what it
judges, and judges a candidate against a history of runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pyperf
import pytest
from hypothesis import HealthCheck, given, settings

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.analysis.gate import (
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    Thresholds,
    judge,
    judge_ratio,
)
from tests.conftest import run_cli, write_run

LATENCY_COLUMNS = ("latency_mean_ms", "latency_median_ms", "latency_p90_ms", "latency_p99_ms",
                   "latency_stdev_ms", "latency_min_ms")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real quick-profile run (2 worker processes x 100 values) of the tiny model."""
    tmp = tmp_path_factory.mktemp("quick")
    out = tmp / "quick.csv"
    result = run_cli("run", "--backends", "onnxruntime", "--model", "tiny", "--profile",
                     "quick", "--out", str(out), "--bundle-dir", str(tmp / "bundle"))
    assert result.returncode == 0, result.stderr
    return out


def scaled_copy(run: Path, out: Path, factor: float) -> Path:
    """A copy of a run with every latency (CSV and pyperf JSON) multiplied by `factor`."""
    frame = pd.read_csv(run, dtype=str, keep_default_na=False)
    for column in LATENCY_COLUMNS:
        frame[column] = [f"{float(v) * factor:.9g}" if v else v for v in frame[column]]
    frame.to_csv(out, index=False)
    suite = pyperf.BenchmarkSuite.load(str(run.with_suffix(".json")))
    scaled = [pyperf.Benchmark([pyperf.Run([v * factor for v in r.values],
                                           warmups=r.warmups, metadata=r.get_metadata(),
                                           collect_metadata=False)
                                for r in bench.get_runs()]) for bench in suite.get_benchmarks()]
    pyperf.BenchmarkSuite(scaled).dump(str(out.with_suffix(".json")), replace=True)
    return out


@pytest.mark.slow
def test_a_scaled_copy_of_a_quick_run_never_passes(quick_run: Path, tmp_path: Path) -> None:
    slow = scaled_copy(quick_run, tmp_path / "slow.csv", 1.5)
    result = run_cli("gate", str(quick_run), str(slow))
    assert result.returncode in (1, 2), result.stdout
    assert "PASS" not in result.stdout.splitlines()[0]


def test_a_run_against_itself_passes(quick_run: Path) -> None:
    result = run_cli("gate", str(quick_run), str(quick_run))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" not in result.stderr


def _noisy_run(path: Path, seed: int, factor: float) -> Path:
    """Two processes whose speeds differ by 40%: the interval of any ratio is wide."""
    rng = np.random.default_rng(seed)
    runs = [list(25e-6 * factor * speed * rng.lognormal(0, 0.02, 100)) for speed in (1.0, 1.4)]
    values_ms = np.concatenate(runs) * 1e3
    return write_run(path, seed, factor, onnxruntime={
        "latency_median_ms": float(np.median(values_ms))}, raw={"onnxruntime": runs})


def test_wide_interval_is_inconclusive_with_what_to_do(tmp_path: Path) -> None:
    base = _noisy_run(tmp_path / "a.csv", 1, 1.0)
    cand = _noisy_run(tmp_path / "b.csv", 2, 1.05)
    result = run_cli("gate", str(base), str(cand), "--summary", str(tmp_path / "s.md"))
    assert result.returncode == 2, result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith("harness gate: INCONCLUSIVE") and "1 inconclusive" in first
    line = next(x for x in result.stdout.splitlines() if x.startswith("  inconclusive:"))
    assert "lstm/fp32/onnxruntime" in line and "does not rule out a growth beyond the 10%" in line
    assert "resolves changes of about +-" in line and "harness ab" in line
    assert "| inconclusive" in (tmp_path / "s.md").read_text()


@pytest.mark.parametrize("ratio, low, high, significant, expected", [
    (1.5, 1.3, 1.7, True, REGRESSION),
    (1.5, 0.8, 2.7, False, INCONCLUSIVE),   # the quick-profile case of the issue
    (1.02, 0.99, 1.05, False, PASS),
    (1.08, 1.05, 1.11, True, INCONCLUSIVE),  # below the limit, but 11% not ruled out
    (0.6, 0.5, 0.7, True, PASS),             # a speed-up
    (1.12, None, None, True, REGRESSION),    # a single number beyond the limit
    (1.08, None, None, True, PASS),
])
def test_judge_ratio(ratio: float, low: float | None, high: float | None, significant: bool,
                     expected: str) -> None:
    assert judge_ratio(ratio, low, high, significant, 0.10) == expected


def _edited_csv(path: Path, out: Path, column: str, value: str) -> Path:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, column] = value
    frame.to_csv(out, index=False)
    shutil.copy(path.with_suffix(".json"), out.with_suffix(".json"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("column, value, message", [
    ("latency_median_ms", "", "row is ok but its latency_median_ms is empty"),
    ("latency_median_ms", "-0.02", "latency_median_ms is -0.02: not a positive number"),
    ("latency_median_ms", "0", "latency_median_ms is 0.0: not a positive number"),
    ("latency_median_ms", "0.05", "the two files do not belong together"),
])
def test_unjudgeable_latencies_exit_2_naming_case(tmp_path: Path, column: str, value: str,
                                                  message: str) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = _edited_csv(write_run(tmp_path / "b.csv", seed=2), tmp_path / "c.csv", column, value)
    result = run_cli("gate", str(base), str(cand))
    assert result.returncode == 2, result.stdout
    assert "lstm/fp32/onnxruntime single_stream s24 t1 b1: candidate" in result.stdout
    assert message in result.stdout


def test_unknown_status_is_one_line_exit_2(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = _edited_csv(write_run(tmp_path / "b.csv", seed=2), tmp_path / "c.csv", "status",
                       "great")
    result = run_cli("gate", str(base), str(cand))
    assert result.returncode == 2
    assert "status 'great' is not one of ok" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option, value, message", [
    ("--alpha", "0", "must be between 0 and 1"),
    ("--alpha", "nan", "must be between 0 and 1"),
    ("--max-slowdown", "nan", "must be a finite number >= 0 percent"),
    ("--min-effect", "nan", "must be a finite number >= 0 percent"),
    ("--max-rmse-growth", "inf", "must be a finite number >= 0 percent"),
])
def test_nonsense_options_are_refused(tmp_path: Path, option: str, value: str,
                                      message: str) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    result = run_cli("gate", str(base), str(base), option, value)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _history(folder: Path, count: int, factor: float = 1.0) -> Path:
    folder.mkdir()
    for index in range(count):
        write_run(folder / f"run{index}.csv", seed=100 + index,
                  factor=factor * (1 + 0.01 * (index % 3)),
                  onnxruntime={"timestamp": f"2026-11-{index + 1:02d}T00:00:00+00:00"},
                  openvino={"timestamp": f"2026-11-{index + 1:02d}T00:00:00+00:00"})
    return folder


def test_history_with_too_few_runs_is_one_line_exit_2(tmp_path: Path) -> None:
    history = _history(tmp_path / "h", 3)
    cand = write_run(tmp_path / "cand.csv", seed=7)
    result = run_cli("gate", "--history", str(history), str(cand))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("harness gate: --history has fewer than 5 "
                                            "distinct runs of lstm/fp32/onnxruntime")
    assert "(3)" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_history_counts_copies_of_one_run_once(tmp_path: Path) -> None:
    """Six copies of one run (one run_id) are one run of history, not six: exit 2."""
    folder = tmp_path / "h"
    folder.mkdir()
    for index in range(6):
        write_run(folder / f"copy{index}.csv", seed=100, factor=1.0 + 0.001 * index)
    cand = write_run(tmp_path / "cand.csv", seed=7, factor=1.07)
    result = run_cli("gate", "--history", str(folder), str(cand))
    assert result.returncode == 2, result.stdout
    assert "fewer than 5 distinct runs" in result.stderr and "(1)" in result.stderr


def test_history_leaves_out_the_candidates_own_run(tmp_path: Path) -> None:
    """A candidate already in the history (harness run --store, then gate) is not judged
    against itself: with it the history would have 5 runs, without it 4."""
    history = _history(tmp_path / "h", 4)
    cand = write_run(tmp_path / "cand.csv", seed=7)
    shutil.copy(cand, history / "stored-copy-of-cand.csv")
    result = run_cli("gate", "--history", str(history), str(cand))
    assert result.returncode == 2
    assert "fewer than 5 distinct runs" in result.stderr and "(4)" in result.stderr


@pytest.mark.slow
def test_history_passes_same_code_and_catches_a_slowdown(tmp_path: Path) -> None:
    history = _history(tmp_path / "h", 8)
    same = run_cli("gate", "--history", f"{history}/run*.csv",
                   str(write_run(tmp_path / "same.csv", seed=9)))
    assert same.returncode == 0, same.stdout + same.stderr
    slow = run_cli("gate", "--history", str(history),
                   str(write_run(tmp_path / "slow.csv", seed=9, factor=1.3)))
    assert slow.returncode == 1, slow.stdout
    assert "median latency +2" in slow.stdout  # 1.3 against a history mean of 1.01


_MUTATIONS = {
    "empty latency": ("latency_median_ms", ""),
    "negative latency": ("latency_median_ms", "-1"),
    "latency not from the JSON": ("latency_median_ms", "0.5"),
    "infinite latency": ("latency_median_ms", "inf"),
    "unknown status": ("status", "fine"),
    "skipped candidate": ("status", "skipped"),
    "text in a number": ("peak_rss_mb", "lots"),
    "throttled": ("throttled", "True"),
    "invalid": ("status", "invalid"),
    "other device": ("device", "elsewhere"),
}


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(sorted(_MUTATIONS)), row=st.integers(0, 1),
       factor=st.floats(0.5, 2.0))
def test_gate_exits_0_only_on_files_it_could_fully_judge(tmp_path: Path, mutation: str,
                                                         row: int, factor: float) -> None:
    folder = tmp_path / f"{mutation}-{row}-{factor}".replace(" ", "_")
    folder.mkdir()
    base = write_run(folder / "a.csv", seed=1)
    cand = write_run(folder / "b.csv", seed=2, factor=factor)
    frame = pd.read_csv(cand, dtype=str, keep_default_na=False)
    column, value = _MUTATIONS[mutation]
    frame.loc[row, column] = value
    frame.to_csv(cand, index=False)
    try:
        code = judge(compare_runs(base, cand), Thresholds()).exit_code
    except ValueError:
        code = 2  # what the CLI makes of an unreadable file
    assert code != 0, f"{mutation} in row {row} passed"
