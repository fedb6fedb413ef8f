"""The real dataset, windowing, chronological splits, baselines and user CSV validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_rnn_harness.models.baselines import baseline_scores
from edge_rnn_harness.models.data import (
    COVARIATES,
    TARGET,
    elecdemand,
    from_csv,
    load_dataset,
    make_splits,
)

FEATURES = (TARGET, *COVARIATES)


@pytest.fixture(scope="module")
def demand() -> object:
    return elecdemand()


def test_elecdemand_is_a_real_hourly_year(demand: object) -> None:
    frame = demand.frame
    assert len(frame) == 8760 and list(frame.columns) == list(FEATURES)
    assert demand.units == "GW"
    assert 2.5 < frame[TARGET].min() < frame[TARGET].mean() < frame[TARGET].max() < 10
    assert set(frame["workday"].unique()) <= {0.0, 1.0}
    np.testing.assert_allclose(frame["hour_sin"] ** 2 + frame["hour_cos"] ** 2, 1.0)
    assert demand.digest() == elecdemand().digest()


def test_splits_are_chronological_70_15_15(demand: object) -> None:
    splits = make_splits(demand, FEATURES, seq_len=24, horizon=1)
    sizes = [len(s.y) for s in (splits.train, splits.val, splits.test)]
    assert sum(sizes) == 8760 - 24
    assert sizes == [6115, 1310, 1311]
    target = demand.frame[TARGET].to_numpy(np.float32)
    # window i of train ends just before target i; val and test follow in time order
    np.testing.assert_array_equal(splits.train.x[0, :, 0], target[:24])
    assert splits.train.y[0, 0] == target[24]
    assert splits.val.y[0, 0] == target[24 + 6115]
    assert splits.test.y[-1, 0] == target[-1]
    assert splits.train.x.shape == (6115, 24, 5) and splits.test.y.shape == (1311, 1)


def test_baselines_match_the_measured_figures(demand: object) -> None:
    scores = baseline_scores(make_splits(demand, (TARGET,), 24, 1))
    assert scores["persistence"]["rmse"] == pytest.approx(0.2251450679, rel=1e-9)
    assert scores["same hour yesterday"]["rmse"] == pytest.approx(0.4770303789, rel=1e-9)
    assert scores["AR(24) least squares"]["rmse"] == pytest.approx(0.1401389245, rel=1e-6)


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


def test_user_csv_with_time_column(tmp_path: Path) -> None:
    times = pd.date_range("2024-03-01", periods=300, freq="h")
    path = _csv(tmp_path, pd.DataFrame({"when": times, "kw": np.arange(300.0)}))
    dataset = from_csv(path, "kw", "when")
    assert list(dataset.frame.columns) == [TARGET, "hour_sin", "hour_cos"]
    assert dataset.frame.loc[6, "hour_sin"] == pytest.approx(1.0)  # 06:00
    splits = make_splits(dataset, (TARGET,), 24, 1)
    assert len(splits.test.y) > 0


@pytest.mark.parametrize("frame, column, time_column, message", [
    (pd.DataFrame({"kw": [1.0, 2.0]}), "load", None, "no column 'load' for --column"),
    (pd.DataFrame({"kw": ["1", "x", "3"]}), "kw", None, "non-numeric value 'x' at data row 2"),
    (pd.DataFrame({"kw": [1.0, None, 3.0]}), "kw", None, "1 missing value(s)"),
    (pd.DataFrame({"kw": [1.0, 2.0], "t": ["2024-01-02", "2024-01-01"]}), "kw", "t",
     "not in increasing time order"),
    (pd.DataFrame({"kw": [1.0, 2.0], "t": ["2024-01-01", "soon"]}), "kw", "t",
     "unreadable time 'soon'"),
])
def test_bad_user_csv_is_a_clear_error(tmp_path: Path, frame: pd.DataFrame, column: str,
                                       time_column: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_csv(_csv(tmp_path, frame), column, time_column)


def test_short_series_and_missing_features_are_refused(tmp_path: Path) -> None:
    short = from_csv(_csv(tmp_path, pd.DataFrame({"kw": np.arange(100.0)})), "kw")
    with pytest.raises(ValueError, match="has 100 rows; 24-hour windows need at least"):
        make_splits(short, (TARGET,), 24, 1)
    with pytest.raises(ValueError, match="has no temperature, workday"):
        make_splits(short, FEATURES, 24, 1)


def test_load_dataset_argument_rules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_dataset(tmp_path / "absent.csv", "kw")
    with pytest.raises(ValueError, match="needs --column"):
        load_dataset(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="go with --dataset"):
        load_dataset(None, "kw")
