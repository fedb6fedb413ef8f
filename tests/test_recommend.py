"""`harness recommend` on crafted results files: budget edges, ties, an invalid row that
would win, nothing fitting, mixed devices and scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_rnn_harness.analysis.recommend import pareto_set, recommend
from edge_rnn_harness.core.results import new_row, read_results
from tests.conftest import run_cli, write_rows


def _row(backend: str, median_ms: float, half_ci_ms: float = 0.001, **fields: object) -> dict:
    """An ok lstm fp32 row of `backend` with its median's 95% interval +- half_ci_ms."""
    base = dict(run_id="r", model="lstm", variant="fp32", backend=backend,
                scenario="single_stream", threads=1, batch=1, seq_len=24, status="ok",
                latency_median_ms=median_ms, latency_median_ci_low_ms=median_ms - half_ci_ms,
                latency_median_ci_high_ms=median_ms + half_ci_ms, peak_rss_mb=60.0,
                artifact_bytes=76_800, rmse=0.0596, device="box",
                settings=json.dumps({"threads": 1}))
    base.update(fields)
    return new_row(**base)


_file = write_rows


def _recommend(path: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli("recommend", str(path), *args)
    return done.returncode, done.stdout, done.stderr


def test_a_value_exactly_at_each_limit_fits(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030, peak_rss_mb=64.0,
                                          artifact_bytes=75 * 1024, energy_per_inf_mj=0.5),
                 _row("ncnn", 0.0300001, peak_rss_mb=40.0))
    code, out, _ = _recommend(path, "--max-latency-ms", "0.03", "--max-rss-mb", "64",
                              "--max-size-kb", "75", "--max-energy-mj", "0.5")
    assert code == 0, out
    assert "recommended: lstm/fp32/onnxruntime" in out
    assert "runner-up: none (the only configuration that fits)" in out
    assert "ncnn single_stream s24 t1 b1: median latency 0.0300001 ms > 0.03 ms" in out
    assert "no energy per inference measured (--max-energy-mj)" in out  # ncnn has none


def test_an_invalid_row_that_would_win_never_ranks(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030),
                 _row("tflite", 0.010, status="invalid", reason="throttled during the case"),
                 _row("openvino", 0.005, status="failed", reason="parity"))
    code, out, _ = _recommend(path)
    assert code == 0 and "recommended: lstm/fp32/onnxruntime" in out
    assert "lstm/fp32/tflite single_stream s24 t1 b1: status invalid: never ranked" in out
    assert "lstm/fp32/openvino single_stream s24 t1 b1: status failed: never ranked" in out


def test_the_runner_up_is_a_tie_unless_the_intervals_are_apart(tmp_path: Path) -> None:
    overlapping = _file(tmp_path / "tie.csv", _row("onnxruntime", 0.030, 0.002),
                        _row("tflite", 0.031, 0.002))
    code, out, _ = _recommend(overlapping)
    assert code == 0
    assert "runner-up: lstm/fp32/tflite" in out
    assert "tie: the medians' 95% intervals overlap" in out
    apart = _file(tmp_path / "apart.csv", _row("onnxruntime", 0.030, 0.0004),
                  _row("tflite", 0.031, 0.0004))
    code, out, _ = _recommend(apart)
    assert "faster beyond both 95% intervals" in out and "tie:" not in out
    touching = _file(tmp_path / "touching.csv", _row("onnxruntime", 0.030, 0.0005),
                     _row("tflite", 0.031, 0.0005))  # high 0.0305 == low 0.0305
    assert "tie: the medians' 95% intervals overlap" in _recommend(touching)[1]


def test_nothing_fitting_exits_1_and_names_the_nearest(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030, peak_rss_mb=90.0),
                 _row("tflite", 0.040, peak_rss_mb=50.0),
                 _row("ncnn", 0.001, status="invalid", reason="degenerate forecasts"))
    code, out, _ = _recommend(path, "--max-latency-ms", "0.025", "--max-rss-mb", "55")
    assert code == 1
    assert "nothing fits the budgets" in out
    # onnxruntime misses memory by 64%, tflite latency by 60%: tflite is nearer
    assert "nearest: lstm/fp32/tflite single_stream s24 t1 b1" in out
    assert "misses: median latency 0.04 ms > 0.025 ms" in out
    assert "ncnn" not in out.split("nearest:")[1].split("\n")[0]  # never an invalid row


