"""Interleaved A/B runs: a baseline and a candidate measured in one command, so that drift,
thermal state and neighbours fall on both alike, then judged with the gate's statistics.

Where both sides can live in one process (two bundles, two models or two tuning settings
of the same runtime installation), every worker process prepares both and alternates
single calls (interleaving "calls"). Where they cannot (two Python environments, e.g. two
versions of a runtime), whole worker processes alternate, A B B A ... (interleaving
"processes"). The rows of each side go to their own results CSV and pyperf JSON, with the
`interleaving` column saying which was used; memory columns stay empty in "calls" mode
(both sides share one process, so its peak belongs to neither).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rnn_harness import __version__
from edge_rnn_harness.board.environment import environment
from edge_rnn_harness.core.launcher import child_argv, run_child
from edge_rnn_harness.core.plan import Case, bench_name
from edge_rnn_harness.core.profiles import Profile
from edge_rnn_harness.core.results import ResultsWriter, dump_suite, new_row
from edge_rnn_harness.core.status import Finding, row_status
from edge_rnn_harness.core.variants import FP32, get_variant
from edge_rnn_harness.measure.aggregate import (
    derived_fields,
    forecast_verdict,
    growth_verdict,
    measurement_fields,
    parity_verdict,
)
from edge_rnn_harness.measure.callgrind import count_instructions
from edge_rnn_harness.measure.runner import RunConfig, case_job
from edge_rnn_harness.measure.worker import WorkerJob

CALLS, PROCESSES = "calls", "processes"


@dataclass(frozen=True)
class Side:
    """One side of an A/B run: where its artifacts come from and the Python that runs it."""

    config: RunConfig
    python: str = sys.executable


def interleaving(base: Side, cand: Side) -> str:
    """"calls" when both sides can share a worker process, else "processes"."""
    return CALLS if base.python == cand.python else PROCESSES


def _child(python: str, jobs: list[Path], out: Path, profile: Profile) -> list[str]:
    return child_argv("edge_rnn_harness.measure.interleave", *jobs, "-o", out,
                      "--warmups", profile.warmups, "--values", profile.values, python=python)


#: the sides' names in messages, by index
SIDE_NAMES = ("baseline", "candidate")


def _measure_pair(jobs: tuple[WorkerJob, WorkerJob], sides: tuple[Side, Side], tmp: Path,
                  profile: Profile, timeout_s: float
                  ) -> tuple[list[list[dict[str, Any]]], str | None, tuple[int, ...]]:
    """Per side, each worker process's {"values", "metadata"}; or a failure reason and the
    side(s) whose process failed (both when they shared it)."""
    paths = [tmp / "a.job.json", tmp / "b.job.json"]
    for job, path in zip(jobs, paths):
        job.save(path)
    collected: list[list[dict[str, Any]]] = [[], []]
    mode = interleaving(*sides)
    for process in range(profile.processes):
        out = tmp / f"p{process}.json"
        if mode == CALLS:
            steps = [(sides[0].python, paths, (0, 1))]
        else:  # alternate whole processes, ABBA
            order = (0, 1) if process % 2 == 0 else (1, 0)
            steps = [(sides[i].python, [paths[i]], (i,)) for i in order]
        for python, job_paths, side_indices in steps:
            child = run_child(_child(python, job_paths, out, profile), timeout_s,
                              "measuring")
            if not child.ok:
                whose = " and ".join(SIDE_NAMES[i] for i in side_indices)
                return collected, f"{whose} ({python}): {child.reason}", side_indices
            for index, side in zip(side_indices, json.loads(out.read_text())["sides"]):
                collected[index].append(side)
    return collected, None, ()


def _benchmark(name: str, runs: list[dict[str, Any]]) -> Any:
    import pyperf

    return pyperf.Benchmark([pyperf.Run(run["values"], warmups=None, collect_metadata=False,
                                        metadata={"name": name, "unit": "second", "loops": 1,
                                                  **run["metadata"]}) for run in runs])


def run_ab(pairs: list[tuple[Case, Case]], sides: tuple[Side, Side], profile: Profile,
           outs: tuple[Path, Path], progress: Callable[[int, Case, Case], None]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every (base case, candidate case) pair interleaved; write each side's rows
    and pyperf JSON to outs[0] and outs[1] as each pair ends; return both sides' rows."""
    shared = {"run_id": uuid.uuid4().hex[:12], "harness_version": __version__,
              "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              **environment()}
    writers = (ResultsWriter(outs[0]), ResultsWriter(outs[1]))
    for out in outs:
        out.with_suffix(".json").unlink(missing_ok=True)
    try:
        _measure_pairs(pairs, sides, profile, outs, progress, shared, writers)
    finally:
        for writer in writers:
            writer.close()
    return writers[0].rows, writers[1].rows


def _measure_pairs(pairs: list[tuple[Case, Case]], sides: tuple[Side, Side],
                   profile: Profile, outs: tuple[Path, Path],
                   progress: Callable[[int, Case, Case], None], shared: dict[str, Any],
                   writers: tuple[ResultsWriter, ResultsWriter]) -> None:
    """The loop of `run_ab`: each pair measured, its rows and benchmarks written."""
    import pyperf

    suites: tuple[list[Any], list[Any]] = ([], [])
    mode = interleaving(*sides)
    with tempfile.TemporaryDirectory(prefix="harness-ab-") as tmp:
        for index, pair in enumerate(pairs):
            progress(index, *pair)
            resolved = [case_job(case, side.config) for case, side in zip(pair, sides)]
            rows = [dict(fields, interleaving=mode) for fields, _ in resolved]
            verdicts: list[list[Finding]] = [[], []]
            jobs = [job for _, job in resolved]
            if all(jobs):
                folder = Path(tmp) / str(index)
                folder.mkdir()
                measured, failure, failed = _measure_pair(
                    (jobs[0], jobs[1]), sides, folder, profile, sides[0].config.case_timeout_s)
                for side, case in enumerate(pair):
                    if failure and side in failed:
                        rows[side].update(status="failed", reason=failure)
                        continue
                    if failure:  # this side's own processes were fine
                        rows[side].update(status="skipped", reason=f"its A/B partner "
                                          f"failed: {failure}")
                        continue
                    benchmark = _benchmark(bench_name(case.to_dict()), measured[side])
                    verdicts[side] = [parity_verdict(benchmark, get_variant(case.variant)),
                                      forecast_verdict(benchmark)]
                    rows[side].update(measurement_fields(benchmark, case.batch))
                    rows[side].update(derived_fields(rows[side]))
                    rows[side].update(row_status(verdicts[side]))
                    suites[side].append(benchmark)
                if not failure and "valgrind" in sides[0].config.counters:
                    _count_pair(jobs, sides, folder, rows)
                if not failure:
                    fp32_fields = _versus_baseline(pair, rows)
                    if fp32_fields:
                        rows[1].update(fp32_fields)
                        verdicts[1].append(growth_verdict(rows[1],
                                                          get_variant(pair[1].variant)))
                        rows[1].update(row_status(verdicts[1]))
            for side in (0, 1):
                if "status" not in rows[side]:
                    rows[side].update(status="skipped", reason=f"its A/B partner, the "
                                      f"{SIDE_NAMES[1 - side]}, was not measured "
                                      f"({rows[1 - side].get('reason')})")
                writers[side].append(new_row(**{**shared, **rows[side]}))
                if suites[side]:
                    dump_suite(pyperf.BenchmarkSuite(suites[side]),
                               outs[side].with_suffix(".json"))


def _count_pair(jobs: list[Any], sides: tuple[Side, Side], folder: Path,
                rows: list[dict[str, Any]]) -> None:
    """Each ok side's instruction count under callgrind, by its own Python (counted
    figures do not drift, so the sides need not alternate)."""
    for side, (job, where) in enumerate(zip(jobs, sides)):
        if rows[side].get("status") != "ok":
            continue
        job_path = folder / f"count{side}.json"
        job.save(job_path)
        counted = count_instructions(job_path, folder / f"callgrind{side}",
                                     where.config.case_timeout_s, where.python)
        rows[side].update(counted.fields)


def _versus_baseline(pair: tuple[Case, Case], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A candidate variant against an fp32 baseline of the same backend: the baseline's
    RMSE is its fp32 RMSE (the variant's accuracy policy then applies as in a run); {}
    for any other pair."""
    base, cand = pair
    if base.variant != FP32 or cand.variant == FP32 or base.backend != cand.backend \
            or rows[0].get("rmse") is None:
        return {}
    return {"fp32_rmse": rows[0]["rmse"]}


def ab_paths(out: Path) -> tuple[Path, Path]:
    """The baseline and candidate results of an A/B run written to `out` (a .csv name):
    <stem>-base.csv and <stem>-cand.csv beside it."""
    return (out.with_name(f"{out.stem}-base.csv"), out.with_name(f"{out.stem}-cand.csv"))


def rename_of(pairs: list[tuple[Case, Case]], field: str = "model") -> Mapping[str, str]:
    """Candidate -> baseline value of a key `field` ("model" or "variant"), where the two
    sides differ in it."""
    return {getattr(cand, field): getattr(base, field) for base, cand in pairs
            if getattr(cand, field) != getattr(base, field)}
