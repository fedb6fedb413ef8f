"""Forecast error metrics, in the target's units (numpy only: workers import this)."""

from __future__ import annotations

import numpy as np


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error, in the target's units."""
    diff = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return float(np.sqrt(np.mean(diff ** 2)))


def mae(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error, in the target's units."""
    diff = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return float(np.mean(np.abs(diff)))
