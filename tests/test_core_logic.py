"""The core decisions pinned with exact expectations, in process and fast (the mutation
testing command in README runs this file): latency statistics, the clock, the parity rule,
the aggregation of worker results, compare's significance and every path of the gate."""

from __future__ import annotations

import inspect
import math
import re
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyperf
import pytest

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.analysis.gate import (
    EXIT_CANNOT_JUDGE,
    EXIT_PASS,
    EXIT_REGRESSION,
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    Thresholds,
    Verdict,
    judge,
    judge_ratio,
)
from edge_rnn_harness.core.parity import Tolerance, compare_outputs
from edge_rnn_harness.core.status import Finding, row_status
from edge_rnn_harness.core.variants import get_variant
from edge_rnn_harness.measure.aggregate import measurement_fields, parity_verdict
from edge_rnn_harness.measure.clock import time_calls, time_once_ms
from edge_rnn_harness.measure.stats import bootstrap_ratio_ci, latency_summary_ms, paired_ratio_ci
from tests.conftest import write_run

# --- latency statistics: hand-computed (numpy's linear interpolation between ranks) ---


def test_latency_statistics_match_hand_computed_values() -> None:
    """1..10 ms in shuffled order: p90 lies between ranks 9 and 10 at 0.1 (9.1 ms), p99 at
    0.91 (9.91 ms); sample standard deviation sqrt(sum((x - 5.5)^2) / 9)."""
    values_s = [v / 1000 for v in (7, 1, 10, 3, 5, 2, 9, 4, 8, 6)]
    summary = latency_summary_ms(values_s, batch=8)
    assert summary["latency_mean_ms"] == pytest.approx(5.5, abs=1e-12)
    assert summary["latency_median_ms"] == pytest.approx(5.5, abs=1e-12)
    assert summary["latency_p90_ms"] == pytest.approx(9.1, abs=1e-12)
    assert summary["latency_p99_ms"] == pytest.approx(9.91, abs=1e-12)
    assert summary["latency_stdev_ms"] == pytest.approx((82.5 / 9) ** 0.5, abs=1e-12)
    assert summary["latency_min_ms"] == pytest.approx(1.0, abs=1e-12)
    assert summary["throughput_ips"] == pytest.approx(8 * 1000 / 5.5, rel=1e-12)


def test_two_values_have_a_sample_standard_deviation() -> None:
    assert latency_summary_ms([0.001, 0.003])["latency_stdev_ms"] == pytest.approx(2 ** 0.5)


def test_one_value_has_zero_spread_and_every_percentile_equal() -> None:
    summary = latency_summary_ms([0.004])
    assert summary["latency_stdev_ms"] == 0.0
    assert {summary[k] for k in ("latency_median_ms", "latency_p90_ms", "latency_p99_ms",
                                 "latency_min_ms", "latency_mean_ms")} == {4.0}
    assert summary["throughput_ips"] == pytest.approx(250.0)


# --- the clock: wall time, around the run only ---


def test_the_clock_is_the_wall_clock() -> None:
    """perf_counter_ns, not a CPU-time clock: a run that waits (as a runtime waiting on its
    threads does) is timed for the whole wait."""
    assert inspect.signature(time_calls).parameters["clock"].default is time.perf_counter_ns
    assert inspect.signature(time_once_ms).parameters["clock"].default is time.perf_counter_ns
    assert time_calls(2, lambda _: time.sleep(0.02), None) >= 0.04
    assert time_once_ms(lambda: time.sleep(0.02)) >= 20.0


def test_feeding_is_outside_the_timed_loop() -> None:
    """The worker feeds inputs before timing; time_calls only calls run on the fed object:
    a feed that takes 50 ms does not appear in a loop of 3 runs of 1 ms."""
    from edge_rnn_harness.backends.base import PreparedModel

    class SlowFeed(PreparedModel):
        settings: ClassVar[dict] = {}

        def feed(self, inputs: dict) -> object:
            time.sleep(0.05)
            return inputs

        def run(self, fed: object) -> dict:
            time.sleep(0.001)
            return {"y": np.zeros(1)}

    model = SlowFeed()
    fed = model.feed({"x": np.zeros(1)})
    calls: list[object] = []
    fake_ns = iter([0, 3_000_000])
    seconds = time_calls(3, lambda f: calls.append(f) or model.run(f), fed,
                         clock=lambda: next(fake_ns))
    assert seconds == pytest.approx(0.003) and calls == [fed] * 3


# --- the parity rule, as README states it: |out - ref| <= atol + rtol x |ref| ---


