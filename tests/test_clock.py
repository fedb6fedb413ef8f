"""The timing loop, driven by a fake clock: exact values, inputs fed outside the loop."""

from __future__ import annotations

import pytest

from edge_rnn_harness.measure.clock import time_calls, time_once_ms


class FakeClock:
    """A perf_counter_ns stand-in that advances only when the fake model runs."""

    def __init__(self) -> None:
        self.now_ns = 1_000
        self.reads: list[int] = []

    def __call__(self) -> int:
        self.reads.append(self.now_ns)
        return self.now_ns


class FakeModel:
    """Each run costs `cost_ns` on the fake clock and records what it was fed."""

    def __init__(self, clock: FakeClock, cost_ns: int) -> None:
        self.clock, self.cost_ns, self.fed_seen = clock, cost_ns, []

    def run(self, fed: object) -> dict:
        self.fed_seen.append(fed)
        self.clock.now_ns += self.cost_ns
        return {"y": fed}


@pytest.mark.parametrize("loops", [1, 3, 1000])
def test_time_calls_measures_exactly_the_runs(loops: int) -> None:
    clock = FakeClock()
    model = FakeModel(clock, cost_ns=25_000)
    seconds = time_calls(loops, model.run, "fed-input", clock=clock)
    assert seconds == pytest.approx(loops * 25e-6, rel=1e-12)
    assert len(model.fed_seen) == loops
    assert set(model.fed_seen) == {"fed-input"}
    assert len(clock.reads) == 2  # one read before, one after: nothing else timed


def test_time_once_ms_converts_units() -> None:
    clock = FakeClock()
    model = FakeModel(clock, cost_ns=2_500_000)
    assert time_once_ms(lambda: model.run(None), clock=clock) == 2.5  # 2_500_000 ns, exactly
