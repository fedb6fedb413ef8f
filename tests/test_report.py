"""harness report: the Markdown report and its PNG plots."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge_rnn_harness.analysis.figures import pareto_front
from tests.conftest import run_cli, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_front_keeps_only_undominated_points() -> None:
    latency = np.array([1.0, 2.0, 3.0, 0.5, 2.5])
    error = np.array([0.30, 0.20, 0.25, 0.40, 0.10])
    assert list(pareto_front(latency, error)) == [3, 0, 1, 4]


def test_report_writes_markdown_and_plots(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.csv", seed=1,
                    openvino={"energy_per_inf_mj": 0.42, "energy_net_per_inf_mj": 0.30,
                              "power_meter": "rapl", "power_covers": "CPU package energy"})
    lines = run.read_text().splitlines()
    failed = lines[1].replace(",ok,", ",failed,").replace("lstm,fp32,onnxruntime",
                                                         "gru,fp32,onnxruntime")
    run.write_text("\n".join([*lines, failed]) + "\n")
    out = tmp_path / "report"
    result = run_cli("report", str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    for name in ("latency.png", "memory_size.png", "pareto.png", "energy.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        assert f"]({name})" in report
    assert "| model" in report and "onnxruntime" in report
    assert "## Cases that did not measure" in report and "gru/fp32/onnxruntime" in report
    assert "- `rapl`: CPU package energy" in report
    assert re.search(r"\|\s*0\.420\s*\|\s*0\.300\s*\|", report)
    assert not (out / "frequency.png").exists()


def test_report_of_a_frequency_sweep_plots_against_frequency(tmp_path: Path) -> None:
    """Two rows of one backend at 600 and 1200 MHz (a DVFS sweep): the frequency plot."""
    run = write_run(tmp_path / "run.csv", seed=1,
                    onnxruntime={"backend": "openvino", "cpu_freq_khz": 600000,
                                 "latency_median_ms": 0.05, "latency_p90_ms": 0.06},
                    openvino={"cpu_freq_khz": 1200000, "latency_median_ms": 0.025})
    out = tmp_path / "report"
    result = run_cli("report", str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert "](frequency.png)" in report
    assert re.search(r"\|\s*600\s*\|", report) and re.search(r"\|\s*1200\s*\|", report)
    assert (out / "frequency.png").read_bytes().startswith(PNG_MAGIC)


def test_report_without_energy_says_so(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run_cli("report", str(write_run(tmp_path / "run.csv", seed=1)), "--out", str(out))
    assert result.returncode == 0
    assert "not measured (no power meter" in (out / "report.md").read_text()
    assert not (out / "energy.png").exists()


def test_report_of_a_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("x\n1\n")
    result = run_cli("report", str(bad), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "not a results CSV" in result.stderr


def test_pareto_front_treats_rmse_below_the_tie_margin_as_equal() -> None:
    """fp32 runtimes differ in RMSE by ~1e-8 GW: the slower one is not 'more accurate'."""
    latency = np.array([0.08, 0.13, 0.05, 0.30])
    error = np.array([0.0596287645, 0.059628744, 0.0606, 0.0574])
    assert list(pareto_front(latency, error)) == [2, 0, 3]


def test_report_shows_each_variant_against_its_fp32(tmp_path: Path) -> None:
    from edge_rnn_harness.core.results import ResultsWriter, new_row

    common = dict(run_id="r", model="lstm", scenario="single_stream", threads=1, batch=1,
                  seq_len=24, dataset="elecdemand", latency_p90_ms=0.2, peak_rss_mb=60.0,
                  rss_delta_mb=20.0)
    writer = ResultsWriter(tmp_path / "run.csv")
    writer.append(new_row(**common, variant="fp32", backend="onnxruntime", status="ok",
                          latency_median_ms=0.08, artifact_bytes=76279, rmse=0.0596288))
    writer.append(new_row(**common, variant="int8-dynamic", backend="onnxruntime",
                          status="ok", latency_median_ms=0.09, artifact_bytes=24262,
                          rmse=0.0606201, fp32_rmse=0.0596288))
    writer.append(new_row(**common, variant="int8-static", backend="tflite", status="invalid",
                          reason="degenerate forecasts", latency_median_ms=0.06,
                          artifact_bytes=217038, rmse=0.1887, fp32_rmse=0.0596))
    writer.append(new_row(**common, variant="fp16", backend="onnxruntime",
                          status="unsupported", reason="no float16 kernels"))
    writer.close()
    out = tmp_path / "report"
    result = run_cli("report", str(tmp_path / "run.csv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    section = report.split("## Precision variants")[1].split("\n## ")[0]
    assert re.search(r"int8-dynamic\s*\|\s*onnxruntime\s*\|\s*ok\s*\|.*\|\s*24,262\s*\|"
                     r"\s*0\.0606\s*\|\s*\+1\.66%", section)
    assert re.search(r"int8-static\s*\|\s*tflite\s*\|\s*invalid\s*\|.*\+216\.61%", section)
    assert "fp16" not in section  # unsupported pairs are listed under cases not measured
    assert "](pareto.png)" in report


def test_an_ok_row_with_an_infinite_figure_is_left_out_of_the_plots_and_named(
        tmp_path: Path) -> None:
    run = write_run(tmp_path / "r.csv", seed=1, openvino={"peak_rss_mb": float("inf")})
    result = run_cli("report", str(run), "--out", str(tmp_path / "rep"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Rows left out of the plots\n\n- lstm/fp32/openvino single_stream s24 t1 b1: peak_rss_mb is inf" in text
    assert (tmp_path / "rep" / "memory_size.png").is_file()  # the other row is plotted