def test_fp32_tolerance_is_the_documented_one() -> None:
    assert get_variant("fp32").parity == Tolerance(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("out, within", [
    (3.0, True), (1.0, True),                      # exactly atol + rtol x |ref| away
    (3.0 + 1e-9, False), (1.0 - 1e-9, False),      # just beyond, on either side
])
def test_parity_boundary_is_atol_plus_rtol_times_reference(out: float, within: bool) -> None:
    """ref 2, atol 0.5, rtol 0.25: the allowed error is 0.5 + 0.25 x 2 = 1 exactly."""
    ref = {"y": np.array([2.0])}
    result = compare_outputs({"y": np.array([out])}, ref, Tolerance(atol=0.5, rtol=0.25))
    assert result.within is within
    assert result.max_abs_err == pytest.approx(abs(out - 2.0), abs=1e-15)
    assert result.max_rel_err == pytest.approx(abs(out - 2.0) / 2.0, abs=1e-15)


@pytest.mark.parametrize("error, within", [(1.9e-5, True), (2.1e-5, False)])
def test_fp32_parity_at_its_boundary(error: float, within: bool) -> None:
    """fp32 around a reference of 1: allowed 1e-5 + 1e-5 x 1 = 2e-5."""
    result = compare_outputs({"y": np.array([1.0 + error])}, {"y": np.array([1.0])},
                             get_variant("fp32").parity)
    assert result.within is within


def test_parity_near_zero_allows_atol_and_bounds_the_relative_error() -> None:
    tol = Tolerance(atol=1e-3, rtol=0.5)
    assert compare_outputs({"y": np.array([1e-3])}, {"y": np.array([0.0])}, tol).within
    beyond = compare_outputs({"y": np.array([1.1e-3])}, {"y": np.array([0.0])}, tol)
    assert not beyond.within
    assert beyond.max_rel_err == pytest.approx(1.1e-3 / 1e-6)  # |ref| floored at 1e-6


def test_worst_output_is_the_one_furthest_beyond_its_allowance() -> None:
    ref = {"a": np.array([100.0]), "b": np.array([0.0])}
    result = compare_outputs({"a": np.array([100.5]), "b": np.array([0.2])}, ref,
                             Tolerance(atol=0.1, rtol=0.01))
    # a: 0.5 of an allowed 1.1; b: 0.2 of an allowed 0.1 -> b is the worse
    assert result.worst_output == "b" and not result.within
    assert result.outputs["a"].within and not result.outputs["b"].within
    assert result.max_abs_err == pytest.approx(0.5)


# --- aggregation of the worker processes' results ---


def _benchmark(*metadata: dict, values: tuple = (0.001, 0.002)) -> pyperf.Benchmark:
    return pyperf.Benchmark([
        pyperf.Run(list(values), warmups=None, collect_metadata=False,
                   metadata={"name": "case", "unit": "second", "loops": 1, **meta})
        for meta in metadata])


def test_errors_and_memory_are_the_worst_worker_load_the_median() -> None:
    bench = _benchmark(
        {"max_abs_err": 1e-7, "max_rel_err": 3e-6, "peak_rss_mb": 70.0, "rss_delta_mb": 5.0,
         "load_ms": 10.0, "first_run_ms": 1.0, "settings": '{"threads": 1}'},
        {"max_abs_err": 4e-7, "max_rel_err": 1e-6, "peak_rss_mb": 90.0, "rss_delta_mb": 2.0,
         "load_ms": 30.0, "first_run_ms": 3.0, "settings": '{"threads": 1}'},
        {"max_abs_err": 2e-7, "max_rel_err": 2e-6, "peak_rss_mb": 80.0, "rss_delta_mb": 9.0,
         "load_ms": 20.0, "first_run_ms": 9.0, "settings": '{"threads": 1}'},
        values=(0.001, 0.003))
    fields = measurement_fields(bench, batch=1)
    assert fields["max_abs_err"] == 4e-7 and fields["max_rel_err"] == 3e-6
    assert fields["peak_rss_mb"] == 90.0 and fields["rss_delta_mb"] == 9.0
    assert fields["load_ms"] == 20.0 and fields["first_run_ms"] == 3.0
    assert fields["n_values"] == 6
    assert fields["latency_median_ms"] == pytest.approx(2.0)
    assert fields["settings"] == '{"threads": 1}'


def test_accuracy_from_the_one_worker_that_measured_it() -> None:
    bench = _benchmark({"rmse": 0.0596, "mae": 0.04}, {})
    fields = measurement_fields(bench, batch=1)
    assert fields["rmse"] == 0.0596 and fields["mae"] == 0.04
    assert measurement_fields(_benchmark({}, {}), batch=1)["rmse"] is None


def _parity_meta(ok: int, abs_err: float) -> dict:
    return {"parity_ok": ok, "parity_output": "y", "parity_output_abs_err": abs_err,
            "parity_output_rel_err": abs_err, "parity_atol": 1e-5, "parity_rtol": 1e-5}


def test_parity_needs_every_worker_and_reports_the_worst() -> None:
    fp32, int8 = get_variant("fp32"), get_variant("int8-dynamic")
    assert parity_verdict(_benchmark(_parity_meta(1, 1e-7), _parity_meta(1, 2e-7)),
                          fp32) == Finding("parity", "ok", "")
    mixed = _benchmark(_parity_meta(1, 1e-7), _parity_meta(0, 3e-4), _parity_meta(0, 7e-4))
    verdict = parity_verdict(mixed, fp32)
    assert verdict.status == "failed"
    assert "max_abs_err 0.0007," in verdict.reason
    assert parity_verdict(mixed, int8).status == "invalid"
    assert parity_verdict(_benchmark({}), fp32).status == "failed"  # no parity: no proof


def test_parity_blames_the_reference_only_when_every_failing_worker_disputes_it() -> None:
    fp32 = get_variant("fp32")
    disputed = {**_parity_meta(0, 0.79), "reference_disputed": "reference disagrees: 'y'"}
    assert parity_verdict(_benchmark(disputed, disputed), fp32) == Finding(
        "parity", "invalid", "reference disagrees: 'y'")
    assert parity_verdict(_benchmark(_parity_meta(1, 0.0), disputed), fp32) == Finding(
        "parity", "invalid", "reference disagrees: 'y'")
    one_not = parity_verdict(_benchmark(disputed, _parity_meta(0, 0.79)), fp32)
    assert one_not.status == "failed" and one_not.reason.startswith("parity: output 'y'")


def test_an_ok_row_says_the_reference_held_nan() -> None:
    note = "the reference's output 'y' has 2 NaN/inf element(s), each matched"
    meta = {**_parity_meta(1, 0.0), "reference_non_finite": note}
    assert row_status([parity_verdict(_benchmark(meta, meta), get_variant("fp32"))]) == {
        "status": "ok", "reason": note}
    assert row_status([parity_verdict(_benchmark(meta), get_variant("fp32"))]) == {  # one
        "status": "ok", "reason": note}


# --- compare: p-value, interval and minimum effect each decide alone ---


def _spread_runs(seed: int, factor: float, processes: int, values: int,
                 sigma: float) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(25e-6 * factor * rng.lognormal(0.0, sigma, values))
            for _ in range(processes)]


def _latency_change(tmp_path: Path, base_raw: list, cand_raw: list, **options: float):
    """The onnxruntime case's latency change (openvino: the baseline's values on both sides)."""
    base = write_run(tmp_path / "a.csv", seed=1, raw={"onnxruntime": base_raw,
                                                      "openvino": base_raw})
    cand = write_run(tmp_path / "b.csv", seed=2, raw={"onnxruntime": cand_raw,
                                                      "openvino": base_raw})
    return compare_runs(base, cand, **options).cases[0].changes[0]


def test_the_p_value_alone_can_deny_significance(tmp_path: Path) -> None:
    """A 30% slowdown on few noisy values: the interval excludes 1 and the effect is
    large; only alpha changes between the two calls."""
    base = _spread_runs(3, 1.0, 6, 15, 0.3)
    cand = _spread_runs(4, 1.3, 6, 15, 0.3)
    loose = _latency_change(tmp_path, base, cand, alpha=0.01)
    strict = _latency_change(tmp_path, base, cand, alpha=1e-12)
    assert loose.p_value == strict.p_value and 1e-12 < loose.p_value < 0.01
    assert loose.ci_low > 1 and abs(loose.ratio - 1) >= 0.05
    assert loose.significant and not strict.significant


def test_the_interval_alone_can_deny_significance(tmp_path: Path) -> None:
    """One of two candidate processes is 60% slower: the pooled rank test is certain, the
    median grew by more than min_effect, but resampling processes can draw the fast one
    twice, so the interval reaches 1: not significant."""
    fast = _spread_runs(5, 1.0, 1, 300, 0.02)[0]
    base, cand = [fast, fast], [fast, [value * 1.6 for value in fast]]
    change = _latency_change(tmp_path, base, cand)
    assert change.p_value < 1e-10 and abs(change.ratio - 1) >= 0.05
    assert change.ci_low <= 1 <= change.ci_high
    assert not change.significant


def test_the_minimum_effect_alone_can_deny_significance(tmp_path: Path) -> None:
    base = _spread_runs(8, 1.0, 6, 100, 0.02)
    cand = _spread_runs(9, 1.03, 6, 100, 0.02)
    small = _latency_change(tmp_path, base, cand, min_effect=0.01)
    large = _latency_change(tmp_path, base, cand, min_effect=0.05)
    assert small.p_value < 1e-10 and small.ci_low > 1 and 1.01 < small.ratio < 1.05
    assert small.significant and not large.significant


def test_single_numbers_are_significant_by_effect_size(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=1, onnxruntime={"peak_rss_mb": 71.0})
    def memory(min_effect: float):
        changes = compare_runs(base, cand, min_effect=min_effect).cases[0].changes
        return next(c for c in changes if c.metric.column == "peak_rss_mb")

    assert memory(0.01).ratio == pytest.approx(71 / 68)
    assert memory(0.01).significant and memory(0.044).significant  # +4.41%
    assert not memory(0.045).significant


# --- the gate: every path ---