def test_rmse_growth_is_against_the_same_backends_fp32(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030),
                 _row("onnxruntime", 0.020, variant="int8-dynamic", rmse=0.0610,
                      fp32_rmse=0.0596, artifact_bytes=30_000),
                 _row("tflite", 0.015, variant="int8-dynamic", rmse=0.0700, fp32_rmse=0.0596))
    code, out, _ = _recommend(path, "--max-rmse-growth", "3")
    assert code == 0 and "recommended: lstm/int8-dynamic/onnxruntime" in out
    assert "RMSE growth over the backend's fp32 17.4497 % > 3 %" in out
    code, out, _ = _recommend(path, "--max-rmse-growth", "2")
    assert "recommended: lstm/fp32/onnxruntime" in out  # int8 grew 2.35%


def test_mixed_devices_and_scenarios_are_refused_in_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030, device_name="pi4"),
                 _row("onnxruntime", 0.010, device_name="pi5"))
    code, _, err = _recommend(path)
    assert code == 2 and err.count("\n") == 1
    assert "the rows come from 2 devices (pi4, pi5)" in err and "--device" in err
    code, out, _ = _recommend(path, "--device", "pi4")
    assert code == 0 and "median 0.03 ms" in out
    scenarios = _file(tmp_path / "s.csv", _row("onnxruntime", 0.030),
                      _row("onnxruntime", 0.5, scenario="batch", batch=8))
    code, _, err = _recommend(scenarios)
    assert code == 2 and "holds the scenarios batch, single_stream" in err
    code, out, _ = _recommend(scenarios, "--scenario", "batch")
    assert code == 0 and "--batch 8" in out


def test_the_reproduce_command_carries_non_default_tuning(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("ncnn", 0.030, threads=2, settings=json.dumps(
        {"threads": 2, "lightmode": "off", "precision": "fp32"})))
    code, out, _ = _recommend(path, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["winner"]["backend"] == "ncnn"
    assert data["reproduce"] == (f"harness run --bundle BUNDLE --model lstm --backends ncnn "
                                 f"--variants fp32 --threads 2 --scenario single_stream "
                                 f"--seq-len 24 --tune ncnn.lightmode=off --out "
                                 f"{tmp_path / 'r'}-again.csv")
    assert data["runner_up"] is None and data["distinguishable"] is None


def test_the_pareto_set_keeps_every_row_not_beaten_on_all_figures(tmp_path: Path) -> None:
    rows = [_row("a", 0.010, peak_rss_mb=90.0), _row("b", 0.020, peak_rss_mb=50.0),
            _row("c", 0.030, peak_rss_mb=95.0), _row("d", 0.010, peak_rss_mb=90.0)]
    frame = read_results(_file(tmp_path / "r.csv", *rows))
    found = recommend(frame, {})
    assert [r["backend"] for r in found.pareto] == ["a", "d", "b"]  # c is beaten by a
    assert pareto_set([]) == []


@pytest.mark.parametrize("args, message", [
    (("--max-latency-ms", "-1"), "must be a finite number >= 0"),
    (("--max-rss-mb", "nan"), "must be a finite number >= 0"),
    (("--scenario", "paced"), "no rows of scenario 'paced'"),
    (("--device", "pi9"), "--device pi9 has no rows"),
])
def test_bad_options_are_one_line(tmp_path: Path, args: tuple, message: str) -> None:
    path = _file(tmp_path / "r.csv", _row("onnxruntime", 0.030))
    code, _, err = _recommend(path, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_the_reproduce_command_names_a_deployed_scenarios_options(tmp_path: Path) -> None:
    path = _file(tmp_path / "r.csv", _row("ncnn", 160.0, scenario="cold_start", n_values=5),
                 _row("ncnn", 0.3, scenario="paced-1s"))
    code, out, _ = _recommend(path, "--scenario", "cold_start", "--format", "json")
    assert code == 0 and "--scenario cold_start --cold-samples 5 --seq-len 24" in \
        json.loads(out)["reproduce"]
    code, out, _ = _recommend(path, "--scenario", "paced-1s", "--format", "json")
    assert "--scenario paced --interval 1s --seq-len 24" in json.loads(out)["reproduce"]
