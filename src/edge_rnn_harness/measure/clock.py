"""The harness's one clock: `time.perf_counter_ns` around `PreparedModel.run`.

Every backend is timed by this code and nothing else; a runtime's own counters are never
used. The clock is a parameter so tests can drive it with a fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def time_calls(loops: int, run: Callable[[object], object], fed: object,
               clock: Clock = time.perf_counter_ns) -> float:
    """Call `run(fed)` `loops` times back to back; return the elapsed time in seconds.

    This is pyperf's time function: pyperf divides by `loops`. Inputs are fed before the
    call, and `run` returns materialised outputs, so the interval is exactly the runtime's
    synchronous work plus one Python call per loop.
    """
    start_ns = clock()
    for _ in range(loops):
        run(fed)
    return (clock() - start_ns) / NS_PER_S


def paced_time_calls(loops: int, run: Callable[[object], object], fed: object,
                     interval_s: float, clock: Clock = time.perf_counter_ns,
                     sleep: Callable[[float], object] = time.sleep) -> float:
    """Sleep `interval_s` (the process idles: it does not spin), then time one `run(fed)`;
    `loops` times; the summed time of the calls alone, in seconds (the paced scenario's
    pyperf time function: each value is a call after an idle interval)."""
    total_ns = 0
    for _ in range(loops):
        sleep(interval_s)
        start_ns = clock()
        run(fed)
        total_ns += clock() - start_ns
    return total_ns / NS_PER_S


def time_once_ms(func: Callable[[], object], clock: Clock = time.perf_counter_ns) -> float:
    """Time one call of `func()` (e.g. prepare, or the first run) in milliseconds."""
    start_ns = clock()
    func()
    return (clock() - start_ns) / NS_PER_MS
