"""Streaming and batch scenarios, window-length and batch sweeps, scaling curves, the
runtime's own latency and call paths, and `harness tune`: real runtimes on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.analysis.report_scaling import fitted_exponent, growth_words, stops_growing
from edge_rnn_harness.core.plan import Case, Shapes, artifact_form, build_plan
from edge_rnn_harness.core.results import read_results
from tests.conftest import relu_onnx, run_cli

pytestmark = pytest.mark.slow

ALL_BACKENDS = ("torch", "onnxruntime", "tflite", "openvino", "ncnn")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module (forms are exported once, then reused)."""
    return tmp_path_factory.mktemp("scenarios") / "bundle"


def _run(cache: Path, out: Path, *args: str):
    return run_cli("run", "--model", "tiny", "--profile", "quick", "--power", "none",
                   "--bundle-dir", str(cache), "--out", str(out), *args, timeout=900)


def _rows(path: Path) -> list[dict]:
    return read_results(path).to_dict("records")


def test_shapes_make_every_combination_once() -> None:
    default = Shapes().for_model(24)
    assert default == [("single_stream", 24, 1)]
    swept = Shapes(None, (24, 168), (1, 8)).for_model(24)
    assert swept == [("single_stream", 24, 1), ("batch", 24, 8),
                     ("single_stream", 168, 1), ("batch", 168, 8)]
    chosen = Shapes(("single_stream", "streaming", "batch"), (24, 48), (1, 4)).for_model(24)
    assert chosen == [("single_stream", 24, 1), ("single_stream", 48, 1),
                      ("streaming", 24, 1), ("batch", 24, 1), ("batch", 24, 4),
                      ("batch", 48, 1), ("batch", 48, 4)]
    plan = build_plan([("m", 24)], ["fp32"], ["a", "b"], [1], shapes=Shapes(None, None, (1, 2)))
    assert [(c.backend, c.batch, c.scenario) for c in plan] == [
        ("a", 1, "single_stream"), ("b", 1, "single_stream"), ("a", 2, "batch"),
        ("b", 2, "batch")]


def test_each_case_runs_the_form_its_shape_needs() -> None:
    case = Case("m", "fp32", "onnxruntime", 1, 24)
    assert artifact_form(case, 24) == ""
    assert artifact_form(Case("m", "fp32", "x", 1, 168, batch=8, scenario="batch"), 24) \
        == "s168-b8"
    assert artifact_form(Case("m", "fp32", "x", 1, 24, scenario="streaming"), 24) == "step"


def test_fitted_exponents_and_where_throughput_stops() -> None:
    x = np.array([24.0, 48, 96, 168])
    assert fitted_exponent(x, 0.01 * x) == pytest.approx(1.0)
    assert fitted_exponent(x, 0.01 * x ** 2) == pytest.approx(2.0)
    assert growth_words(1.5) == "faster than linear" and growth_words(1.02) == "about linear"
    assert stops_growing(np.array([1.0, 8, 64]), np.array([100.0, 700, 720])) == 8
    assert stops_growing(np.array([1.0, 8, 64]), np.array([100.0, 700, 5000])) is None


