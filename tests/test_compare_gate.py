"""compare and gate on results files with known raw values (pyperf JSON beside each CSV)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyperf
import pytest

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.analysis.gate import Thresholds, judge
from edge_rnn_harness.core.metrics import judged_metrics
from edge_rnn_harness.core.results import SCHEMA_VERSION
from edge_rnn_harness.measure.stats import bootstrap_ratio_ci
from tests.conftest import run_cli, write_run


def test_bootstrap_ci_brackets_the_true_ratio() -> None:
    base = [np.full(100, 1.0) * f for f in (0.98, 1.0, 1.02)]
    cand = [np.full(100, 1.5) * f for f in (0.98, 1.0, 1.02)]
    low, high = bootstrap_ratio_ci(base, cand, 50, resamples=300)
    assert low < 1.5 < high and low > 1.3


def test_same_file_passes(tmp_path: Path) -> None:
    run = write_run(tmp_path / "x.csv", seed=1)
    result = run_cli("gate", str(run), str(run))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS (2 case(s) pass" in result.stdout


def test_noise_between_two_runs_passes(tmp_path: Path) -> None:
    verdict = judge(compare_runs(write_run(tmp_path / "a.csv", seed=1),
                                 write_run(tmp_path / "b.csv", seed=2, factor=1.02)),
                    Thresholds())
    assert verdict.exit_code == 0, verdict


def test_slowdown_of_half_is_a_named_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    slow = write_run(tmp_path / "b.csv", seed=2, factor=1.5)
    result = run_cli("gate", str(base), str(slow))
    assert result.returncode == 1
    assert "regression: lstm/fp32/onnxruntime single_stream s24 t1 b1: median latency +5" \
        in result.stdout
    assert "openvino" in result.stdout


def test_small_significant_change_below_threshold_passes(tmp_path: Path) -> None:
    comparison = compare_runs(write_run(tmp_path / "a.csv", seed=1),
                              write_run(tmp_path / "b.csv", seed=2, factor=1.07))
    change = comparison.cases[0].changes[0]
    assert change.significant and 1.04 < change.ratio < 1.10
    assert judge(comparison, Thresholds()).exit_code == 0  # 7% < 10% max slowdown
    assert judge(comparison, Thresholds.with_limits(latency_median_ms=0.05)).exit_code == 1


def test_change_below_min_effect_is_never_significant(tmp_path: Path) -> None:
    comparison = compare_runs(write_run(tmp_path / "a.csv", seed=1),
                              write_run(tmp_path / "b.csv", seed=1, factor=1.03),
                              min_effect=0.05)
    assert not comparison.cases[0].changes[0].significant


def test_missing_candidate_case_cannot_be_judged(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2)
    lines = cand.read_text().splitlines()
    cand.write_text("\n".join(lines[:2]) + "\n")  # header + onnxruntime only
    result = run_cli("gate", str(base), str(cand))
    assert result.returncode == 2
    assert "openvino single_stream s24 t1 b1: missing from the candidate" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ({"throttled": True}, "thermally throttled"),
    ({"status": "invalid", "reason": "too few values"}, "row is invalid"),
    ({"backend_version": "2.0"}, "backend_version: 1.0 vs 2.0"),
])
def test_unjudgeable_rows_exit_2(tmp_path: Path, override: dict, message: str) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2, openvino=override)
    result = run_cli("gate", str(base), str(cand))
    assert result.returncode == 2
    assert message in result.stdout


def test_failed_candidate_is_a_regression(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2,
                     openvino={"status": "failed", "reason": "parity: max_abs_err 0.3"})
    result = run_cli("gate", str(base), str(cand))
    assert result.returncode == 1
    assert "candidate failed (parity: max_abs_err 0.3)" in result.stdout


@pytest.mark.parametrize("content, message", [
    ("not,a,results\nfile,at,all\n", "not a results CSV"),
    ("\x00\x01garbage", "not a results CSV"),
])
def test_malformed_csv_exits_2_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = run_cli("gate", str(base), str(bad))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_other_schema_version_exits_2(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    future = write_run(tmp_path / "b.csv", seed=2)
    future.write_text(future.read_text().replace(f"\n{SCHEMA_VERSION},", "\n99,"))
    result = run_cli("gate", str(base), str(future))
    assert result.returncode == 2
    assert "schema_version 99 is not readable" in result.stderr


def test_rmse_and_size_growth_are_gated(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=1,
                     onnxruntime={"rmse": 0.0700, "artifact_bytes": 90000})
    verdict = judge(compare_runs(base, cand), Thresholds())
    assert verdict.exit_code == 1
    assert any("RMSE +17" in item for item in verdict.regressions)
    assert any("artifact size +18" in item for item in verdict.regressions)


def test_summary_file_is_markdown(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    summary = tmp_path / "summary.md"
    result = run_cli("gate", str(base), str(write_run(tmp_path / "b.csv", seed=2, factor=1.5)),
                     "--summary", str(summary))
    assert result.returncode == 1
    text = summary.read_text()
    assert text.startswith("## REGRESSION") and "| case" in text and "median latency" in text


@pytest.mark.slow
def test_compare_formats_and_one_sided_cases(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2, factor=1.5)
    lines = cand.read_text().splitlines()
    cand.write_text("\n".join(lines[:2]) + "\n")
    as_json = run_cli("compare", str(base), str(cand), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    median = next(r for r in rows if r["metric"] == "latency_median_ms")
    assert median["significant"] and median["ratio"] == pytest.approx(1.5, rel=0.05)
    assert any(r["note"] == "baseline only" and "openvino" in r["case"] for r in rows)
    markdown = run_cli("compare", str(base), str(cand), "--format", "markdown")
    assert "| case" in markdown.stdout and "baseline only" in markdown.stdout
    as_csv = run_cli("compare", str(base), str(cand), "--format", "csv")
    assert as_csv.stdout.startswith("case,metric,base,cand,ratio")


@pytest.mark.slow
def test_compare_refuses_mismatched_settings_unless_allowed(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2, onnxruntime={"device": "raspberry pi 5"})
    refused = run_cli("compare", str(base), str(cand))
    assert refused.returncode == 2
    assert "device: box vs raspberry pi 5" in refused.stderr
    assert run_cli("compare", str(base), str(cand), "--allow-mismatch").returncode == 0


@pytest.mark.slow
def test_energy_from_two_different_meters_is_a_mismatch(tmp_path: Path) -> None:
    """RAPL (CPU package) and an INA219 (board rails) measure different things; a run
    with a meter against one without is not a mismatch (there is no energy to compare)."""
    energy = {"energy_per_inf_mj": 0.4, "energy_net_per_inf_mj": 0.1}
    base = write_run(tmp_path / "a.csv", seed=1, openvino={"power_meter": "rapl", **energy})
    cand = write_run(tmp_path / "b.csv", seed=2,
                     openvino={"power_meter": "hwmon:ina219", **energy})
    refused = run_cli("compare", str(base), str(cand))
    assert refused.returncode == 2 and "power_meter: rapl vs hwmon:ina219" in refused.stderr
    unmetered = write_run(tmp_path / "c.csv", seed=3, openvino={"power_meter": "none"})
    assert run_cli("compare", str(base), str(unmetered)).returncode == 0


def test_rename_model_joins_two_models_as_one_case(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2, factor=4.0,
                     onnxruntime={"model": "lstm-x4"}, openvino={"model": "lstm-x4"})
    # the JSON names the candidate's benchmarks after its own model
    suite = pyperf.BenchmarkSuite.load(str(cand.with_suffix(".json")))
    renamed = [pyperf.Benchmark([pyperf.Run(run.values, metadata={
        **run.get_metadata(), "name": bench.get_name().replace("lstm/", "lstm-x4/")},
        collect_metadata=False) for run in bench.get_runs()])
        for bench in suite.get_benchmarks()]
    pyperf.BenchmarkSuite(renamed).dump(str(cand.with_suffix(".json")), replace=True)
    result = run_cli("gate", str(base), str(cand), "--rename-model", "lstm-x4=lstm")
    assert result.returncode == 1
    assert "median latency +3" in result.stdout  # about +300%


def test_committed_example_baseline_gates_against_itself() -> None:
    baseline = Path(__file__).resolve().parents[1] / "results" / "baseline.csv"
    result = run_cli("gate", str(baseline), str(baseline))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS (5 case(s) pass" in result.stdout


def test_pyperf_json_paths_are_accepted_in_place_of_the_csvs(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    slow = write_run(tmp_path / "b.csv", seed=2, factor=1.5)
    result = run_cli("gate", str(base.with_suffix(".json")), str(slow.with_suffix(".json")))
    assert result.returncode == 1
    assert "median latency +5" in result.stdout


def test_schema_2_run_compares_with_a_schema_3_run(tmp_path: Path) -> None:
    """A file written before the energy and DVFS columns (schema 2: no cpu_freq_khz in its
    key) joins the same cases of a current file."""
    import pandas as pd

    old = write_run(tmp_path / "old.csv", seed=1)
    frame = pd.read_csv(old, dtype=str, keep_default_na=False)
    added = ["power_covers", "power_samples", "energy_net_per_inf_mj", "energy_inferences",
             "energy_seconds", "cpu_freq_khz", "cpu_freq_start_khz", "cpu_freq_end_khz",
             "cpu_freq_min_khz", "cpu_freq_max_khz", "kernel"]
    frame.drop(columns=added).assign(schema_version="2").to_csv(old, index=False)
    comparison = compare_runs(old, write_run(tmp_path / "new.csv", seed=2))
    assert len(comparison.cases) == 2 and not comparison.only_base
    assert not comparison.only_cand


@pytest.mark.slow
def test_emulated_rows_are_never_judged_against_a_real_device(tmp_path: Path) -> None:
    emulated = {"device": "qemu-aarch64 (emulated)"}
    base = write_run(tmp_path / "x86.csv", seed=1)
    cand = write_run(tmp_path / "arm.csv", seed=2, onnxruntime=emulated, openvino=emulated)
    gate = run_cli("gate", str(base), str(cand), "--allow-mismatch")
    assert gate.returncode == 2
    assert "device mismatch: baseline measured on box, candidate on qemu-aarch64 " \
           "(emulated)" in gate.stdout + gate.stderr
    compare = run_cli("compare", str(base), str(cand), "--allow-mismatch")
    assert compare.returncode == 2 and len(compare.stderr.strip().splitlines()) == 1
    assert "device mismatch" in compare.stderr
    both = write_run(tmp_path / "arm2.csv", seed=3, onnxruntime=emulated, openvino=emulated)
    assert run_cli("compare", str(cand), str(both)).returncode == 0


#: per gated metric: the candidate's override (+30%), and the options that leave the
#: other latency metric out of the way
_GROWTH = {
    "latency_median_ms": ({}, ()),
    "latency_p90_ms": ({}, ("--max-slowdown", "off")),
    "peak_rss_mb": ({"peak_rss_mb": 68.0 * 1.3}, ()),
    "artifact_bytes": ({"artifact_bytes": int(76279 * 1.3)}, ()),
    "rmse": ({"rmse": 0.0596 * 1.3}, ()),
    "energy_per_inf_mj": ({"energy_per_inf_mj": 1.3}, ()),
    "instructions_per_inf": ({"instructions_per_inf": 360_000 * 1.3,
                              "instructions_spread_pct": 0.02}, ()),
}


@pytest.mark.slow
@pytest.mark.parametrize("metric", judged_metrics(), ids=lambda m: m.gate_option)
def test_every_threshold_option_is_honoured_on_the_command_line(tmp_path: Path,
                                                                metric: object) -> None:
    """A 30% growth of one metric: its option at 50 passes, at 10 is a regression that
    names the metric."""
    override, others = _GROWTH[metric.column]  # type: ignore[attr-defined]
    latency = metric.percentile is not None  # type: ignore[attr-defined]
    base_fields = {"energy_per_inf_mj": {"energy_per_inf_mj": 1.0},
                   "instructions_per_inf": {"instructions_per_inf": 360_000.0,
                                            "instructions_spread_pct": 0.03}}.get(
        metric.column, {})  # type: ignore[attr-defined]
    base = write_run(tmp_path / "a.csv", seed=1, onnxruntime=base_fields, openvino=base_fields)
    cand = write_run(tmp_path / "b.csv", seed=2 if latency else 1,
                     factor=1.3 if latency else 1.0,
                     onnxruntime={**base_fields, **override}, openvino={**base_fields, **override})
    option = metric.gate_option  # type: ignore[attr-defined]
    loose = run_cli("gate", str(base), str(cand), *others, option, "50")
    assert loose.returncode == 0, loose.stdout
    strict = run_cli("gate", str(base), str(cand), *others, option, "10")
    assert strict.returncode == 1, strict.stdout
    assert f"{metric.label} +" in strict.stdout and "over the 10% limit" in strict.stdout  # type: ignore[attr-defined]


@pytest.mark.slow
def test_alpha_and_min_effect_are_honoured_on_the_command_line(tmp_path: Path) -> None:
    """A 30% slowdown on few noisy values (rank test p about 1e-6): a regression by
    default; with --alpha below that p-value, or a --min-effect larger than the change,
    not significant, so the gate cannot pass it either: inconclusive, exit 2."""
    def noisy(seed: int, factor: float) -> list[list[float]]:
        rng = np.random.default_rng(seed)
        return [list(25e-6 * factor * rng.lognormal(0.0, 0.3, 15)) for _ in range(6)]

    base = write_run(tmp_path / "a.csv", seed=1, raw={"onnxruntime": noisy(3, 1.0),
                                                      "openvino": noisy(3, 1.0)})
    slow = write_run(tmp_path / "b.csv", seed=2, raw={"onnxruntime": noisy(4, 1.3),
                                                      "openvino": noisy(3, 1.0)})
    assert run_cli("gate", str(base), str(slow)).returncode == 1
    for option, value in (("--alpha", "1e-12"), ("--min-effect", "60")):
        result = run_cli("gate", str(base), str(slow), option, value)
        assert result.returncode == 2, (option, result.stdout)
        assert "INCONCLUSIVE" in result.stdout


def test_an_inconclusive_verdict_names_a_case_that_is_not_stable(tmp_path: Path) -> None:
    """A 30% change the data cannot settle (--min-effect above it): the inconclusive line
    says which side's case is not stable, and why."""
    def noisy(seed: int, factor: float) -> list[list[float]]:
        rng = np.random.default_rng(seed)
        return [list(25e-6 * factor * rng.lognormal(0.0, 0.3, 15)) for _ in range(6)]

    unsteady = {"stability": "multimodal", "stability_reason": "worker process medians in "
                "groups 0.025 and 0.04 ms apart"}
    base = write_run(tmp_path / "a.csv", seed=1, raw={"onnxruntime": noisy(3, 1.0),
                                                      "openvino": noisy(3, 1.0)})
    cand = write_run(tmp_path / "b.csv", seed=2, raw={"onnxruntime": noisy(4, 1.3),
                                                      "openvino": noisy(3, 1.0)},
                     onnxruntime=unsteady)
    result = run_cli("gate", str(base), str(cand), "--min-effect", "60")
    assert result.returncode == 2, result.stdout
    line = next(text for text in result.stdout.splitlines()
                if text.strip().startswith("inconclusive: lstm/fp32/onnxruntime"))
    assert "the candidate is multimodal (worker process medians in groups" in line
    assert "the baseline is" not in line  # its row has no verdict: nothing said of it


