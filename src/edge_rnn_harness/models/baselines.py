"""Classical forecasts that give every RMSE its context, fitted and scored on the same
chronological splits as the networks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_rnn_harness.models.features import HOURS_PER_DAY
from edge_rnn_harness.models.metrics import mae, rmse

if TYPE_CHECKING:
    from edge_rnn_harness.models.data import Splits


def _target_column(x: np.ndarray) -> np.ndarray:
    return x[:, :, 0].astype(np.float64)  # feature 0 is always the target series


def persistence_forecast(x: np.ndarray, horizon: int) -> np.ndarray:
    """The last hour of each window (n, seq_len, features) repeated `horizon` times:
    (n, horizon), the forecast any useful model must beat."""
    return np.repeat(_target_column(x)[:, -1:], horizon, axis=1)


def baseline_forecasts(splits: Splits) -> dict[str, np.ndarray]:
    """Test-split forecasts (n, horizon) of: persistence (the last hour again), the same
    hour yesterday, and AR(seq_len) fitted by least squares on the training split."""
    test = _target_column(splits.test.x)
    horizon = splits.test.y.shape[1]
    seq_len = test.shape[1]
    forecasts = {"persistence": persistence_forecast(splits.test.x, horizon)}
    if seq_len >= HOURS_PER_DAY:
        lag = seq_len - HOURS_PER_DAY
        forecasts["same hour yesterday"] = test[:, lag:lag + horizon]
    train = _target_column(splits.train.x)
    design = np.column_stack([train, np.ones(len(train))])
    coefficients, *_ = np.linalg.lstsq(design, splits.train.y.astype(np.float64), rcond=None)
    forecasts[f"AR({seq_len}) least squares"] = \
        np.column_stack([test, np.ones(len(test))]) @ coefficients
    return forecasts


def baseline_scores(splits: Splits) -> dict[str, dict[str, float]]:
    """{baseline name: {"rmse": ..., "mae": ...}} on the test split."""
    return {name: {"rmse": rmse(forecast, splits.test.y), "mae": mae(forecast, splits.test.y)}
            for name, forecast in baseline_forecasts(splits).items()}