def _gate(tmp_path: Path, base_over: dict | None = None, cand_over: dict | None = None,
          factor: float = 1.0, **limits: float | None) -> Verdict:
    """Both synthetic cases, the candidate's latencies x factor (6 processes of 40 values:
    small enough to keep the bootstrap quick, enough to resolve a 30% change)."""
    def raw(seed: int, factor: float) -> dict[str, list]:
        return {backend: _spread_runs(seed + i, factor, 6, 40, 0.05)
                for i, backend in enumerate(("onnxruntime", "openvino"))}

    base = write_run(tmp_path / "a.csv", seed=1, raw=raw(10, 1.0), **(base_over or {}))
    cand = write_run(tmp_path / "b.csv", seed=1, raw=raw(10 if factor == 1.0 else 20, factor),
                     **(cand_over or {}))
    return judge(compare_runs(base, cand), Thresholds.with_limits(**limits))


def test_verdict_exit_code_puts_cannot_judge_before_regression() -> None:
    """The documented exit codes: 0 pass, 1 regression, 2 cannot judge (which wins)."""
    assert (EXIT_PASS, EXIT_REGRESSION, EXIT_CANNOT_JUDGE) == (0, 1, 2)
    assert Verdict().exit_code == 0
    assert Verdict(regressions=["r"]).exit_code == 1
    assert Verdict(regressions=["r"], problems=["p"]).exit_code == 2
    assert Verdict(regressions=["r"], inconclusive=["i"]).exit_code == 2
    assert Verdict(passed=["a"], inconclusive=["i"]).exit_code == 2


def test_identical_runs_pass_every_case(tmp_path: Path) -> None:
    verdict = _gate(tmp_path)
    assert verdict.exit_code == EXIT_PASS and len(verdict.passed) == 2
    assert {m.verdict for m in verdict.metrics} == {PASS}


def test_a_speedup_passes(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, factor=0.5)
    assert verdict.exit_code == EXIT_PASS, verdict
    latency = [m for m in verdict.metrics if m.metric.column == "latency_median_ms"]
    assert len(latency) == 2 and all(m.verdict == PASS and m.ratio < 0.6 for m in latency)


def test_a_slowdown_beyond_the_limit_is_a_regression(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, factor=1.5)
    assert verdict.exit_code == EXIT_REGRESSION
    assert len(verdict.regressions) == 2 and not verdict.problems and verdict.passed == []
    assert all("median latency +" in line for line in verdict.regressions)


@pytest.mark.parametrize("side, status, expected", [
    ("cand", "skipped", "candidate was skipped"),
    ("cand", "unsupported", "candidate was skipped"),
    ("base", "skipped", "baseline status is skipped"),
    ("base", "unsupported", "baseline status is unsupported"),
    ("base", "failed", "baseline status is failed"),
    ("base", "invalid", "baseline row is invalid"),
    ("cand", "invalid", "candidate row is invalid"),
])
def test_a_row_that_was_not_measured_cannot_be_judged(tmp_path: Path, side: str, status: str,
                                                      expected: str) -> None:
    over = {"openvino": {"status": status, "reason": "why", "latency_median_ms": None,
                         "latency_p90_ms": None}}
    verdict = _gate(tmp_path, **{f"{side}_over": over})
    assert verdict.exit_code == EXIT_CANNOT_JUDGE
    assert [p for p in verdict.problems if expected in p and "openvino" in p], verdict.problems
    assert len(verdict.passed) == 1  # the other case is still judged


def test_a_failed_candidate_is_a_regression(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, cand_over={"openvino": {"status": "failed", "reason": "crashed",
                                                      "latency_median_ms": None}})
    assert verdict.exit_code == EXIT_REGRESSION
    assert verdict.regressions == [("lstm/fp32/openvino single_stream s24 t1 b1: candidate "
                                   "failed (crashed)")]


def test_problems_and_regressions_together_cannot_be_judged(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, factor=1.5, cand_over={"openvino": {"throttled": True}})
    assert len(verdict.regressions) == 1 and len(verdict.problems) == 1
    assert verdict.exit_code == EXIT_CANNOT_JUDGE


def test_no_cases_cannot_be_judged(tmp_path: Path) -> None:
    base, cand = write_run(tmp_path / "a.csv", seed=1), write_run(tmp_path / "b.csv", seed=1)
    for path in (base, cand):
        path.write_text(path.read_text().splitlines()[0] + "\n")
    verdict = judge(compare_runs(base, cand), Thresholds())
    assert verdict.problems == ["no cases to compare"]
    assert verdict.exit_code == EXIT_CANNOT_JUDGE


def test_cases_only_in_the_candidate_are_listed_not_judged(tmp_path: Path) -> None:
    base, cand = write_run(tmp_path / "a.csv", seed=1), write_run(tmp_path / "b.csv", seed=1)
    lines = base.read_text().splitlines()
    base.write_text("\n".join(lines[:2]) + "\n")  # the baseline has onnxruntime only
    comparison = compare_runs(base, cand)
    assert [key[2] for key in comparison.only_cand] == ["openvino"]
    verdict = judge(comparison, Thresholds())
    assert verdict.exit_code == EXIT_PASS and len(verdict.passed) == 1


def test_a_case_missing_from_the_candidate_cannot_be_judged(tmp_path: Path) -> None:
    base, cand = write_run(tmp_path / "a.csv", seed=1), write_run(tmp_path / "b.csv", seed=1)
    cand.write_text("\n".join(cand.read_text().splitlines()[:2]) + "\n")
    verdict = judge(compare_runs(base, cand), Thresholds())
    assert verdict.exit_code == EXIT_CANNOT_JUDGE
    assert verdict.problems == [("lstm/fp32/openvino single_stream s24 t1 b1: missing from "
                                "the candidate")]


@pytest.mark.parametrize("column, base_value, cand_value, limit, expected", [
    ("peak_rss_mb", 68.0, 74.8, 0.10, PASS),           # +10% exactly: within
    ("peak_rss_mb", 68.0, 74.9, 0.10, REGRESSION),
    ("peak_rss_mb", 68.0, 40.0, 0.10, PASS),           # less memory: never a regression
    ("energy_per_inf_mj", 1.0, 1.2, 0.10, REGRESSION),
    ("energy_per_inf_mj", 1.0, 1.2, 0.25, PASS),
    ("artifact_bytes", 1000, 1051, 0.05, REGRESSION),
    ("rmse", 0.0596, 0.0600, 0.02, PASS),
    ("rmse", 0.0596, 0.0700, 0.02, REGRESSION),
])
def test_single_number_metrics_against_their_limit(tmp_path: Path, column: str,
                                                   base_value: float, cand_value: float,
                                                   limit: float, expected: str) -> None:
    verdict = _gate(tmp_path, {"onnxruntime": {column: base_value}},
                    {"onnxruntime": {column: cand_value}}, **{column: limit})
    found = [m for m in verdict.metrics if m.metric.column == column
             and "onnxruntime" in m.case]
    assert [m.verdict for m in found] == [expected]
    assert verdict.exit_code == (EXIT_REGRESSION if expected == REGRESSION else EXIT_PASS)


def test_a_metric_measured_on_one_side_only_is_inconclusive(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, {}, {"onnxruntime": {"energy_per_inf_mj": 1.0}})
    energy = [m for m in verdict.metrics if m.metric.column == "energy_per_inf_mj"]
    assert [m.verdict for m in energy] == [INCONCLUSIVE]
    assert verdict.exit_code == EXIT_CANNOT_JUDGE


