"""Child program: one A/B worker process,
`python -P -m edge_rnn_harness.measure.interleave A.json [B.json] -o OUT.json
--warmups W --values N`.

With two jobs, both models are prepared in this one process (untimed, parity checked for
each) and then timed call by call in ABBA order (A B, B A, A B, ...), so that whatever
the machine does (frequency phases, neighbours, heat) falls on both sides alike. With one
job, it times that side alone (the fallback that alternates whole processes, for two sides
that cannot share a process). The clock is the harness's one clock around `run`; inputs
are fed before it. Values are seconds per call; warm-up calls are discarded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_rnn_harness.core.errors import error_line
from edge_rnn_harness.measure.clock import NS_PER_S, Clock
from edge_rnn_harness.measure.worker import WorkerJob, prepare_case


def interleaved_values_s(calls: Sequence[tuple[Callable[[object], object], object]],
                         warmups: int, values: int,
                         clock: Clock = time.perf_counter_ns) -> list[list[float]]:
    """Time every (run, fed) side once per round, in ABBA order for two sides; returns
    each side's `values` timed calls in seconds, after `warmups` rounds discarded."""
    timed: list[list[float]] = [[] for _ in calls]
    for round_index in range(warmups + values):
        order = range(len(calls)) if round_index % 2 == 0 else reversed(range(len(calls)))
        for side in order:
            run, fed = calls[side]
            start_ns = clock()
            run(fed)
            elapsed_ns = clock() - start_ns
            if round_index >= warmups:
                timed[side].append(elapsed_ns / NS_PER_S)
    return timed


def main(argv: list[str] | None = None) -> int:
    """Prepare the job(s), time them, write {"sides": [{"values", "metadata"}, ...]}."""
    parser = argparse.ArgumentParser(prog="python -m edge_rnn_harness.measure.interleave")
    parser.add_argument("jobs", type=Path, nargs="+", help="one or two worker job JSON files")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--warmups", type=int, default=30)
    parser.add_argument("--values", type=int, default=300)
    args = parser.parse_args(argv)
    try:
        prepared = [prepare_case(WorkerJob.load(path)) for path in args.jobs]
    except Exception as error:  # noqa: BLE001 -- any runtime error is this case's reason
        print(error_line(error), file=sys.stderr)
        return 1
    values = interleaved_values_s([(model.run, fed) for model, fed, _ in prepared],
                                  args.warmups, args.values)
    sides: list[dict[str, Any]] = [{"values": side_values, "metadata": metadata}
                                   for side_values, (_, _, metadata) in zip(values, prepared)]
    for model, _, _ in prepared:
        model.close()
    args.output.write_text(json.dumps({"sides": sides}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
