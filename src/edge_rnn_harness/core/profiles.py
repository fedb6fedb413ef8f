"""Measurement profiles: how many worker processes and values each case gets.

Every value is one inference (pyperf `--loops 1`), so the percentiles are per-inference
latencies, not averages of batches of calls; warm-up values are discarded by pyperf.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """pyperf settings for every case of a run.

    processes: worker processes per case (each prepares the model afresh).
    values: timed inferences kept per process. warmups: inferences discarded per process.
    rigorous: use pyperf's own `--rigorous` process count (twice pyperf's default: 40)
        instead of `processes`.
    """

    name: str
    processes: int
    values: int
    warmups: int
    rigorous: bool = False
    summary: str = ""

    def pyperf_args(self) -> list[str]:
        """The pyperf command-line options for this profile."""
        processes = ["--rigorous"] if self.rigorous else ["--processes", str(self.processes)]
        return processes + ["--values", str(self.values), "--warmups", str(self.warmups),
                            "--loops", "1"]


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("quick", processes=2, values=100, warmups=10,
                summary="smoke run: 2 processes x 100 values, seconds per case"),
        Profile("default", processes=6, values=300, warmups=30,
                summary="6 processes x 300 values"),
        Profile("rigorous", processes=40, values=500, warmups=50, rigorous=True,
                summary="pyperf --rigorous: 40 processes x 500 values"),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError naming the valid ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; choose from: {', '.join(PROFILES)}"
        ) from None
