"""Accuracy through the CLI: rmse/mae per backend on the real test split, baselines beside
them, and the dataset options' errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.models.data import elecdemand
from edge_rnn_harness.models.registry import MODELS
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess,
                                                                Path]:
    tmp = tmp_path_factory.mktemp("acc")
    out = tmp / "b.csv"
    result = run_cli("run", "--backends", "torch,onnxruntime", "--model", "lstm",
                     "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp / "bundle"))
    return result, out


@pytest.mark.slow
def test_rows_have_accuracy_and_beat_ar24(lstm_run: tuple) -> None:
    result, out = lstm_run
    assert result.returncode == 0, result.stderr
    frame = read_results(out)
    assert list(frame["status"]) == ["ok", "ok"]
    assert (frame["dataset"] == "elecdemand").all()
    assert (frame["params"] == 18241).all()
    baselines = pd.read_csv(out.with_suffix(".baselines.csv")).set_index("baseline")
    ar24 = baselines.loc["AR(24) least squares", "rmse"]
    assert ar24 == pytest.approx(0.1401389245, rel=1e-6)  # least squares: CPU-independent
    record = MODELS["lstm"].record()
    # the committed record's RMSE, to float rounding across CPUs (tests/test_trained_models.py)
    assert frame["rmse"].tolist() == pytest.approx([record["test_rmse"]] * 2, rel=2e-5)
    assert frame["mae"].tolist() == pytest.approx([record["test_mae"]] * 2, rel=2e-5)
    torch_rmse, ort_rmse = frame["rmse"]
    assert abs(ort_rmse / torch_rmse - 1) < 1e-5  # fp32 runtimes agree (README: 2e-6)
    assert "AR(24) least squares" in result.stdout


@pytest.mark.slow
def test_user_series_trains_and_runs(tmp_path: Path) -> None:
    demand = elecdemand().frame["target"].to_numpy()[:1000]
    csv = tmp_path / "mine.csv"
    pd.DataFrame({"time": pd.date_range("2024-01-01", periods=1000, freq="h"),
                  "load_kw": demand * 1000}).to_csv(csv, index=False)
    weights = tmp_path / "weights"
    trained = run_cli("train", "--model", "lstm-uni", "--dataset", str(csv), "--column",
                      "load_kw", "--time-column", "time", "--out", str(weights),
                      "--epochs", "2")
    assert trained.returncode == 0, trained.stderr
    assert (weights / "lstm-uni.pt").is_file() and (weights / "lstm-uni.json").is_file()
    out = tmp_path / "r.csv"
    ran = run_cli("run", "--backends", "onnxruntime", "--model", "lstm-uni", "--weights-dir",
                  str(weights), "--dataset", str(csv), "--column", "load_kw", "--profile",
                  "quick", "--out", str(out), "--bundle-dir", str(tmp_path / "bundle"))
    assert ran.returncode == 0, ran.stderr
    row = read_results(out).iloc[0]
    assert row["status"] == "ok" and row["dataset"] == "mine.csv"
    assert np.isfinite(row["rmse"]) and row["rmse"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("content, args, message", [
    ("kw\n1\n2\n", ("--column", "load"), "no column 'load' for --column (columns: kw)"),
    ("kw\n" + "\n".join(map(str, range(50))) + "\n", ("--column", "kw"),
     "has 50 rows; 24-hour windows need at least"),
    ("kw\n1\nabc\n", ("--column", "kw"), "non-numeric value 'abc' at data row 2"),
    (None, ("--column", "kw"), "no such file"),
])
def test_bad_dataset_is_one_line_and_exit_2(tmp_path: Path, content: str | None,
                                            args: tuple, message: str) -> None:
    csv = tmp_path / "data.csv"
    if content is not None:
        csv.write_text(content)
    for command in (("run", "--model", "lstm-uni"), ("train", "--model", "lstm-uni",
                                                     "--out", str(tmp_path / "w"))):
        result = run_cli(*command, "--dataset", str(csv), *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_model_needing_covariates_names_the_models_that_fit(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("kw\n" + "\n".join(map(str, range(400))) + "\n")
    result = run_cli("run", "--model", "lstm", "--dataset", str(csv), "--column", "kw")
    assert result.returncode == 2
    assert "has no temperature, workday" in result.stderr
    assert "models this data fits: lstm-uni" in result.stderr


def test_train_refuses_to_overwrite_committed_weights_with_other_data(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("kw\n" + "\n".join(map(str, range(400))) + "\n")
    result = run_cli("train", "--model", "lstm-uni", "--dataset", str(csv), "--column", "kw")
    assert result.returncode == 2
    assert "--dataset needs --out DIR" in result.stderr


@pytest.mark.slow
def test_memory_describes_inference_not_the_accuracy_pass(tmp_path: Path) -> None:
    """A long series (40k test windows): rss_delta_mb with the accuracy pass equals the one
    without it, within 5 MiB (it was 40 MiB more when the pass's predictions piled up)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "long.csv"
    pd.DataFrame({"load": 5 + np.cumsum(rng.normal(0, 0.01, 270_000))}).to_csv(data, index=False)
    deltas = {}
    for flags in ((), ("--no-accuracy",)):
        out = tmp_path / f"r{len(flags)}.csv"
        result = run_cli("run", "--model", "lstm-uni", "--dataset", str(data), "--column",
                         "load", "--backends", "onnxruntime", "--profile", "quick", "--out",
                         str(out), "--bundle-dir", str(tmp_path / "bundle"), *flags)
        assert result.returncode == 0, result.stderr
        row = read_results(out).iloc[0]
        assert pd.notna(row["rmse"]) == (not flags)
        deltas[flags] = row["rss_delta_mb"]
    assert abs(deltas[()] - deltas[("--no-accuracy",)]) < 5, deltas