def _closed_pipe_run(*args: str) -> tuple[int, str]:
    """Run the harness with stdout a pipe whose reader has already gone (as `| head -1`
    leaves it once head exits): (exit code, stderr)."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "edge_rnn_harness", *args],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=300, check=False)
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_a_reader_that_goes_away_changes_neither_verdict_nor_exit_code(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    code, stderr = _closed_pipe_run("gate", str(base), str(base))
    assert (code, stderr) == (0, "")  # a PASS stays exit 0, with no traceback
    slow = write_run(tmp_path / "b.csv", seed=2, factor=1.5)
    code, stderr = _closed_pipe_run("gate", str(base), str(slow))
    assert (code, stderr) == (1, "")  # a regression stays exit 1
    code, stderr = _closed_pipe_run("compare", str(base), str(slow), "--format", "csv")
    assert (code, stderr) == (0, "")


@pytest.mark.parametrize("fmt", ["markdown", "csv", "json", "table"])
def test_compare_names_every_case_it_cannot_judge_in_every_format(tmp_path: Path,
                                                                  fmt: str) -> None:
    base = write_run(tmp_path / "a.csv", seed=1)
    cand = write_run(tmp_path / "b.csv", seed=2, openvino={"latency_median_ms": None})
    result = run_cli("compare", str(base), str(cand), "--format", fmt)
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    if fmt == "table":  # a rich table wraps the note inside its cell
        assert "cannot judge:" in flat and "latency_median_ms" in flat
    else:
        assert "cannot judge: candidate row is ok but its latency_median_ms is empty" in flat
    assert "openvino" in flat


def test_compare_and_gate_say_when_the_two_sides_measured_different_models(
        tmp_path: Path) -> None:
    ident = {"model_id": "a" * 64, "artifact_id": "b" * 64}
    base = write_run(tmp_path / "a.csv", seed=1, onnxruntime=ident, openvino=ident)
    same = write_run(tmp_path / "s.csv", seed=2, onnxruntime=ident, openvino=ident)
    other = {"model_id": "c" * 64, "artifact_id": "d" * 64}
    cand = write_run(tmp_path / "b.csv", seed=2, onnxruntime=other, openvino=other)
    reexported = write_run(tmp_path / "r.csv", seed=2, onnxruntime={**ident,
                                                                   "artifact_id": "e" * 64},
                           openvino=ident)
    quiet = run_cli("compare", str(base), str(same))
    assert quiet.returncode == 0 and "note:" not in quiet.stderr
    said = run_cli("compare", str(base), str(cand), "--format", "csv")
    assert said.returncode == 0
    assert said.stderr.count("note:") == 1  # one line per model, not per case
    assert ("lstm: the baseline measured model aaaaaaaaaaaa, the candidate model "
            "cccccccccccc (two models compared, not two runs of one)") in said.stderr
    gate = run_cli("gate", str(base), str(cand))
    assert gate.returncode == 0 and "  note: lstm: the baseline measured model" in gate.stdout
    artifact = run_cli("gate", str(base), str(reexported))
    notes = [line for line in artifact.stdout.splitlines() if "note:" in line]
    assert notes == [("  note: lstm/fp32/onnxruntime single_stream s24 t1 b1: the same model, "
                      "another artifact (exported again: converter or settings)")]
