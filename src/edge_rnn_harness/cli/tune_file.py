"""A file `harness tune --write` saved, applied by `harness run --tune-file FILE`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.measure.tune import read_tune_file


def read_tuning(path: Path, tuning: dict[str, dict[str, str]]) -> tuple[str, int]:
    """`harness run --tune-file`: add its options to `tuning` for its backend (a --tune of
    the same option wins); (backend, thread count) for `tuned_threads`."""

    try:
        backend, threads, options = read_tune_file(path)
    except ValueError as error:
        raise UsageError(f"harness run: --tune-file {error}") from None
    tuning[backend] = {**options, **tuning.get(backend, {})}
    return backend, threads


def tuned_threads(tuned: tuple[str, int], cases: list) -> list:
    """The cases with the tune file's backend at its thread count, without repeats."""
    backend, threads = tuned
    return list(dict.fromkeys(dataclasses.replace(c, threads=threads)
                              if c.backend == backend else c for c in cases))
