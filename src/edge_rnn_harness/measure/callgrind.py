"""Child program: a case's instruction count under callgrind, counting only its calls:

  valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no --cache-sim=yes \\
      --callgrind-out-file=DIR/cg.%p python -P -m edge_rnn_harness.measure.callgrind \\
      JOB.json --calls N --blocks K -o OUT.json

The process starts uninstrumented (valgrind's start-up, the interpreter, the runtime's
import and the model's preparation run at the "none" tool's speed and are never counted),
switches instrumentation on, warms the model up (instrumented, not collected: the code is
translated and the simulated caches filled), then for each of K blocks switches
collection on around N calls of `PreparedModel.run`, off again, and dumps the block's
counts (`DUMP_STATS`: the next dump starts from zero). Nothing outside the blocks is
counted, so start-up (which differs between runs by millions of instructions) never enters
the figure. Python's cyclic garbage collector is off inside the blocks and run between
them (whether a collection falls inside a block is chance), and the child runs with
PYTHONHASHSEED=0 (with Python's per-process random string hashing, dictionary probing
differs between runs: the PyTorch reference's count moved by 0.3%; fixed, two runs counted
the same to the instruction). The parent (`instruction_fields`) reads the K dumps: instructions per call is
the blocks' median; their range is the count's run-to-run spread.

Cycles are estimated as KCachegrind does: Ir + 10 x L1 misses + 100 x last-level misses
(instruction and data, reads and writes), from callgrind's cache simulation of this
machine's cache sizes. What the count leaves out: stalls on memory beyond that estimate,
the CPU's frequency, the SIMD width a runtime chooses under valgrind (valgrind hides
AVX-512, so an AVX-512 kernel is not what is counted), and other threads' work only where
the runtime uses them (counted too, in one total).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rnn_harness.bundle.reader import load_reference
from edge_rnn_harness.core.errors import error_line
from edge_rnn_harness.core.launcher import child_argv, exit_without_teardown, run_child
from edge_rnn_harness.measure.client_request import (
    DUMP_STATS,
    START_INSTRUMENTATION,
    TOGGLE_COLLECT,
    ClientRequests,
)
from edge_rnn_harness.measure.worker import WorkerJob, open_for_timing

DEFAULT_CALLS, DEFAULT_BLOCKS, WARMUP_CALLS = 100, 3, 20
#: the counting child's fixed string hashing: with Python's per-process random hash seed,
#: dictionary probing differs between runs (it moved the PyTorch reference's count by
#: 0.3%); fixed, two runs of the same code count the same to the instruction
COUNTING_ENV = {"PYTHONHASHSEED": "0"}
#: KCachegrind's cycle estimation weights of a first-level and a last-level miss
L1_MISS_CYCLES, LL_MISS_CYCLES = 10, 100
_MAX_DUMP_BYTES = 64 << 20


def callgrind_argv(job: Path, out_dir: Path, result: Path, calls: int = DEFAULT_CALLS,
                   blocks: int = DEFAULT_BLOCKS, python: str = sys.executable) -> list[str]:
    """The command line of the counting child under callgrind."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
            "--cache-sim=yes", f"--callgrind-out-file={out_dir / 'cg.%p'}",
            *child_argv("edge_rnn_harness.measure.callgrind", job, "--calls", calls,
                        "--blocks", blocks, "-o", result, python=python)]


@dataclass(frozen=True)
class Counted:
    """What the callgrind step gives a row: its fields (the counts, or `counters_note`
    saying why there are none) and the child's output when it failed."""
    fields: dict[str, Any]
    failure_output: str = ""


def count_instructions(job: Path, work_dir: Path, timeout_s: float,
                       python: str = sys.executable) -> Counted:
    """Run the counting child under callgrind for the case of `job` (in `work_dir`, which
    must not exist yet) and read its dumps. A runtime valgrind cannot run is
    "unsupported" with what valgrind said."""
    work_dir.mkdir()
    result = work_dir / "result.json"
    child = run_child(callgrind_argv(job, work_dir, result, python=python), timeout_s,
                      "counting instructions", env=COUNTING_ENV)
    dumps = block_dumps(work_dir)
    if not child.ok or not result.exists() or not dumps:
        why = child.reason if not child.ok else "no counts dumped"
        return Counted({"counters_note": f"valgrind: unsupported: {why}"}, child.output)
    try:
        counts = [read_dump(path) for path in dumps]
    except (OSError, ValueError) as error:
        return Counted({"counters_note": f"valgrind: {error}"})
    return Counted(instruction_fields(counts, json.loads(result.read_text())["calls"]))


