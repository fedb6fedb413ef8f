"""Training, distillation and pruning on the real data with a few epochs (the committed
models are not retrained here), and the committed weights' records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from edge_rnn_harness.models.data import elecdemand
from edge_rnn_harness.models.registry import MODELS, ModelEntry, TrainConfig
from edge_rnn_harness.models.spec import ModelSpec
from edge_rnn_harness.models.train import recurrent_sparsity, train_model

SMALL = ModelSpec(cell="lstm", hidden_size=8, input_features=5)
FEATURES = MODELS["lstm"].features


def _entry(name: str, **train: object) -> ModelEntry:
    return ModelEntry(name, SMALL, "test", FEATURES, f"{name}.pt",
                      TrainConfig(epochs=2, **train))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("weights")
    return out, train_model(_entry("small"), elecdemand(), out)


def test_training_writes_weights_and_record(trained: tuple[Path, dict]) -> None:
    out, record = trained
    assert (out / "small.pt").is_file()
    assert json.loads((out / "small.json").read_text()) == record
    assert record["data_sha256"] == elecdemand().digest()
    assert record["split_windows"] == {"train": 6115, "val": 1310, "test": 1311}
    assert record["params"] == SMALL.parameter_count()
    assert 0 < record["test_rmse"] < 1.0 and 0 < record["test_mae"] <= record["test_rmse"]
    assert 1 <= record["best_epoch"] <= 2
    assert set(record["baselines_test_rmse"]) == {"persistence", "same hour yesterday",
                                                  "AR(24) least squares"}


def test_training_is_deterministic(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, record = trained
    again = train_model(_entry("small"), elecdemand(), tmp_path)
    assert again["test_rmse"] == record["test_rmse"]
    first = torch.load(out / "small.pt", weights_only=True)
    second = torch.load(tmp_path / "small.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_standardisation_is_fitted_on_training_split(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    state = torch.load(out / "small.pt", weights_only=True)
    train_targets = elecdemand().frame["target"].to_numpy()[: 6115 + 24]
    assert float(state["input_mean"][0]) == pytest.approx(train_targets.mean(), rel=1e-2)
    assert float(state["output_std"][0]) == pytest.approx(train_targets.std(), rel=5e-2)


def test_distillation_reads_the_teacher(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    record = train_model(_entry("pupil", teacher="small", distill_alpha=0.5), elecdemand(),
                         out, models={"small": _entry("small")})
    assert record["teacher"] == "small" and record["distill_alpha"] == 0.5
    assert record["test_rmse"] < 1.0


def test_pruning_zeroes_half_the_recurrent_weights(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    entry = _entry("pruned", prune_from="small", prune_amount=0.5)
    record = train_model(entry, elecdemand(), out, models={"small": _entry("small")})
    assert record["recurrent_sparsity"] == pytest.approx(0.5, abs=0.01)
    model = dataclasses.replace(entry, weights_dir=out).load()
    assert recurrent_sparsity(model) == pytest.approx(0.5, abs=0.01)


def test_missing_teacher_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train it first: harness train --model nobody"):
        train_model(_entry("pupil", teacher="nobody"), elecdemand(), tmp_path)


# --- the committed weights (trained by `harness train --model all`) ---

def _record(name: str) -> dict:
    record = MODELS[name].record()
    assert record is not None, f"models/weights/{name}.json is missing"
    return record


@pytest.mark.parametrize("name", [n for n, e in MODELS.items() if e.train is not None])
def test_every_trainable_model_has_committed_weights(name: str) -> None:
    record = _record(name)
    assert MODELS[name].weights_path().is_file()
    assert record["data_sha256"] == elecdemand().digest()
    assert record["params"] == MODELS[name].spec.parameter_count()


def test_default_lstm_beats_every_baseline() -> None:
    record = _record("lstm")
    assert all(record["test_rmse"] < rmse for rmse in record["baselines_test_rmse"].values())


def test_covariates_make_the_default_model_better() -> None:
    assert _record("lstm")["test_rmse"] < _record("lstm-uni")["test_rmse"]


def test_student_is_4x_smaller_and_within_5_percent_of_teacher() -> None:
    teacher, student = _record("lstm-teacher"), _record("lstm-student")
    assert teacher["params"] >= 4 * student["params"]
    assert student["test_rmse"] <= 1.05 * teacher["test_rmse"]


def test_pruned_model_is_half_sparse() -> None:
    assert _record("lstm-pruned")["recurrent_sparsity"] == pytest.approx(0.5, abs=0.01)
