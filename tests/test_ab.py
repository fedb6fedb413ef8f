"""Interleaved A/B runs: the call order, the paired statistics, and `harness ab` end to end."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.interleave import interleaved_values_s
from edge_rnn_harness.measure.stats import bootstrap_ratio_ci, paired_ratio_ci
from tests.conftest import run_cli


def test_calls_alternate_abba_and_warmups_are_dropped() -> None:
    order: list[str] = []
    ticks = iter(range(0, 10_000_000, 1000))

    def clock() -> int:
        return next(ticks)

    def side(name: str) -> tuple:
        return (lambda fed: order.append(name), None)

    values = interleaved_values_s([side("A"), side("B")], warmups=1, values=3, clock=clock)
    assert order == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert values == [[1e-6] * 3, [1e-6] * 3]  # each call spans one 1000 ns tick
    # the values kept are the rounds after the warm-ups: calls that slow down, round by round
    spans = iter([1, 1, 2, 2, 3, 3, 4, 4])  # ms per call, in call order (A B, B A, ...)
    now = [0]

    def slowing_clock() -> int:
        return now[0]

    def slowing(name: str) -> tuple:
        def run(fed: object) -> None:
            now[0] += next(spans) * 1_000_000
        return (run, None)
    kept = interleaved_values_s([slowing("A"), slowing("B")], warmups=2, values=2,
                                clock=slowing_clock)
    assert kept == [[0.003, 0.004], [0.003, 0.004]]  # rounds 3 and 4, never 1 or 2


def _drifting_pair(ratio: float, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Six processes whose speed differs by up to 60%, each timing A and B side by side."""
    rng = np.random.default_rng(seed)
    base, cand = [], []
    for speed in (1.0, 1.6, 1.1, 1.5, 0.9, 1.3):
        drift = speed * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))  # shared within rounds
        base.append(25e-6 * drift * rng.lognormal(0, 0.02, 300))
        cand.append(25e-6 * ratio * drift * rng.lognormal(0, 0.02, 300))
    return base, cand


def test_paired_interval_cancels_the_drift_that_widens_the_unpaired_one() -> None:
    base, cand = _drifting_pair(1.10)
    low, high = paired_ratio_ci(base, cand, 50, resamples=500)
    assert 1.07 < low < 1.10 < high < 1.13
    unpaired_low, unpaired_high = bootstrap_ratio_ci(base, cand, 50, resamples=500)
    assert unpaired_high - unpaired_low > 4 * (high - low)


@pytest.fixture(scope="module")
def same_code(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    out = tmp_path_factory.mktemp("ab") / "same.csv"
    result = run_cli("ab", "--bundle", str(tiny_bundle), "--backends", "onnxruntime,ncnn",
                     "--profile", "quick", "--out", str(out), "--max-slowdown", "50")
    return result, out


@pytest.mark.slow
def test_same_code_ab_run_passes_with_paired_rows(same_code: tuple) -> None:
    result, out = same_code
    assert result.returncode == 0, result.stdout + result.stderr
    base = read_results(out.with_name("same-base.csv"))
    cand = read_results(out.with_name("same-cand.csv"))
    for frame in (base, cand):
        assert list(frame["status"]) == ["ok", "ok"]
        assert list(frame["interleaving"]) == ["calls", "calls"]
        assert list(frame["n_values"]) == [200, 200]
        assert frame["peak_rss_mb"].isna().all()  # one process holds both sides
    assert base.loc[0, "run_id"] == cand.loc[0, "run_id"]
    assert out.with_name("same-base.json").is_file() and out.with_name("same-cand.json").is_file()
    compared = run_cli("compare", str(out.with_name("same-base.csv")),
                       str(out.with_name("same-cand.csv")), "--format", "json")
    notes = {r["note"] for r in json.loads(compared.stdout) if r["metric"] == "latency_median_ms"}
    assert notes == {"paired: interleaved calls"}


def test_two_tuning_settings_are_judged_not_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune.csv"
    result = run_cli("ab", "--bundle", str(tiny_bundle), "--backends", "onnxruntime",
                     "--profile", "quick", "--cand-tune", "onnxruntime.graph_level=disable",
                     "--out", str(out))
    # judged: a verdict per metric and an exit code that is that verdict's, no refusal
    heading = result.stdout.splitlines()[0]
    verdict = heading.removeprefix("harness gate: ").split(" (")[0]
    assert result.returncode == {"PASS": 0, "REGRESSION": 1, "INCONCLUSIVE": 2}[verdict], \
        result.stdout + result.stderr
    assert "0 problem(s)" in heading and "different settings" not in result.stdout
    assert re.search(r"onnxruntime .* median latency +[+-]\d+\.\d%", result.stdout)
    settings = [json.loads(read_results(out.with_name(f"tune-{side}.csv")).loc[0, "settings"])
                for side in ("base", "cand")]
    assert settings[0]["graph_level"] == "all" and settings[1]["graph_level"] == "disable"


def test_another_python_alternates_processes(tiny_bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "python3"  # another interpreter path: it may be another environment
    other.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    other.chmod(0o755)
    out = tmp_path / "proc.csv"
    result = run_cli("ab", "--bundle", str(tiny_bundle), "--backends", "onnxruntime",
                     "--profile", "quick", "--cand-python", str(other), "--out", str(out))
    assert "interleaving processes" in result.stderr
    for side in ("base", "cand"):
        frame = read_results(out.with_name(f"proc-{side}.csv"))
        assert list(frame["interleaving"]) == ["processes"] and frame.loc[0, "status"] == "ok"
        assert frame.loc[0, "n_values"] == 200


def test_a_failing_candidate_python_is_named_and_the_baseline_is_not_blamed(
        tiny_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "python3"  # imports the harness (the probe) but cannot measure
    broken.write_text(f"#!/bin/sh\ncase \"$*\" in *import*) exec {sys.executable} \"$@\";; "
                      f"esac\necho 'candidate runtime crashed' >&2\nexit 3\n")
    broken.chmod(0o755)
    out = tmp_path / "bad.csv"
    result = run_cli("ab", "--bundle", str(tiny_bundle), "--backends", "onnxruntime",
                     "--profile", "quick", "--cand-python", str(broken), "--out", str(out))
    base = read_results(out.with_name("bad-base.csv")).iloc[0]
    cand = read_results(out.with_name("bad-cand.csv")).iloc[0]
    assert cand["status"] == "failed" and cand["reason"].startswith(f"candidate ({broken}): ")
    assert "candidate runtime crashed" in cand["reason"]
    assert base["status"] == "skipped"
    assert base["reason"].startswith(f"its A/B partner failed: candidate ({broken})")
    assert result.returncode == 2 and "CANNOT JUDGE" in result.stdout, result.stdout


@pytest.mark.parametrize("args, message", [
    (("--cand-python", "/nonexistent/python3"),
     "--cand-python /nonexistent/python3: cannot run it (No such file or directory)"),
    (("--cand-python", "/bin/false"), "--cand-python /bin/false cannot import edge_rnn_harness"),
    (("--cand-model", "gru"), "--cand-model 'gru' is not in bundle"),
    (("--cand-tune", "onnxruntime.speed=max"), "--cand-tune: onnxruntime has no option 'speed'"),
    (("--profile", "slow"), "unknown profile 'slow'"),
])
def test_ab_bad_input_is_one_line(tiny_bundle: Path, tmp_path: Path, args: tuple,
                                  message: str) -> None:
    result = run_cli("ab", "--bundle", str(tiny_bundle), *args, "--out",
                     str(tmp_path / "x.csv"))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