def test_p90_is_judged_only_when_limited(tmp_path: Path) -> None:
    off = _gate(tmp_path, factor=1.3, latency_median_ms=None)
    assert off.exit_code == EXIT_PASS
    assert not [m for m in off.metrics if m.metric.percentile is not None]
    on = _gate(tmp_path, factor=1.3, latency_median_ms=None, latency_p90_ms=0.10)
    assert on.exit_code == EXIT_REGRESSION
    assert all("p90 latency" in line for line in on.regressions)


# --- the bootstrap intervals, pinned (seeded: the same numbers on every machine) ---


def _golden_runs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four processes of 50 values; the candidate about 1.22x the baseline, value by value.
    numpy's Generator streams are stable within a numpy version; should an upgrade change
    them, these pinned intervals must be measured again."""
    rng = np.random.default_rng(42)
    base = [rng.lognormal(0, 0.1, 50) for _ in range(4)]
    return base, [b * rng.lognormal(0.2, 0.05, 50) for b in base]


@pytest.mark.parametrize("function, percentile, expected", [
    (bootstrap_ratio_ci, 50, (1.1803538151671653, 1.2679678878373333)),
    (bootstrap_ratio_ci, 90, (1.1761259727996594, 1.2968839471090459)),
    (paired_ratio_ci, 50, (1.188715396173838, 1.2526918193902432)),
    (paired_ratio_ci, 90, (1.1911587707310987, 1.2778669112387682)),
])
def test_bootstrap_intervals_are_pinned(function: object, percentile: float,
                                        expected: tuple[float, float]) -> None:
    base, cand = _golden_runs()
    assert function(base, cand, percentile) == pytest.approx(expected, rel=1e-9)  # type: ignore[operator]


def test_a_constant_ratio_has_a_point_interval() -> None:
    """Every value of the candidate is 1.5x its baseline neighbour: every resample of either
    bootstrap gives exactly 1.5."""
    base = [np.full(30, 2.0), np.full(30, 4.0), np.full(30, 3.0)]
    cand = [run * 1.5 for run in base]
    assert paired_ratio_ci(base, cand, 50) == pytest.approx((1.5, 1.5))
    same = [np.full(30, 2.0)] * 3
    assert bootstrap_ratio_ci(same, [r * 1.5 for r in same], 90) == pytest.approx((1.5, 1.5))


# --- compare: every branch of a latency or single-number change ---


def _pair(tmp_path: Path, base_over: dict | None = None, cand_over: dict | None = None,
          base_raw: dict | None = None, cand_raw: dict | None = None) -> tuple[Path, Path]:
    return (write_run(tmp_path / "a.csv", seed=1, raw=base_raw, **(base_over or {})),
            write_run(tmp_path / "b.csv", seed=1, raw=cand_raw, **(cand_over or {})))


def _changes(comparison: object, case: int = 0) -> dict:
    return {c.metric.column: c for c in comparison.cases[case].changes}  # type: ignore[attr-defined]


def test_a_run_against_itself_is_identical_measurements(tmp_path: Path) -> None:
    base, _ = _pair(tmp_path)
    latency = _changes(compare_runs(base, base))["latency_median_ms"]
    assert (latency.p_value, latency.ci_low, latency.ci_high) == (1.0, 1.0, 1.0)
    assert latency.note == "identical measurements" and not latency.significant


def test_the_p_value_at_alpha_is_not_significant(tmp_path: Path) -> None:
    base = _spread_runs(3, 1.0, 6, 15, 0.3)
    cand = _spread_runs(4, 1.3, 6, 15, 0.3)
    p_value = _latency_change(tmp_path, base, cand).p_value
    assert _latency_change(tmp_path, base, cand, alpha=p_value * 1.0001).significant
    assert not _latency_change(tmp_path, base, cand, alpha=p_value).significant


def test_an_interval_ending_exactly_at_1_is_not_significant(tmp_path: Path) -> None:
    """Constant processes: resampled ratios are exactly 1, 1.5 or 2, so the interval is
    [1, 2]: touching 1 is containing it."""
    base = [[25e-6] * 40, [25e-6] * 40]
    cand = [[25e-6] * 40, [50e-6] * 40]
    change = _latency_change(tmp_path, base, cand)
    assert (change.ci_low, change.ci_high) == (1.0, 2.0) and change.p_value < 1e-6
    assert change.ratio == pytest.approx(1.5) and not change.significant


def test_a_speedup_is_significant_and_a_small_one_is_not(tmp_path: Path) -> None:
    base = _spread_runs(8, 1.0, 6, 100, 0.02)
    fast = _latency_change(tmp_path, base, _spread_runs(9, 0.5, 6, 100, 0.02))
    assert fast.significant and fast.ci_high < 0.55
    slight = _latency_change(tmp_path, base, _spread_runs(9, 0.97, 6, 100, 0.02))
    assert slight.ci_high < 1 and slight.p_value < 1e-6 and not slight.significant


def test_interleaved_rows_are_judged_paired(tmp_path: Path) -> None:
    """Two rows of one interleaved A/B run (same run id, interleaving `calls`, the same
    number of values per process): a signed-rank test on the log ratios of neighbouring
    calls and the paired interval."""
    from scipy.stats import wilcoxon

    base_runs, cand_runs = _golden_runs()
    raw = {"onnxruntime": [list(r * 25e-6) for r in base_runs]}
    cand_raw = {"onnxruntime": [list(r * 25e-6) for r in cand_runs]}
    over = {"onnxruntime": {"interleaving": "calls", "run_id": "ab1"}}
    base, cand = _pair(tmp_path, over, over, raw, cand_raw)
    latency = _changes(compare_runs(base, cand))["latency_median_ms"]
    expected_p = wilcoxon(np.log(np.concatenate(cand_runs))
                          - np.log(np.concatenate(base_runs))).pvalue
    assert latency.note == "paired: interleaved calls"
    assert latency.p_value == pytest.approx(expected_p, rel=1e-9)
    assert (latency.ci_low, latency.ci_high) == pytest.approx(
        (1.188715396173838, 1.2526918193902432), rel=1e-9)
    for other in ({"interleaving": "processes", "run_id": "ab1"},
                  {"interleaving": "calls", "run_id": "ab2"}):
        unpaired = _pair(tmp_path, over, {"onnxruntime": other}, raw, cand_raw)
        assert _changes(compare_runs(*unpaired))["latency_median_ms"].note == ""
    shorter = {"onnxruntime": [r[:-1] for r in cand_raw["onnxruntime"]]}
    unequal = _pair(tmp_path, over, over, raw, shorter)
    assert _changes(compare_runs(*unequal))["latency_median_ms"].note == ""


def test_without_raw_values_latency_is_judged_by_effect_size(tmp_path: Path) -> None:
    for side in ("a", "b"):
        base, cand = _pair(tmp_path, cand_over={"onnxruntime": {"peak_rss_mb": 80.0}})
        (tmp_path / f"{side}.json").unlink()
        changes = _changes(compare_runs(base, cand))
        assert changes["latency_median_ms"].note == "no raw values: effect size only"
        assert changes["latency_median_ms"].p_value is None
        assert changes["peak_rss_mb"].note == "" and changes["peak_rss_mb"].significant


def test_a_zero_or_missing_baseline_is_not_measured(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"energy_per_inf_mj": 0.0}},
                       {"onnxruntime": {"energy_per_inf_mj": 1.0}})
    energy = _changes(compare_runs(base, cand))["energy_per_inf_mj"]
    assert energy.note == "not measured" and not energy.significant
    assert np.isnan(energy.ratio)


def test_settings_mismatches_are_listed_exactly(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"backend_version": "1.0"}},
                       {"onnxruntime": {"backend_version": "2.0", "settings": '{"threads": 2}'}})
    case = compare_runs(base, cand).cases[0]
    assert case.mismatches == ["backend_version: 1.0 vs 2.0",
                               'settings: {"threads": 1} vs {"threads": 2}']
    assert compare_runs(base, base).cases[0].mismatches == []
    verdict = judge(compare_runs(base, cand), Thresholds())
    assert verdict.problems == [
        ("lstm/fp32/onnxruntime single_stream s24 t1 b1: measured under different settings "
        '(backend_version: 1.0 vs 2.0; settings: {"threads": 1} vs {"threads": 2}); use '
        "--allow-mismatch to compare")]
    assert judge(compare_runs(base, cand), Thresholds(), allow_mismatch=True).exit_code == 0


@pytest.mark.parametrize("base_meter, cand_meter, mismatch", [
    ("rapl", "ina219", True), ("none", "rapl", False), ("rapl", "rapl", False)])
def test_two_power_meters_are_a_mismatch(tmp_path: Path, base_meter: str, cand_meter: str,
                                         mismatch: bool) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"power_meter": base_meter}},
                       {"onnxruntime": {"power_meter": cand_meter}})
    expected = [f"power_meter: {base_meter} vs {cand_meter}"] if mismatch else []
    assert compare_runs(base, cand).cases[0].mismatches == expected


def test_an_emulated_row_is_never_judged_against_a_real_one(tmp_path: Path) -> None:
    from edge_rnn_harness.board.environment import EMULATED_MARK

    emulated = {"onnxruntime": {"device": f"box{EMULATED_MARK}"}}
    base, cand = _pair(tmp_path, cand_over=emulated)
    assert compare_runs(base, cand).cases[0].problems[0].startswith("device mismatch")
    both = _pair(tmp_path, emulated, emulated)
    assert compare_runs(*both).cases[0].problems == []


@pytest.mark.parametrize("override, problem", [
    ({"latency_median_ms": None}, "baseline row is ok but its latency_median_ms is empty"),
    ({"latency_median_ms": -1.0}, ("baseline row is ok but its latency_median_ms is -1.0: "
                                  "not a positive number")),
    ({"latency_median_ms": 0.5}, ("baseline CSV says median 0.5 ms but its pyperf JSON's "
                                 "values give")),
])
def test_an_ok_row_that_cannot_be_judged_says_why(tmp_path: Path, override: dict,
                                                  problem: str) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": override})
    assert compare_runs(base, cand).cases[0].problems[0].startswith(problem)
    failed = _pair(tmp_path, {"onnxruntime": {**override, "status": "failed"}})
    assert compare_runs(*failed).cases[0].problems == []  # only ok rows need a latency


@pytest.mark.parametrize("value", [float("inf"), 0.0])
def test_a_latency_that_is_not_a_positive_number_cannot_be_judged(tmp_path: Path,
                                                                   value: float) -> None:
    """pyperf refuses to write either; edited in: an infinite value is a problem of that
    case, a zero makes the file unreadable (pyperf's own check)."""
    import json

    base, cand = _pair(tmp_path)
    suite = json.loads(cand.with_suffix(".json").read_text())
    suite["benchmarks"][0]["runs"][0]["values"][0] = value
    cand.with_suffix(".json").write_text(json.dumps(suite))
    if value == 0.0:
        with pytest.raises(ValueError, match="not a pyperf JSON file"):
            compare_runs(base, cand)
        return
    assert compare_runs(base, cand).cases[0].problems == [
        "candidate pyperf JSON holds latencies that are not finite numbers"]


def test_the_json_beside_a_csv_is_found_from_either(tmp_path: Path) -> None:
    from edge_rnn_harness.analysis.compare import resolve_pair

    base, _ = _pair(tmp_path)
    assert resolve_pair(base) == (base, base.with_suffix(".json"))
    assert resolve_pair(base.with_suffix(".json")) == (base, base.with_suffix(".json"))
    with pytest.raises(ValueError, match="no results CSV at"):
        resolve_pair(base.with_suffix(".dat"))


def test_rename_joins_another_model_and_variant_as_the_same_case(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, cand_over={
        "onnxruntime": {"model": "lstm-structured", "variant": "int8-dynamic"},
        "openvino": {"model": "lstm-structured", "variant": "int8-dynamic"}})
    assert compare_runs(base, cand).cases == []
    joined = compare_runs(base, cand, rename={"lstm-structured": "lstm"},
                          rename_variants={"int8-dynamic": "fp32"})
    assert len(joined.cases) == 2 and not joined.only_base and not joined.only_cand


def test_comparison_records_are_frozen(tmp_path: Path) -> None:
    import dataclasses

    base, _ = _pair(tmp_path)
    comparison = compare_runs(base, base)
    metric_verdict = judge(comparison, Thresholds()).metrics[0]
    for record in (comparison, comparison.cases[0], comparison.cases[0].changes[0],
                   Thresholds(), metric_verdict):
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.cases = []  # type: ignore[misc, union-attr]


# --- the gate: thresholds, exact verdict lines ---


@pytest.mark.parametrize("limits, message", [
    ({"not_a_metric": 0.1}, "'not_a_metric' is not a gated metric"),
    ({"rmse": -0.01}, "--max-rmse-growth must be >= 0, got -0.01"),
    ({"rmse": float("nan")}, "--max-rmse-growth must be >= 0, got nan"),
])
def test_thresholds_refuse_nonsense(limits: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Thresholds(limits)


def test_a_growth_exactly_at_the_limit_passes() -> None:
    assert judge_ratio(1.5, None, None, True, 0.5) == PASS  # 0.5 is exact in binary
    assert judge_ratio(1.5, 1.2, 1.5, True, 0.5) == INCONCLUSIVE  # not ruled out


def test_a_zero_threshold_is_allowed_and_strict() -> None:
    assert Thresholds.with_limits(rmse=0.0).for_column("rmse") == 0.0
    assert judge_ratio(1.0, None, None, True, 0.0) == PASS
    assert judge_ratio(1.0001, None, None, True, 0.0) == REGRESSION


@pytest.mark.parametrize("ratio, low, high, significant, expected", [
    (1.5, 1.4, 1.6, True, REGRESSION),
    (1.5, 1.4, 1.6, False, INCONCLUSIVE),     # beyond the limit but not significant
    (1.05, 1.02, 1.09, True, PASS),           # high end within 1 + 0.10
    (1.05, 1.02, 1.10, True, INCONCLUSIVE),   # high end exactly at the limit: not ruled out
    (0.5, 0.45, 0.55, True, PASS),            # a speedup
    (1.09, None, None, True, PASS),           # a single number within the limit
    (1.11, None, None, True, REGRESSION),
    (1.2, None, None, False, INCONCLUSIVE),   # a single number, not significant
])
def test_judge_ratio_against_a_10_percent_limit(ratio: float, low: float | None,
                                                high: float | None, significant: bool,
                                                expected: str) -> None:
    assert judge_ratio(ratio, low, high, significant, 0.10) == expected


def test_verdict_lines_say_the_growth_and_the_limit_exactly(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"peak_rss_mb": 68.0}},
                       {"onnxruntime": {"peak_rss_mb": 85.0}, "openvino": {"peak_rss_mb": 70.0}})
    verdict = judge(compare_runs(base, cand), Thresholds())
    lines = {m.case.split("/")[2].split()[0]: m.detail for m in verdict.metrics
             if m.metric.column == "peak_rss_mb"}
    assert lines == {
        "onnxruntime": "lstm/fp32/onnxruntime single_stream s24 t1 b1: peak memory +25.0% "
                       "(68 -> 85), over the 10% limit",
        "openvino": "lstm/fp32/openvino single_stream s24 t1 b1: peak memory +2.9% "
                    "(68 -> 70), within the 10% limit"}
    smaller = _gate(tmp_path, {}, {"onnxruntime": {"peak_rss_mb": 40.0}})
    assert next(m.detail for m in smaller.metrics if m.metric.column == "peak_rss_mb") == (
        "lstm/fp32/onnxruntime single_stream s24 t1 b1: peak memory -41.2% (68 -> 40), "
        "within the 10% limit")


