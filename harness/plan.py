"""The plan: which cases a run measures, in a deterministic order."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

SCENARIO_SINGLE_STREAM = "single_stream"


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
        return f"{self.model}/{self.variant}/{self.backend}/t{self.threads}/b{self.batch}"

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
