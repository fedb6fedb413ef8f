"""Every trained model with committed weights, on every backend: exported, run over the
whole test split one window per call (as the worker's accuracy pass does), and its RMSE
compared with the committed training record.

The tolerance holds across CPUs: the records were written on other machines (AMD EPYC and
Intel Xeon VMs), and torch, onnxruntime, OpenVINO, LiteRT and ncnn each sum in their own
order, so fp32 forecasts differ from the record's by float rounding only: measured here
(Intel Xeon VM) the largest relative RMSE difference over all 40 model x backend pairs is
1.7e-6 (lstm-teacher on tflite; README); 2e-5 allows about 12x that and is still over 100x
tighter than the smallest RMSE difference between two of the models (lstm-structured
against lstm, 0.26%).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.backends.base import RunOptions
from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.bundle.export import export_artifact
from edge_rnn_harness.bundle.sources import RegisteredSource
from edge_rnn_harness.core.variants import get_variant
from edge_rnn_harness.measure.worker import forecast_accuracy
from edge_rnn_harness.models.data import elecdemand, make_splits
from edge_rnn_harness.models.registry import MODELS
from edge_rnn_harness.models.spec import INPUT_NAME, OUTPUT_NAME

pytestmark = pytest.mark.slow

#: largest relative difference between a backend's test RMSE and the committed record's
RECORD_RTOL = 2e-5
#: lstm runs on every backend (and every variant) in tests/test_variants.py
TRAINED = sorted(name for name, entry in MODELS.items()
                 if entry.train is not None and name != "lstm")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(model, backend) -> fp32 artifact, exported in this process (no child start-up)."""
    root = tmp_path_factory.mktemp("trained")
    artifacts = {}
    for name in TRAINED:
        for backend in BACKENDS.values():
            if backend.available() is None:
                entry = export_artifact(root, RegisteredSource(MODELS[name]), backend, "fp32")
                artifacts[(name, backend.name)] = root / entry["artifact"]["artifact"]
    return artifacts


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("name", TRAINED)
def test_trained_model_matches_its_training_record(exported: dict, name: str,
                                                   backend_name: str) -> None:
    backend = BACKENDS[backend_name]
    if backend.available() is not None:
        pytest.skip(backend.available())
    entry = MODELS[name]
    record = entry.record()
    splits = make_splits(elecdemand(), entry.features, entry.spec.seq_len, entry.spec.horizon)
    assert len(splits.test.x) == record["split_windows"]["test"]
    with backend.prepare(exported[(name, backend_name)], RunOptions(threads=1)) as model:
        accuracy = forecast_accuracy(model, splits.test.x, splits.test.y, get_variant("fp32"))
        fed = model.feed({INPUT_NAME: splits.test.x[:1]})  # the timing loop reuses one feed
        first = model.run(fed)[OUTPUT_NAME]
        for _ in range(2):
            np.testing.assert_array_equal(model.run(fed)[OUTPUT_NAME], first)
    assert "accuracy_problem" not in accuracy
    assert accuracy["rmse"] == pytest.approx(record["test_rmse"], rel=RECORD_RTOL)
    assert accuracy["mae"] == pytest.approx(record["test_mae"], rel=RECORD_RTOL)