@pytest.mark.parametrize("seed, factor, sigma, values, resolves", [
    (38, 1.04, 0.3, 8, 29),    # +3.7%, interval 0.776-1.346
    (100, 1.0, 1.0, 6, 106),   # -25%, interval 0.290-2.401
])
def test_an_inconclusive_latency_says_what_this_data_resolves(
        tmp_path: Path, seed: int, factor: float, sigma: float, values: int,
        resolves: int) -> None:
    """Few noisy values: the interval reaches beyond 1.10 though the median grew less, so
    the gate cannot pass it; it says how wide a change the data resolves (half the
    interval's width) and the case is not among those that pass."""
    base = _spread_runs(seed, 1.0, 3, values, sigma)
    cand = _spread_runs(seed + 1, factor, 3, values, sigma)
    base_path = write_run(tmp_path / "a.csv", seed=1, raw={"onnxruntime": base,
                                                           "openvino": base})
    cand_path = write_run(tmp_path / "b.csv", seed=1, raw={"onnxruntime": cand,
                                                           "openvino": base})
    verdict = judge(compare_runs(base_path, cand_path), Thresholds())
    latency = next(m for m in verdict.metrics if m.metric.column == "latency_median_ms")
    assert latency.verdict == INCONCLUSIVE and verdict.exit_code == 2
    assert latency.ratio < 1.10 < latency.ci_high
    assert latency.detail.endswith(
        f"does not rule out a growth beyond the 10% limit (this data resolves changes of "
        f"about +-{resolves}%): measure more worker processes (--profile default or "
        f"rigorous), or use interleaved A/B mode (harness ab) or --history")
    assert f"its 95% interval {latency.ci_low:.3f}-{latency.ci_high:.3f}" in latency.detail
    assert verdict.passed == ["lstm/fp32/openvino single_stream s24 t1 b1"]


