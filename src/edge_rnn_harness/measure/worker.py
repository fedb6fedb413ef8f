"""Child program: one case's pyperf program,
`python -P -m edge_rnn_harness.measure.worker JOB.json -o OUT.json [pyperf options]`.

Without `--worker` this process is the case's pyperf manager: it spawns worker processes
of this same module and writes their values to OUT.json. In each worker: note the resident
set, prepare the model (untimed, reported as load_ms), run the reference windows once
(untimed; the first call is first_run_ms; their outputs give the parity errors), then let
pyperf time `PreparedModel.run` with the harness clock. A pyperf hook adds the worker's
peak resident set to the run's metadata after the timed values.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from edge_rnn_harness.backends.base import RunOptions
from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.board.cpufreq import limits_khz
from edge_rnn_harness.board.environment import device_name, emulated_device
from edge_rnn_harness.bundle.reader import load_reference, load_second_opinion, load_windows
from edge_rnn_harness.core.errors import ERROR_PREFIX, error_line
from edge_rnn_harness.core.launcher import child_program_args
from edge_rnn_harness.core.parity import (
    Tolerance,
    compare_outputs,
    non_finite_count,
    reference_dispute,
)
from edge_rnn_harness.core.plan import Case, paced_interval_s
from edge_rnn_harness.core.variants import degenerate_reason, get_variant
from edge_rnn_harness.measure.clock import paced_time_calls, time_calls, time_once_ms
from edge_rnn_harness.measure.memory import peak_rss_mb, reset_peak_rss, rss_mb
from edge_rnn_harness.measure.perf_events import CountersHook
from edge_rnn_harness.measure.stream import Stream, is_streaming
from edge_rnn_harness.models.baselines import persistence_forecast
from edge_rnn_harness.models.metrics import mae, rmse
from edge_rnn_harness.models.spec import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:
    from edge_rnn_harness.core.variants import Variant

MEMORY_HOOK = "harness_memory"
#: the pyperf hook counting perf events around each timed value (--counters perf)
COUNTERS_HOOK = "harness_counters"
#: exit code of the case's manager when its runtime cannot be imported here (a skip)
EXIT_UNAVAILABLE = 4
#: exit code of the case's manager when the runtime cannot run the variant here
EXIT_UNSUPPORTED = 5


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs: the case, its verified artifact and reference file."""

    case: dict[str, Any]
    artifact: str
    reference: str
    tuning: dict[str, str] = field(default_factory=dict)
    #: test-split windows ("x", "y") for rmse/mae, or None to skip accuracy
    testset: str | None = None
    #: {"atol": .., "rtol": ..} replacing the variant's default parity tolerance
    tolerance: dict[str, float] | None = None
    #: package.module:callable named on the command line (the torch reference rebuilds a
    #: module brought that way from it)
    module_callable: str | None = None
    #: the exporter's notes on the artifact's variant, added to the recorded settings
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the job as JSON."""
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> WorkerJob:
        """Read a job written by `save`."""
        return cls(**json.loads(path.read_text()))

    @property
    def bench_name(self) -> str:
        """The pyperf benchmark name of this case."""

        return Case(**self.case).bench_name


class MemoryHook:
    """pyperf hook: after the timed values, record peak_rss_mb (VmHWM) and rss_delta_mb
    (VmHWM minus the resident set noted just before the runtime was imported). The peak
    reached during the accuracy pass is left out (see `leave_out_of_peak`)."""

    baseline_rss_mb: ClassVar[float | None] = None
    #: the peak before an untimed step that must not count (None: nothing left out)
    earlier_peak_mb: ClassVar[float | None] = None
    #: the model being timed: one that keeps its runtime's own latency per call
    #: (`runtime_latencies_ms`) gets its median recorded beside the harness clock's
    timed_model: ClassVar[Any] = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def teardown(self, metadata: dict[str, Any]) -> None:
        """Add the memory figures (MiB) to the run's metadata."""
        peak = peak_rss_mb()
        if peak is None:
            return
        peak = max(peak, self.earlier_peak_mb or 0.0)
        metadata["peak_rss_mb"] = peak
        if self.baseline_rss_mb is not None:
            metadata["rss_delta_mb"] = peak - self.baseline_rss_mb
        own = getattr(self.timed_model, "runtime_latencies_ms", None)
        if own:
            metadata["runtime_latency_median_ms"] = float(np.median(own))