def test_a_seq_len_and_batch_sweep_gives_a_row_each_with_rmse_where_it_applies(
        cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    result = _run(cache, out, "--backends", "onnxruntime", "--seq-len", "24,48",
                  "--batch", "1,4")
    assert result.returncode == 0, result.stderr
    rows = {(r["backend"], r["seq_len"], r["batch"]): r for r in _rows(out)}
    assert len(rows) == 4
    for seq_len in (24, 48):
        for batch in (1, 4):
            row = rows[("onnxruntime", seq_len, batch)]
            assert row["status"] == "ok" and row["max_abs_err"] < 1e-5
            assert row["scenario"] == ("single_stream" if batch == 1 else "batch")
            assert (row["rmse"] is not None and not np.isnan(row["rmse"])) == (seq_len == 24)
            assert row["throughput_ips"] == pytest.approx(batch * 1000 / row["latency_mean_ms"],
                                                          rel=1e-6)
    # the batched forecasts are the single ones: the same rmse over the test split
    assert rows[("onnxruntime", 24, 4)]["rmse"] == pytest.approx(
        rows[("onnxruntime", 24, 1)]["rmse"], rel=1e-6)
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Scaling" in text and "latency grows as seq_len^" in text
    assert "latency grows as batch^" in text and (tmp_path / "report" / "scaling.png").is_file()


def test_streaming_steps_reproduce_the_window_forecast_on_every_backend(
        cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "stream.csv"
    result = _run(cache, out, "--backends", "all", "--scenario", "single_stream,streaming")
    assert result.returncode == 0, result.stderr
    rows = {(r["backend"], r["scenario"]): r for r in _rows(out)}
    for backend in ALL_BACKENDS:
        step, window = rows[(backend, "streaming")], rows[(backend, "single_stream")]
        assert step["status"] == "ok", step["reason"]
        assert step["max_abs_err"] < 1e-5  # 24 steps from zero state vs the window model
        assert step["rmse"] == pytest.approx(window["rmse"], rel=1e-5)  # on the test split
        settings = json.loads(step["settings"])
        assert settings["step_inputs"] == "x,h,c" and settings["scenario"] == "streaming"
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Streaming" in text and "tiny/fp32/ncnn" in text.split("## Streaming")[1]


def test_ncnn_refuses_a_batch_it_would_cut_to_one_sample(tmp_path: Path) -> None:
    """ncnn feeds each input without its first axis: a batch of 4 would silently run one
    window, so the export refuses it (an `unsupported` row) before calling pnnx."""
    from edge_rnn_harness.backends.base import Signature, UnsupportedModel
    from edge_rnn_harness.backends.ncnn_net import NcnnBackend

    batched = Signature({"x": np.zeros((4, 24, 1), np.float32)}, ("y",))
    with pytest.raises(UnsupportedModel, match=r"ncnn has no batch axis.*'x' of shape \(4, 24, 1\) would lose 3"):
        NcnnBackend.import_onnx(tmp_path / "unused.onnx", batched, "fp32", tmp_path)


def test_a_bundle_carries_the_step_graph_to_a_device(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    exported = run_cli("export", "--model", "tiny", "--backends", "onnxruntime", "--scenario",
                       "streaming", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["bundle_schema"] == 3
    assert [a.get("form", "") for a in manifest["artifacts"]] == ["step"]
    out = tmp_path / "device.csv"
    ran = run_cli("run", "--bundle", str(bundle), "--scenario", "streaming,single_stream",
                  "--backends", "onnxruntime", "--profile", "quick", "--power", "none",
                  "--out", str(out))
    assert ran.returncode == 1, ran.stderr  # a planned case the bundle lacks fails the run
    rows = {r["scenario"]: r for r in _rows(out)}
    assert rows["streaming"]["status"] == "ok"
    window = rows["single_stream"]  # not exported: the device never exports
    assert window["status"] == "skipped" and "the bundle has no onnxruntime fp32 artifact" \
        in window["reason"]


def test_a_model_brought_with_fixed_shapes_is_unsupported_for_other_shapes(
        tmp_path: Path) -> None:
    model = relu_onnx(tmp_path / "relu.onnx")
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", str(model), "--backends", "onnxruntime", "--scenario",
                     "streaming", "--profile", "quick", "--power", "none", "--bundle-dir",
                     str(tmp_path / "b"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = _rows(out)
    assert row["status"] == "unsupported" and "fixed shapes" in row["reason"]


def test_call_paths_keep_parity_and_openvino_reports_its_own_latency(
        cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    result = _run(cache, out, "--backends", "onnxruntime,openvino", "--tune",
                  "onnxruntime.call=iobinding", "--tune", "openvino.call=bound")
    assert result.returncode == 0, result.stderr
    rows = {r["backend"]: r for r in _rows(out)}
    for backend, call in (("onnxruntime", "iobinding"), ("openvino", "bound")):
        assert rows[backend]["status"] == "ok" and rows[backend]["max_abs_err"] < 1e-5
        assert json.loads(rows[backend]["settings"])["call"] == call
    own = rows["openvino"]["runtime_latency_median_ms"]
    assert 0 < own < rows["openvino"]["latency_median_ms"] * 5
    assert rows["onnxruntime"]["runtime_latency_median_ms"] is None \
        or np.isnan(rows["onnxruntime"]["runtime_latency_median_ms"])


def test_tune_measures_every_setting_and_its_file_is_applied(cache: Path,
                                                             tmp_path: Path) -> None:
    tune_file = tmp_path / "ncnn.tune.json"
    result = run_cli("tune", "--backend", "ncnn", "--model", "tiny", "--bundle-dir",
                     str(cache), "--threads", "1", "--profile", "quick", "--out",
                     str(tmp_path / "tune"), "--write", str(tune_file), timeout=900)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("pass 1 [") == 2  # lightmode on/off
    assert "default: threads=1 lightmode=on" in result.stdout
    saved = json.loads(tune_file.read_text())
    assert saved["backend"] == "ncnn" and saved["threads"] == 1
    # the printed verdict, the saved setting and the saved evidence agree
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("ncnn: "))
    best = next(line for line in result.stdout.splitlines() if line.startswith("best: "))
    low, high = saved["ratio_ci"]
    if verdict.startswith("ncnn: significantly faster"):
        assert saved["significant"] is True and high < 1.0
        assert f"lightmode={saved['tuning']['lightmode']}" in best
        assert f"95% CI {low:.3f}-{high:.3f}" in verdict
    else:
        assert verdict.startswith(("ncnn: not significantly faster", ("ncnn: no setting was "
                                                                      "faster")))
        assert saved["significant"] is False and high >= 1.0
        assert saved["tuning"] == {"lightmode": "on"}  # the default is kept
    out = tmp_path / "tuned.csv"
    ran = _run(cache, out, "--backends", "ncnn,onnxruntime", "--tune-file", str(tune_file))
    assert ran.returncode == 0, ran.stderr
    rows = {r["backend"]: r for r in _rows(out)}
    assert json.loads(rows["ncnn"]["settings"])["lightmode"] == saved["tuning"]["lightmode"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**saved, "tuning": {"lightmode": "sideways"}}))
    refused = _run(cache, tmp_path / "x.csv", "--tune-file", str(bad))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "lightmode must be one of" in refused.stderr


def test_a_tune_files_thread_count_replaces_its_backends_only() -> None:
    from edge_rnn_harness.cli.tune_file import tuned_threads

    cases = build_plan([("m", 24)], ["fp32"], ["a", "b"], [1, 2])
    assert [(c.backend, c.threads) for c in tuned_threads(("a", 4), cases)] == [
        ("a", 4), ("b", 1), ("b", 2)]


@pytest.mark.parametrize("option, value, message", [
    ("--seq-len", "9000", "from 1 to 8,760"), ("--batch", "5000", "from 1 to 4,096"),
    ("--scenario", "bursty", "unknown scenario 'bursty'")])
def test_shape_options_are_bounded(tmp_path: Path, option: str, value: str,
                                   message: str) -> None:
    result = run_cli("run", "--model", "tiny", option, value, "--out",
                     str(tmp_path / "r.csv"))
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "r.csv").exists()