def count_blocks(run: Any, fed: object, calls: int, blocks: int,
                 requests: ClientRequests) -> None:
    """Warm up, then `blocks` collected blocks of `calls` calls, each dumped."""
    requests.request(START_INSTRUMENTATION)
    for _ in range(WARMUP_CALLS):
        run(fed)
    gc.disable()  # a collection falls on a block or not by chance: collect between blocks
    try:
        for _ in range(blocks):
            gc.collect()
            requests.request(TOGGLE_COLLECT)
            for _ in range(calls):
                run(fed)
            requests.request(TOGGLE_COLLECT)
            requests.request(DUMP_STATS)
    finally:
        gc.enable()


def read_dump(path: Path) -> dict[str, int]:
    """A callgrind dump's totals per event ({"Ir": .., "I1mr": ..}); ValueError for a file
    that is not one."""
    if path.stat().st_size > _MAX_DUMP_BYTES:
        raise ValueError(f"{path.name}: larger than {_MAX_DUMP_BYTES >> 20} MiB")
    events: list[str] = []
    totals: list[int] = []
    with path.open(errors="replace") as handle:
        for line in handle:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")) and not totals:
                totals = [int(v) for v in line.split()[1:]]
    if not events or not totals:
        raise ValueError(f"{path.name}: not a callgrind dump (no events or totals line)")
    return dict(zip(events, totals + [0] * (len(events) - len(totals))))


def block_dumps(out_dir: Path) -> list[Path]:
    """The dumps of the collected blocks (cg.<pid>.1 ..), in order."""
    numbered = [p for p in out_dir.glob("cg.*.*") if p.suffix[1:].isdigit()]
    return sorted(numbered, key=lambda p: int(p.suffix[1:]))


def instruction_fields(dumps: list[dict[str, int]], calls: int) -> dict[str, Any]:
    """Row fields per inference from the blocks' counts: instructions (the blocks'
    median), their spread (range over median, %), first-level and last-level cache
    misses and the estimated cycles."""
    def per_call(events: tuple[str, ...]) -> list[float]:
        return [sum(d.get(e, 0) for e in events) / calls for d in dumps]

    instructions = per_call(("Ir",))
    l1 = per_call(("I1mr", "D1mr", "D1mw"))
    ll = per_call(("ILmr", "DLmr", "DLmw"))
    median = statistics.median(instructions)
    fields: dict[str, Any] = {
        "instructions_per_inf": median,
        "instructions_spread_pct": (max(instructions) - min(instructions)) / median * 100
        if median else None}
    if any("I1mr" in d for d in dumps):
        fields.update(l1_misses_per_inf=statistics.median(l1),
                      ll_misses_per_inf=statistics.median(ll),
                      est_cycles_per_inf=statistics.median(
                          i + L1_MISS_CYCLES * a + LL_MISS_CYCLES * b
                          for i, a, b in zip(instructions, l1, ll)))
    return fields


def main(argv: list[str] | None = None) -> int:
    """Entry point of the counting child (run under callgrind by the runner)."""
    parser = argparse.ArgumentParser(prog="python -m edge_rnn_harness.measure.callgrind")
    parser.add_argument("job", type=Path)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS)
    parser.add_argument("--blocks", type=int, default=DEFAULT_BLOCKS)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        requests = ClientRequests()
        if not requests.running_on_valgrind():
            raise RuntimeError("not running under valgrind: start it with callgrind_argv")
        job = WorkerJob.load(args.job)
        model, fed = open_for_timing(job, load_reference(Path(job.reference)))
        count_blocks(model.run, fed, args.calls, args.blocks, requests)
        model.close()
    except Exception as error:  # noqa: BLE001 -- any failure is this step's reason
        traceback.print_exc()
        print(error_line(error), file=sys.stderr)
        return 1
    args.output.write_text(json.dumps({"calls": args.calls, "blocks": args.blocks}))
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())
