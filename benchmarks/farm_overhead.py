"""What reserving boards through labgrid costs a run: connecting to the coordinator,
acquiring the places, releasing them and disconnecting, timed per step and repeated.

    python benchmarks/farm_overhead.py --coordinator HOST:PORT --places pi1,pi2 [--rounds 10]

Needs a coordinator with those places free (tests/test_farm.py shows how to start one with
an exporter on 127.0.0.1). Prints the median and range of each step in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from edge_rnn_harness.fleet.farm import Farm


def one_round(coordinator: str, places: list[str]) -> dict[str, float]:
    """Milliseconds of each step of one reservation."""
    laps: dict[str, float] = {}
    start = time.perf_counter()
    with Farm(coordinator) as farm:
        laps["connect"] = (time.perf_counter() - start) * 1e3
        mark = time.perf_counter()
        for name in places:
            reason = farm.acquire(name)
            if reason:
                raise SystemExit(f"farm_overhead: {reason}")
        laps["acquire"] = (time.perf_counter() - mark) * 1e3
        mark = time.perf_counter()
        for name in list(farm.acquired):
            farm.release(name)
        laps["release"] = (time.perf_counter() - mark) * 1e3
        mark = time.perf_counter()
    laps["disconnect"] = (time.perf_counter() - mark) * 1e3
    laps["total"] = (time.perf_counter() - start) * 1e3
    return laps


def main() -> None:
    """Run the rounds and print each step's median and range."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="HOST:PORT of the coordinator")
    parser.add_argument("--places", required=True, help="comma-separated free places")
    parser.add_argument("--rounds", type=int, default=10, help="repetitions (default 10)")
    args = parser.parse_args()
    places = [name for name in args.places.split(",") if name]
    rounds = [one_round(args.coordinator, places) for _ in range(args.rounds)]
    print(f"{args.rounds} rounds, {len(places)} place(s) each")
    for step in rounds[0]:
        values = [laps[step] for laps in rounds]
        print(f"{step:>10}: median {statistics.median(values):7.1f} ms "
              f"(min {min(values):.1f}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