def test_a_throttled_row_cannot_be_judged_and_an_empty_flag_can(tmp_path: Path) -> None:
    hot = _gate(tmp_path, cand_over={"openvino": {"throttled": True}})
    assert hot.problems == [("lstm/fp32/openvino single_stream s24 t1 b1: candidate was "
                            "thermally throttled; re-measure it")]
    unknown = _gate(tmp_path, {"openvino": {"throttled": None}},
                    {"openvino": {"throttled": None}})
    assert unknown.problems == [] and unknown.exit_code == 0


def test_a_failed_first_case_does_not_stop_the_others(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, cand_over={"onnxruntime": {"status": "failed", "reason": "x",
                                                         "latency_median_ms": None}})
    assert verdict.exit_code == 1 and len(verdict.regressions) == 1
    assert verdict.passed == ["lstm/fp32/openvino single_stream s24 t1 b1"]


def test_a_problem_in_the_first_case_does_not_stop_the_others(tmp_path: Path) -> None:
    verdict = _gate(tmp_path, cand_over={"onnxruntime": {"throttled": True}})
    assert len(verdict.problems) == 1
    assert verdict.passed == ["lstm/fp32/openvino single_stream s24 t1 b1"]


def test_a_first_case_missing_from_the_candidate_does_not_stop_the_others(
        tmp_path: Path) -> None:
    base, cand = _pair(tmp_path)
    lines = cand.read_text().splitlines()
    cand.write_text("\n".join([lines[0], lines[2]]) + "\n")  # openvino only
    comparison = compare_runs(base, cand)
    assert [c.key[2] for c in comparison.cases] == ["openvino"]
    assert [k[2] for k in comparison.only_base] == ["onnxruntime"]


def test_a_change_exactly_at_the_minimum_effect_is_significant(tmp_path: Path) -> None:
    base = _spread_runs(8, 1.0, 6, 100, 0.02)
    cand = _spread_runs(9, 1.03, 6, 100, 0.02)
    effect = abs(_latency_change(tmp_path, base, cand, min_effect=0.01).ratio - 1)
    assert _latency_change(tmp_path, base, cand, min_effect=effect).significant


def test_compare_defaults_are_the_documented_ones() -> None:
    """README: significant at p < 0.01 and a change of at least 5%."""
    defaults = inspect.signature(compare_runs).parameters
    assert (defaults["alpha"].default, defaults["min_effect"].default) == (0.01, 0.05)


def test_more_values_in_the_candidate_is_not_a_pair(tmp_path: Path) -> None:
    base_runs, cand_runs = _golden_runs()
    over = {"onnxruntime": {"interleaving": "calls", "run_id": "ab1"}}
    raw = {"onnxruntime": [list(r[:-1] * 25e-6) for r in base_runs]}
    longer = {"onnxruntime": [list(r * 25e-6) for r in cand_runs]}
    pair = _pair(tmp_path, over, over, raw, longer)
    assert _changes(compare_runs(*pair))["latency_median_ms"].note == ""


def test_a_zero_median_cannot_be_judged(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"latency_median_ms": 0.0}})
    assert compare_runs(base, cand).cases[0].problems == [
        "baseline row is ok but its latency_median_ms is 0.0: not a positive number"]


def test_another_suffix_is_not_taken_for_the_json(tmp_path: Path) -> None:
    from edge_rnn_harness.analysis.compare import resolve_pair

    base, _ = _pair(tmp_path)
    for suffix in (".txt", ".zip"):
        with pytest.raises(ValueError, match="no results CSV at"):
            resolve_pair(base.with_suffix(suffix))


def test_a_resample_count_that_is_not_a_multiple_of_the_chunk() -> None:
    """150 replicates: one chunk of 100, one of 50 (pinned, seeded)."""
    base, cand = _golden_runs()
    assert bootstrap_ratio_ci(base, cand, 50, resamples=150) == pytest.approx(
        (1.1811868877966814, 1.256889694049738), rel=1e-9)



# --- parity records and their validation ---


@pytest.mark.parametrize("atol, rtol", [(-1e-12, 0.0), (0.0, -1e-12), (math.inf, 0.0),
                                        (0.0, math.inf), (float("inf"), 0.0),
                                        (0.0, float("inf")), (math.nan, 0.0), (0.0, math.nan)])
def test_a_tolerance_must_be_finite_and_not_negative(atol: float, rtol: float) -> None:
    with pytest.raises(ValueError, match="tolerances must be finite numbers >= 0"):
        Tolerance(atol=atol, rtol=rtol)


def test_a_zero_tolerance_is_exact_equality() -> None:
    tol = Tolerance(atol=0.0, rtol=0.0)
    assert compare_outputs({"y": np.array([2.0])}, {"y": np.array([2.0])}, tol).within
    assert not compare_outputs({"y": np.array([2.0 + 1e-15])}, {"y": np.array([2.0])},
                               tol).within