@dataclass(frozen=True)
class _HookEntry:
    """Looks like the entry point pyperf's `Runner(hooks=...)` expects."""

    name: str
    hook: type

    def load(self) -> type:
        return self.hook


def tensor_names(job: WorkerJob, windows: list) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of the job's artifact: a step graph's from its notes,
    else the reference windows'."""
    if "step_inputs" in job.notes:
        return (tuple(str(job.notes["step_inputs"]).split(",")),
                tuple(str(job.notes["step_outputs"]).split(",")))
    return tuple(windows[0][0]), tuple(windows[0][1])


def open_model(job: WorkerJob, windows: list) -> Any:
    """The job's artifact prepared by its backend (loaded, compiled, allocated; untimed
    here). `windows` are the reference windows, whose names label the tensors (a step
    graph's names come from its notes)."""

    case = job.case
    inputs, outputs = tensor_names(job, windows)
    options = RunOptions(threads=case["threads"], variant=case["variant"], tuning=job.tuning,
                         input_names=inputs, output_names=outputs,
                         module_callable=job.module_callable)
    return get_backend(case["backend"]).prepare(Path(job.artifact), options)


def open_for_timing(job: WorkerJob, windows: list) -> tuple[Any, object]:
    """(what to time, its fed input): the prepared model and the first reference window
    fed, or for a streaming case a Stream whose `run` is one step (fed: None)."""

    model = open_model(job, windows)
    if is_streaming(job.case):
        return Stream(model, job.notes, next(iter(windows[0][0].values()))), None
    return model, model.feed(windows[0][0])


def claim_once(path: Path) -> bool:
    """True for the first process to call this with `path` (it creates the file), False
    for every later one: the case's workers run one after another, so the first does the
    work that gives the same answer in all of them."""
    import os

    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def prepare_case(job: WorkerJob, accuracy_claim: Path | None = None
                 ) -> tuple[Any, object, dict[str, Any]]:
    """Prepare the model and check parity, all untimed by pyperf. The test-split accuracy
    pass (deterministic for an artifact) runs in every call, or with `accuracy_claim` only
    in the first worker to claim that file.

    Returns (prepared model, the fed input the timed loop uses, metadata for the run).
    """

    case = job.case
    backend, variant = get_backend(case["backend"]), get_variant(case["variant"])
    windows = load_reference(Path(job.reference))
    tolerance = Tolerance(**job.tolerance) if job.tolerance else variant.parity
    testset = load_windows(Path(job.testset)) if job.testset is not None else None
    MemoryHook.baseline_rss_mb = rss_mb()  # inputs and test data are already loaded
    made: dict[str, Any] = {}
    load_ms = time_once_ms(lambda: made.update(opened=open_for_timing(job, windows)))
    model, timed_fed = made["opened"]
    if is_streaming(case):  # parity: step through each window from zero state
        first_run_ms = time_once_ms(lambda: model.run(None))
        outputs = [model.forecast(inputs) for inputs, _ in windows]
    else:
        fed = [model.feed(inputs) for inputs, _ in windows]
        first_run_ms = time_once_ms(lambda: made.update(first=model.run(fed[0])))
        outputs = [made["first"]] + [model.run(x) for x in fed[1:]]
    stacked = {name: np.stack([out[name] for out in outputs]) for name in outputs[0]}
    reference = {name: np.stack([ref[name] for _, ref in windows]) for name in windows[0][1]}
    parity = compare_outputs(stacked, reference, tolerance)
    metadata: dict[str, Any] = {"load_ms": load_ms, "first_run_ms": first_run_ms,
                "max_abs_err": parity.max_abs_err, "max_rel_err": parity.max_rel_err,
                "parity_ok": int(parity.within), "parity_output": parity.worst_output,
                "parity_output_abs_err": parity.outputs[parity.worst_output].max_abs_err,
                "parity_output_rel_err": parity.outputs[parity.worst_output].max_rel_err,
                "parity_atol": tolerance.atol, "parity_rtol": tolerance.rtol,
                "settings": json.dumps({**model.settings, **job.notes}, sort_keys=True),
                "backend_version": backend.version() or "-"}
    metadata.update(device_metadata())
    metadata.update(reference_doubts(stacked, reference, parity.within, job, tolerance))
    if isinstance(job.notes.get("calibration_windows"), int):
        metadata["calibration_windows"] = job.notes["calibration_windows"]
    if testset is not None and (accuracy_claim is None or claim_once(accuracy_claim)):
        metadata.update(leave_out_of_peak(lambda: forecast_accuracy(
            model, *testset, variant, int(case.get("batch") or 1))))
    elif testset is None:
        metadata.update(parity_window_problem(outputs, windows, variant))
    if is_streaming(case):
        model.reset()  # the timed stream starts from zero state, as a deployed one
    return model, timed_fed, metadata


