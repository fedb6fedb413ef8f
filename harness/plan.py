"""The plan: which cases a run measures, in a deterministic order."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass

SCENARIO_SINGLE_STREAM = "single_stream"


def case_label(row: Mapping[str, object]) -> str:
    """The one human-readable label of a case (a Case's dict or a results row):
    model/variant/backend scenario s<seq_len> t<threads> b<batch>."""
    return (f"{row['model']}/{row['variant']}/{row['backend']} {row['scenario']} "
            f"s{row['seq_len']} t{row['threads']} b{row['batch']}")


def bench_name(row: Mapping[str, object]) -> str:
    """The pyperf benchmark name of a case: every key column, so it is unique in a run."""
    return (f"{row['model']}/{row['variant']}/{row['backend']}/{row['scenario']}/"
            f"s{row['seq_len']}/t{row['threads']}/b{row['batch']}")


def legacy_bench_name(row: Mapping[str, object]) -> str:
    """The benchmark name harness 0.1 runs used (no scenario or seq_len), so their pyperf
    JSON files still compare."""
    return f"{row['model']}/{row['variant']}/{row['backend']}/t{row['threads']}/b{row['batch']}"


@dataclass(frozen=True)
class Case:
    """One measured configuration: a row of the results table.

    The key (model, variant, backend, scenario, threads, batch, seq_len) identifies the
    case across runs; compare and gate join on it.
    """

    model: str
    variant: str
    backend: str
    threads: int
    seq_len: int
    batch: int = 1
    scenario: str = SCENARIO_SINGLE_STREAM

    @property
    def bench_name(self) -> str:
        """The pyperf benchmark name: unique within a run."""
        return bench_name(self.to_dict())

    @property
    def label(self) -> str:
        """The case's label for people (progress, logs, reasons)."""
        return case_label(self.to_dict())

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-friendly)."""
        return asdict(self)


def build_plan(models: list[tuple[str, int]], variants: list[str], backends: list[str],
               threads: list[int]) -> list[Case]:
    """All combinations, ordered model > variant > backend > threads as given.

    models: (name, seq_len) pairs. Every argument keeps the user's order, so a run's row
    order is reproducible.
    """
    return [
        Case(model=model, variant=variant, backend=backend, threads=n, seq_len=seq_len)
        for (model, seq_len), variant, backend, n in itertools.product(
            models, variants, backends, threads)
    ]