def test_parity_records_are_frozen() -> None:
    import dataclasses

    result = compare_outputs({"y": np.array([1.0])}, {"y": np.array([1.0])},
                             Tolerance(atol=0.1, rtol=0.0))
    for record in (Tolerance(atol=0.1, rtol=0.0), result, result.outputs["y"]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.within = False  # type: ignore[misc, union-attr]


@pytest.mark.parametrize("out_size, ref_size, message", [
    (1, 2, "output 'y' has 1 elements, the reference 2"),
    (3, 2, "output 'y' has 3 elements, the reference 2"),
])
def test_outputs_of_another_size_cannot_be_compared(out_size: int, ref_size: int,
                                                    message: str) -> None:
    from edge_rnn_harness.core.parity import ParityError

    with pytest.raises(ParityError, match=re.escape(message)):
        compare_outputs({"y": np.zeros(out_size)}, {"y": np.zeros(ref_size)},
                        Tolerance(atol=0.1, rtol=0.0))


def test_large_outputs_of_one_size_compare() -> None:
    """300 elements each (beyond the integers CPython caches): the sizes are equal."""
    result = compare_outputs({"y": np.ones(300)}, {"y": np.ones(300)},
                             Tolerance(atol=0.0, rtol=0.0))
    assert result.within and result.max_abs_err == 0.0 and result.max_rel_err == 0.0


@pytest.mark.parametrize("a_error, b_error, worst", [
    (0.5, 0.2, "b"),    # a: 0.5 of 1.1 allowed; b: 0.2 of 0.1 -> b is furthest beyond
    (1.0, 0.05, "a"),   # a: 0.91 of its allowance; b: 0.5 of its allowance
    (0.5, 0.08, "b"),   # both within: a 0.45, b 0.8 of the allowance
    (0.5, 0.04, "a"),   # both within: a 0.45, b 0.4
    (0.0, 0.0, "a"),    # nothing off: the first output
])
def test_parity_worst_output_by_excess_over_its_allowance(a_error: float, b_error: float,
                                                          worst: str) -> None:
    ref = {"a": np.array([100.0]), "b": np.array([0.0])}
    result = compare_outputs({"a": np.array([100.0 + a_error]), "b": np.array([b_error])},
                             ref, Tolerance(atol=0.1, rtol=0.01))
    assert result.worst_output == worst
    assert result.max_abs_err == pytest.approx(max(a_error, b_error))
    assert result.outputs["b"].max_rel_err == pytest.approx(b_error / 1e-6)


def test_an_empty_output_has_zero_errors() -> None:
    result = compare_outputs({"y": np.zeros(0)}, {"y": np.zeros(0)},
                             Tolerance(atol=0.0, rtol=0.0))
    assert result.within and (result.max_abs_err, result.max_rel_err) == (0.0, 0.0)
    exact = compare_outputs({"a": np.zeros(0), "b": np.ones(2)},
                            {"a": np.zeros(0), "b": np.ones(2)}, Tolerance(atol=0.0, rtol=0.0))
    assert exact.worst_output == "a"  # nothing off anywhere: the first output


# --- the checks' verdicts and the one status rule (core.status) ---


def test_parity_beyond_for_fp16_is_invalid_and_a_worker_without_parity_is_not_worst() -> None:
    mixed = _benchmark({}, _parity_meta(0, 3e-4))
    for name in ("fp16", "int8-static"):
        assert parity_verdict(mixed, get_variant(name)).status == "invalid"
    assert "max_abs_err 0.0003," in parity_verdict(mixed, get_variant("fp32")).reason


def _quality(benchmark: object, variant: object) -> dict[str, str]:
    from edge_rnn_harness.measure.aggregate import forecast_verdict

    return row_status([parity_verdict(benchmark, variant), forecast_verdict(benchmark)])


def test_degenerate_forecasts_make_an_ok_row_invalid() -> None:
    fp32 = get_variant("fp32")
    clean = _benchmark(_parity_meta(1, 1e-7), _parity_meta(1, 1e-7))
    assert _quality(clean, fp32) == {"status": "ok", "reason": ""}
    constant = _benchmark({**_parity_meta(1, 1e-7), "accuracy_problem": "constant forecasts"},
                          _parity_meta(1, 1e-7))
    assert _quality(constant, fp32) == {
        "status": "invalid", "reason": "degenerate forecasts: constant forecasts"}
    broken = _benchmark({**_parity_meta(0, 1.0), "accuracy_problem": "constant forecasts"})
    assert _quality(broken, fp32)["status"] == "failed"  # the parity verdict first


def test_rmse_growth_beyond_the_variant_policy_makes_an_ok_row_invalid() -> None:
    from edge_rnn_harness.measure.aggregate import growth_verdict

    int8 = get_variant("int8-dynamic")  # at most +5% over the same backend's fp32
    assert int8.max_rmse_growth == get_variant("int8-static").max_rmse_growth == 0.05
    assert growth_verdict({"status": "ok", "rmse": 1.05 * 0.06, "fp32_rmse": 0.06}, int8) == \
        Finding("accuracy_policy")  # +5% exactly: within
    assert growth_verdict({"status": "ok", "rmse": 0.0631, "fp32_rmse": 0.06},
                          int8).status == "invalid"  # +5.2%
    grown = {"status": "ok", "rmse": 0.08, "fp32_rmse": 0.06}
    verdict = growth_verdict(grown, int8)
    assert verdict.status == "invalid"
    assert verdict.reason.startswith("accuracy policy: ")
    assert growth_verdict({**grown, "rmse": 0.0601}, int8) == Finding("accuracy_policy")
    assert growth_verdict({"status": "ok", "rmse": 0.08}, int8) == Finding(
        "accuracy_policy")  # no fp32 to compare
    failed = Finding("parity", "failed", "parity: output 'y' ...")  # parity comes first
    assert row_status([verdict, failed]) == {"status": "failed", "reason": failed.reason}


def test_the_row_status_follows_the_checks_precedence() -> None:
    note = Finding("parity", "ok", "the reference held NaN")
    throttled = Finding("throttle", "invalid", "throttled during the case: soft temp limit")
    policy = Finding("accuracy_policy", "invalid", "accuracy policy: +30% RMSE")
    assert row_status([]) == {"status": "ok", "reason": ""}
    assert row_status([throttled, note]) == {
        "status": "invalid",
        "reason": "throttled during the case: soft temp limit; the reference held NaN"}
    assert row_status([throttled, policy, note])["reason"].startswith("accuracy policy")
    assert row_status([note, Finding("forecasts")]) == {"status": "ok",
                                                        "reason": "the reference held NaN"}
    with pytest.raises(ValueError, match="unknown check"):
        Finding("speed", "invalid", "slow")
    with pytest.raises(ValueError, match="ok, failed or invalid"):
        Finding("parity", "skipped", "no")


@pytest.mark.parametrize(("row", "fails"), [
    ({"status": "ok", "reason": ""}, False),
    ({"status": "unsupported", "reason": "ncnn has no int8-dynamic variant"}, False),
    ({"status": "skipped", "reason": "openvino is not installed (No module named "
                                     "'openvino')"}, False),
    ({"status": "skipped", "reason": "a TFLite interpreter is not installed (No module named "
                                     "'tflite_runtime')"}, False),
    ({"status": "skipped", "reason": "device pi (127.0.0.1:1): unreachable"}, True),
    ({"status": "skipped", "reason": "the bundle has no onnxruntime fp16 artifact for lstm"},
     True),
    ({"status": "skipped", "reason": None}, True),
    ({"status": "failed", "reason": "openvino is not installed (it vanished)"}, True),
    ({"status": "invalid", "reason": "throttled"}, True),
])
def test_a_run_fails_for_every_case_that_could_not_run_but_a_missing_runtime(
        row: dict, fails: bool) -> None:
    from edge_rnn_harness.core.status import failed_run, not_installed

    assert failed_run(row) is fails
    assert not_installed("ncnn", "No module named 'ncnn'") == \
        "ncnn is not installed (No module named 'ncnn')"
    assert failed_run({"status": "skipped", "reason": not_installed("x", "y")}) is False
    # statuses read from a file are new strings, not the module's constants
    from_file = str(read_status_text("skipped"))
    assert failed_run({"status": from_file, "reason": "board down"}) is True


def read_status_text(text: str) -> str:
    """`text` as a new string object, as a status read from a results file is."""
    return "".join(list(text))


def test_a_status_finding_is_a_value() -> None:
    assert hash(Finding("parity")) == hash(Finding("parity"))
    assert Finding("throttle", "invalid", "hot") == Finding("throttle", "invalid", "hot")


@pytest.mark.parametrize("version, expected", [("1.32.0", "1.32.0"), ("-", None)])
def test_the_runtime_version_comes_from_the_workers(version: str, expected: str | None) -> None:
    fields = measurement_fields(_benchmark({"backend_version": version}), batch=1)
    assert fields.get("backend_version") == expected


# --- compare: the remaining boundaries (the last mutation survivors) ---


@pytest.mark.parametrize("base_count, cand_count", [(2, 3), (3, 2)])
def test_one_process_more_is_not_identical_measurements(tmp_path: Path, base_count: int,
                                                        cand_count: int) -> None:
    runs = _spread_runs(21, 1.0, 3, 40, 0.05)
    latency = _latency_change(tmp_path, runs[:base_count], runs[:cand_count])
    assert latency.note != "identical measurements" and latency.p_value != 1.0


def test_the_paired_p_value_is_wilcoxon_on_log_ratios_of_either_sign(tmp_path: Path) -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(7)
    base_runs = [rng.lognormal(0, 0.1, 50) for _ in range(4)]
    cand_runs = [b * rng.lognormal(0.01, 0.05, 50) for b in base_runs]  # signs mixed
    over = {"onnxruntime": {"interleaving": "calls", "run_id": "ab1"}}
    pair = _pair(tmp_path, over, over, {"onnxruntime": [list(r * 25e-6) for r in base_runs]},
                 {"onnxruntime": [list(r * 25e-6) for r in cand_runs]})
    latency = _changes(compare_runs(*pair))["latency_median_ms"]
    expected = wilcoxon(np.log(np.concatenate(cand_runs) * 25e-6)
                        - np.log(np.concatenate(base_runs) * 25e-6)).pvalue
    assert 1e-6 < expected < 0.5
    assert latency.p_value == pytest.approx(expected, rel=1e-9)


def test_an_interval_ending_exactly_at_1_from_below_is_not_significant(tmp_path: Path) -> None:
    base = [[50e-6] * 40, [50e-6] * 40]
    cand = [[25e-6] * 40, [50e-6] * 40]
    change = _latency_change(tmp_path, base, cand)
    assert (change.ci_low, change.ci_high) == (0.5, 1.0) and change.p_value < 1e-6
    assert not change.significant


def test_a_small_decrease_of_a_single_number_is_not_significant(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, cand_over={"onnxruntime": {"peak_rss_mb": 66.0}})
    assert not _changes(compare_runs(base, cand))["peak_rss_mb"].significant  # -2.9%
    effect = abs(66.0 / 68.0 - 1)
    assert _changes(compare_runs(base, cand, min_effect=effect))["peak_rss_mb"].significant


@pytest.mark.parametrize("base_over, cand_over", [
    ({"interleaving": "processes", "run_id": "ab1"}, {"interleaving": "processes",
                                                      "run_id": "ab1"}),
    ({"interleaving": "calls", "run_id": "ab2"}, {"interleaving": "calls", "run_id": "ab1"}),
    ({"interleaving": "processes", "run_id": "ab1"}, {"interleaving": "calls",
                                                      "run_id": "ab1"}),
])
def test_only_one_interleaved_run_is_a_pair(tmp_path: Path, base_over: dict,
                                            cand_over: dict) -> None:
    base_runs, cand_runs = _golden_runs()
    pair = _pair(tmp_path, {"onnxruntime": base_over}, {"onnxruntime": cand_over},
                 {"onnxruntime": [list(r * 25e-6) for r in base_runs]},
                 {"onnxruntime": [list(r * 25e-6) for r in cand_runs]})
    assert _changes(compare_runs(*pair))["latency_median_ms"].note == ""


@pytest.mark.parametrize("base_value, cand_value, expected", [
    ("2.0", "1.0", "backend_version: 2.0 vs 1.0"),
    (None, "1.0", "backend_version: None vs 1.0"),
])
def test_a_mismatch_either_way_or_against_an_empty_cell(tmp_path: Path, base_value: object,
                                                        cand_value: str, expected: str) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"backend_version": base_value}},
                       {"onnxruntime": {"backend_version": cand_value}})
    assert compare_runs(base, cand).cases[0].mismatches == [expected]