def reference_doubts(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                     within: bool, job: WorkerJob, tolerance: Tolerance) -> dict[str, str]:
    """What parity alone would hide about the reference: {"reference_non_finite": ...}
    when its outputs hold NaN or infinities (matched element by element), and
    {"reference_disputed": ...} when this runtime misses the reference but matches the
    second opinion stored beside it (bundle.load_second_opinion)."""

    doubts = {}
    counts = non_finite_count(reference)
    if counts:
        doubts["reference_non_finite"] = "; ".join(
            f"the reference's output {name!r} has {count} NaN/inf element(s), each matched "
            f"as an equal value" for name, count in counts.items())
    opinion = None if within else load_second_opinion(Path(job.reference))
    dispute = opinion and reference_dispute(outputs, reference, opinion, tolerance)
    if dispute:
        doubts["reference_disputed"] = dispute
    return doubts


def parity_window_problem(outputs: list[dict[str, np.ndarray]], windows: list,
                          variant: Variant) -> dict[str, str]:
    """For a model without test windows: {"accuracy_problem": ...} when an output is
    non-finite or constant over the parity windows while the reference's is not."""

    for name in windows[0][1]:
        problem = degenerate_reason(np.stack([out[name] for out in outputs]), None, None,
                                    variant)
        expected = degenerate_reason(np.stack([ref[name] for _, ref in windows]), None, None,
                                     variant)
        if problem and not expected:
            return {"accuracy_problem": f"output {name!r} on the parity windows: {problem}"}
    return {}


def device_metadata() -> dict[str, Any]:
    """Facts about the device that pyperf's own run metadata lacks (board model, or
    "qemu-aarch64 (emulated)" under QEMU user mode; kernel; cpufreq limits in kHz), read in
    the worker; absent where the device does not say."""
    import platform

    low_khz, high_khz = limits_khz()
    facts = {"device": emulated_device() or device_name(), "kernel": platform.release(),
             "cpu_freq_min_khz": low_khz, "cpu_freq_max_khz": high_khz}
    return {key: value for key, value in facts.items() if value not in (None, "")}


def leave_out_of_peak(step: Any) -> Any:
    """Run `step()` so that the memory it peaks at does not count in peak_rss_mb: note the
    peak so far, run it, reset the high-water mark. Where the reset is not possible the
    peak includes the step, and the metadata says so."""
    MemoryHook.earlier_peak_mb = peak_rss_mb()
    result = step()
    if not reset_peak_rss():
        MemoryHook.earlier_peak_mb = None
        return {**result, "peak_includes_accuracy": 1}
    return result


