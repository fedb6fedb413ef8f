"""What a deployed forecaster pays: the cold_start scenario (a fresh process per forecast)
and the paced scenario (calls after an idle interval), on real runtimes and the tiny model;
their planning, clocks and bounds as units."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from edge_rnn_harness.core.metrics import COLD_START_METRICS
from edge_rnn_harness.core.plan import (
    Case,
    Shapes,
    artifact_form,
    interval_label,
    paced_interval_s,
)
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.clock import paced_time_calls
from tests.conftest import run_cli

ALL_BACKENDS = ("torch", "onnxruntime", "tflite", "openvino", "ncnn")


def test_paced_cases_are_one_per_interval_and_run_the_plain_artifact() -> None:
    shapes = Shapes(("single_stream", "cold_start", "paced"), None, (1, 8), (0.01, 1.0, 60.0))
    assert shapes.for_model(24) == [("single_stream", 24, 1), ("cold_start", 24, 1),
                                    ("paced-10ms", 24, 1), ("paced-1s", 24, 1),
                                    ("paced-60s", 24, 1)]
    for scenario in ("cold_start", "paced-10ms"):
        assert artifact_form(Case("m", "fp32", "x", 1, 24, scenario=scenario), 24) == ""
    assert [interval_label(s) for s in (0.01, 0.25, 1.0, 1.5, 60.0)] == [
        "10ms", "250ms", "1s", "1.5s", "60s"]
    assert paced_interval_s("paced-250ms") == pytest.approx(0.25)
    assert paced_interval_s("paced-60s") == 60.0
    assert paced_interval_s("single_stream") is None


def test_a_paced_value_is_the_call_alone_after_its_sleep() -> None:
    events: list[str] = []
    ticks = iter(range(0, 1000, 10))

    def sleep(seconds: float) -> None:
        events.append(f"sleep {seconds}")

    def run(fed: object) -> None:
        events.append("run")
    elapsed = paced_time_calls(3, run, None, 0.5, clock=lambda: next(ticks) * 1_000_000,
                               sleep=sleep)
    assert events == ["sleep 0.5", "run"] * 3  # sleep first, never inside the timing
    assert elapsed == pytest.approx(3 * 0.010)  # three calls of 10 ms each, no sleep


@pytest.mark.parametrize(("text", "labels"), [("10ms,1s", ["10ms", "1s"]),
                                              ("1000ms,1s,60s", ["1s", "60s"]),
                                              ("0.5s", ["500ms"])])
def test_intervals_read_with_their_units(text: str, labels: list[str]) -> None:
    from edge_rnn_harness.cli.options import intervals

    assert intervals(text) == labels


@pytest.mark.parametrize("bad", ["10", "0ms", "-1s", "2h", "nanms", "3601s", "fast"])
def test_a_bad_interval_is_refused_in_one_line(bad: str, tmp_path: Path) -> None:
    result = run_cli("run", "--model", "tiny", "--scenario", "paced", f"--interval={bad}",
                     "--out", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "is not an interval such as 10ms or 1s" in result.stderr


@pytest.mark.slow
def test_cold_start_and_paced_rows_for_every_backend_and_the_report(tmp_path: Path) -> None:
    """The issue's acceptance, at test scale: every backend gives ok cold_start and paced
    rows with their new columns, and the report shows both scenarios."""
    out = tmp_path / "deployed.csv"
    result = run_cli("run", "--model", "tiny", "--backends", "all", "--scenario",
                     "cold_start,paced", "--interval", "10ms,100ms", "--paced-calls", "5",
                     "--cold-samples", "2", "--profile", "quick", "--power", "none",
                     "--bundle-dir", str(tmp_path / "bundle"), "--out", str(out),
                     timeout=900)
    assert result.returncode == 0, result.stderr
    assert "paced cases: 2 process(es) x 5 calls (+1 warm-up) after each interval: about " \
           "7 s of idling" in result.stderr  # 5 backends x 2 x 6 x (0.01 + 0.1) s
    rows = read_results(out).set_index(["backend", "scenario"])
    assert set(rows.index) == {(b, s) for b in ALL_BACKENDS
                               for s in ("cold_start", "paced-10ms", "paced-100ms")}
    assert (rows["status"] == "ok").all(), rows["reason"].dropna().to_dict()
    for backend in ALL_BACKENDS:
        cold = rows.loc[(backend, "cold_start")]
        phases = [float(cold[metric.column]) for metric in COLD_START_METRICS]
        assert all(value >= 0 for value in phases) and cold["n_values"] == 2
        # the phases add up to exec -> forecast written (medians of each: within 25%)
        assert sum(phases) == pytest.approx(float(cold["latency_median_ms"]), rel=0.25)
        assert cold["page_cache"] == "warm" and cold["peak_rss_mb"] > 10
        assert cold["max_abs_err"] <= 1e-5 and pd.isna(cold["rmse"])  # rmse: single_stream
        for interval in ("10ms", "100ms"):
            paced = rows.loc[(backend, f"paced-{interval}")]
            assert paced["n_values"] == 10  # 2 processes x 5 calls
            assert paced["paced_penalty"] == pytest.approx(
                paced["latency_median_ms"] / paced["back_to_back_median_ms"])
    # torch's import is the slowest: it shows in its runtime-import phase
    imports = rows.xs("cold_start", level="scenario")["cold_runtime_import_ms"]
    assert imports.idxmax() == "torch"
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Cold start" in text and "## Paced calls" in text
    assert "A cron-style forecast here is fastest with" in text
    assert text.count("paced-10ms") >= 5 and text.count(" cold_start ") >= 5


def test_cold_samples_and_paced_calls_are_bounded(tmp_path: Path) -> None:
    for option, value, message in (("--cold-samples", "0", "from 1 to 100"),
                                   ("--cold-samples", "101", "from 1 to 100"),
                                   ("--paced-calls", "1001", "from 1 to 1,000")):
        result = run_cli("run", "--model", "tiny", option, value, "--out",
                         str(tmp_path / "r.csv"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