def test_an_emulated_baseline_is_not_judged_against_a_real_candidate(tmp_path: Path) -> None:
    from edge_rnn_harness.board.environment import EMULATED_MARK

    base, cand = _pair(tmp_path, {"onnxruntime": {"device": f"box{EMULATED_MARK}"}})
    assert compare_runs(base, cand).cases[0].problems[0].startswith("device mismatch")


def test_raw_values_are_found_under_the_current_benchmark_name(tmp_path: Path) -> None:
    import json

    base, cand = _pair(tmp_path)
    for path in (base, cand):
        json_path = path.with_suffix(".json")
        suite = json.loads(json_path.read_text())
        for bench in suite["benchmarks"]:
            for run in bench["runs"]:
                name = run["metadata"].get("name") if "metadata" in run else None
                if name:
                    run["metadata"]["name"] = name.replace("/t1/", "/single_stream/s24/t1/")
            meta = bench.get("metadata", {})
            if "name" in meta:
                meta["name"] = meta["name"].replace("/t1/", "/single_stream/s24/t1/")
        json_path.write_text(json.dumps(suite))
    assert "lstm/fp32/onnxruntime/single_stream/s24/t1/b1" in json.dumps(
        json.loads(cand.with_suffix(".json").read_text()))
    latency = _changes(compare_runs(base, cand))["latency_median_ms"]
    assert latency.note == "identical measurements"  # the raw values were found


def test_a_skipped_row_needs_no_latency(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path, {"onnxruntime": {"status": "skipped", "reason": "x",
                                                  "latency_median_ms": None}})
    assert compare_runs(base, cand).cases[0].problems == []


def test_the_planted_bugs_still_match_the_source() -> None:
    """tools/planted_bugs.py plants each bug by replacing one exact snippet: each must still
    occur exactly once, or the tool cannot plant it (and would prove nothing)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    try:
        from mutation import ROOT
        from planted_bugs import BUGS
    finally:
        sys.path.pop(0)
    for bug in BUGS:
        assert (ROOT / bug.path).read_text().count(bug.old) == 1, bug.key