def predict_windows(model: Any, xs: np.ndarray, horizon: int, batch: int = 1) -> np.ndarray:
    """The prepared model's forecasts (n, horizon) for every window of `xs`, `batch`
    windows per call (the last call padded with copies of the last window, whose
    forecasts are dropped), or for a Stream stepped through each window: exactly as it is
    deployed. Untimed."""

    predictions = np.empty((len(xs), horizon), dtype=np.float64)  # filled in place
    if hasattr(model, "forecast"):  # a Stream
        for i in range(len(xs)):
            predictions[i] = model.forecast({INPUT_NAME: xs[i:i + 1]})[OUTPUT_NAME][0]
        return predictions
    for start in range(0, len(xs), batch):
        chunk = xs[start:start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        out = model.run(model.feed({INPUT_NAME: padded}))[OUTPUT_NAME]
        predictions[start:start + len(chunk)] = out[:len(chunk)]
    return predictions


def forecast_accuracy(model: Any, xs: np.ndarray, ys: np.ndarray,
                      variant: Variant, batch: int = 1) -> dict[str, Any]:
    """rmse and mae (data units) of the prepared model over every test-split window, and
    `accuracy_problem` when its forecasts are degenerate for `variant` (constant,
    non-finite, or worse than persistence). Untimed."""

    predictions = predict_windows(model, xs, ys.shape[1], batch)
    baseline_rmse = rmse(persistence_forecast(xs, ys.shape[1]), ys)
    result: dict[str, Any] = {"rmse": rmse(predictions, ys), "mae": mae(predictions, ys)}
    problem = degenerate_reason(predictions, ys, baseline_rmse, variant)
    if problem:
        result["accuracy_problem"] = problem
    return result


def main() -> int:
    """Entry point of both the case's manager and its workers."""
    import pyperf

    runner = pyperf.Runner(program_args=child_program_args("edge_rnn_harness.measure.worker"),
                           add_cmdline_args=lambda cmd, args: cmd.append(args.job),
                           hooks=[_HookEntry(MEMORY_HOOK, MemoryHook),
                                  _HookEntry(COUNTERS_HOOK, CountersHook)])
    runner.argparser.add_argument("job", help="case job JSON written by the harness")
    args = runner.parse_args()
    CountersHook.loops = args.loops or 1
    job = WorkerJob.load(Path(args.job))
    if not args.worker:

        backend = get_backend(job.case["backend"])
        why_not = backend.available()
        if why_not is not None:
            print(ERROR_PREFIX + why_not, file=sys.stderr)
            return EXIT_UNAVAILABLE
        why_not = backend.runs_here(job.case["variant"])
        if why_not is not None:
            print(ERROR_PREFIX + why_not, file=sys.stderr)
            return EXIT_UNSUPPORTED
        runner.bench_time_func(job.bench_name, time_calls)
        return 0
    try:
        model, fed, metadata = prepare_case(job, Path(args.job).with_suffix(".accuracy"))
    except Exception as error:  # noqa: BLE001 -- any runtime error is this case's reason
        traceback.print_exc()
        print(error_line(error), file=sys.stderr)
        return 1
    if getattr(model, "runtime_latencies_ms", None) is not None:
        model.runtime_latencies_ms.clear()  # keep the timed calls' (warm-ups included) only
    MemoryHook.timed_model = model
    interval_s = paced_interval_s(job.case["scenario"])
    if interval_s is None:
        runner.bench_time_func(job.bench_name, time_calls, model.run, fed, metadata=metadata)
    else:  # paced: the same worker's back-to-back median first, then calls after idling
        metadata["back_to_back_median_ms"] = back_to_back_median_ms(model.run, fed)
        runner.bench_time_func(job.bench_name, paced_time_calls, model.run, fed, interval_s,
                               metadata=metadata)
    model.close()
    return 0


#: back-to-back calls a paced worker times first, for the penalty's baseline
BACK_TO_BACK_CALLS = 50


def back_to_back_median_ms(run: Any, fed: object, calls: int = BACK_TO_BACK_CALLS) -> float:
    """The median of `calls` back-to-back calls of `run(fed)` timed one by one (ms): the
    baseline a paced case's calls after an idle interval are compared with."""
    return float(np.median([time_calls(1, run, fed) for _ in range(calls)])) * 1e3


if __name__ == "__main__":
    raise SystemExit(main())
