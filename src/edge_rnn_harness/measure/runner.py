"""The run: for each case of the plan, measure it from a bundle (a pyperf manager in a child
process, with its own worker processes) and write the row. On the host, an Exporter first
makes the bundle hold the case's artifact (exported in a child, or cached); on a device,
the bundle was copied there and nothing is exported. One runner for both.

Each case's row is appended to the CSV, and its benchmark to the pyperf JSON, as soon as
it finishes, so a crash or Ctrl-C later keeps every row already measured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_rnn_harness import __version__
from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.board.cpufreq import CpuPinning, current_governor
from edge_rnn_harness.board.devicefs import SYSFS_ROOT_ENV
from edge_rnn_harness.board.environment import environment
from edge_rnn_harness.board.thermal import (
    ThermalState,
    is_throttle_readable,
    temperature_c,
    throttle_reason,
)
from edge_rnn_harness.bundle.reader import Bundle, BundleError
from edge_rnn_harness.core.launcher import child_argv, run_child
from edge_rnn_harness.core.metrics import INTERVAL_METRICS
from edge_rnn_harness.core.parity import Tolerance
from edge_rnn_harness.core.percentiles import median_precision_pct
from edge_rnn_harness.core.plan import (
    SCENARIO_COLD_START,
    Case,
    artifact_form,
    form_text,
    paced_interval_s,
)
from edge_rnn_harness.core.profiles import Profile
from edge_rnn_harness.core.results import ResultsWriter, dump_suite, new_row
from edge_rnn_harness.core.status import INVALID, Finding, is_not_installed, row_status
from edge_rnn_harness.core.variants import FP32, get_variant
from edge_rnn_harness.measure.aggregate import (
    derived_fields,
    forecast_verdict,
    growth_verdict,
    measurement_fields,
    parity_verdict,
    runs_ms,
)
from edge_rnn_harness.measure.callgrind import count_instructions
from edge_rnn_harness.measure.cold_start import cold_energy_fields, sample_cold_starts
from edge_rnn_harness.measure.energy import DEFAULT_IDLE_S, DEFAULT_LOOP_S, EnergyResult
from edge_rnn_harness.measure.worker import (
    COUNTERS_HOOK,
    EXIT_UNAVAILABLE,
    EXIT_UNSUPPORTED,
    MEMORY_HOOK,
    WorkerJob,
)

if TYPE_CHECKING:
    from edge_rnn_harness.bundle.export import Exporter

DEFAULT_CASE_TIMEOUT_S = 900.0
#: the cold_start scenario's fresh processes per case (--cold-samples), and how many run
#: under the power meter for its energy per forecast
DEFAULT_COLD_SAMPLES, MAX_COLD_SAMPLES, COLD_ENERGY_FORECASTS = 5, 100, 3
#: the paced scenario's timed calls per worker process (--paced-calls), and its processes
DEFAULT_PACED_CALLS, MAX_PACED_CALLS, MAX_PACED_PROCESSES = 20, 1000, 6
#: the percentile intervals, kept in the pyperf JSON's metadata as well as in the row
INTERVAL_COLUMNS = [metric.column for metric in INTERVAL_METRICS]


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run measures.

    out: results CSV (the pyperf JSON goes beside it, same stem).
    bundle_root: the bundle the cases run from. case_timeout_s: limit for each child step.
    tuning: backend name -> backend-specific options.
    """

    profile: Profile
    out: Path
    bundle_root: Path
    case_timeout_s: float = DEFAULT_CASE_TIMEOUT_S
    tuning: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: rmse/mae on the bundle's test-split windows where it has them
    accuracy: bool = True
    #: parity tolerance replacing every variant's default
    tolerance: Tolerance | None = None
    #: model name -> package.module:callable the user named on the command line
    callables: Mapping[str, str] = field(default_factory=dict)
    #: the energy step's meter: a resolved --power spec ("none": no energy step)
    power: str = "none"
    #: why there is no meter (e.g. what `--power auto` found), shown at the start
    power_note: str = ""
    idle_s: float = DEFAULT_IDLE_S
    loop_s: float = DEFAULT_LOOP_S
    #: seconds to wait before each case, and the temperature (C) a case must start below
    cooldown_s: float = 0.0
    max_start_temp_c: float | None = None
    #: a DVFS sweep's CPU pinning (None: the CPU is left as it is)
    pinning: CpuPinning | None = None
    #: counters per case: "valgrind" (callgrind child), "perf" (events in the workers)
    counters: tuple[str, ...] = ()
    #: add worker processes until the median's 95% interval is within +-this % (None:
    #: the profile's processes only), spending at most max_time_s on a case
    target_precision_pct: float | None = None
    max_time_s: float = 120.0
    #: the cold_start scenario: fresh processes per case, and whether the page cache is
    #: dropped before each (root only)
    cold_samples: int = DEFAULT_COLD_SAMPLES
    drop_caches: bool = False
    #: the paced scenario: timed calls per worker process, each after its interval
    paced_calls: int = DEFAULT_PACED_CALLS

    def __post_init__(self) -> None:
        if not self.case_timeout_s > 0:
            raise ValueError(f"case timeout must be > 0 s, got {self.case_timeout_s!r}")

    @property
    def json_path(self) -> Path:
        """The pyperf JSON written beside the CSV."""
        return self.out.with_suffix(".json")

    @property
    def log_path(self) -> Path:
        """Output of failed children, for diagnosis."""
        return self.out.with_suffix(".log")

    def log_failure(self, label: str, output: str) -> None:
        """Append a failed child's output to the log beside the results."""
        with self.log_path.open("a") as log:
            log.write(f"==== {label}\n{output}\n")


class Reporter(Protocol):
    """What the runner tells the user while it works (the CLI shows it with rich)."""

    def case_started(self, index: int, case: Case, stage: str) -> None:
        """Case `index` (0-based) entered `stage` ("export" or "measure")."""

    def case_finished(self, index: int, case: Case, row: Mapping[str, Any]) -> None:
        """Case `index` finished with `row`."""

    def notice(self, text: str) -> None:
        """A one-line notice (e.g. a damaged cached artifact being re-exported)."""


def run_plan(cases: list[Case], config: RunConfig, reporter: Reporter,
             exporter: Exporter | None = None) -> list[dict[str, Any]]:
    """Measure every case in order from config.bundle_root; return the rows (also written
    to config.out). With an `exporter` (host), each case's artifact is exported or reused
    first."""
    import pyperf

    shared = {"run_id": uuid.uuid4().hex[:12],
              "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "harness_version": __version__, **environment()}
    writer = ResultsWriter(config.out)
    config.json_path.unlink(missing_ok=True)
    config.log_path.unlink(missing_ok=True)
    benchmarks: list[pyperf.Benchmark] = []
    try:
        with config.pinning or nullcontext(), \
                tempfile.TemporaryDirectory(prefix="harness-") as tmp:
            for index, case in enumerate(cases):
                fields, benchmark = _run_case(index, case, config, Path(tmp), reporter,
                                              exporter)
                row = new_row(**{**shared, **fields})
                if benchmark is not None:  # the JSON first: a CSV row always has its values
                    dump_suite(pyperf.BenchmarkSuite([*benchmarks, benchmark]),
                               config.json_path)
                    benchmarks.append(benchmark)
                writer.append(row)
                reporter.case_finished(index, case, row)
    finally:
        writer.close()
    return writer.rows


def _run_case(index: int, case: Case, config: RunConfig, tmp: Path, reporter: Reporter,
              exporter: Exporter | None) -> tuple[dict[str, Any], Any]:
    """One case's row fields and pyperf benchmark (None when it did not measure)."""
    if exporter is not None and get_backend(case.backend).installed() is None:
        reporter.case_started(index, case, "export")
        outcome = exporter.ensure(case, tmp)
        if outcome:
            return {**case_fields(case), **outcome}, None
    fields, job = case_job(case, config)
    if job is None:
        return fields, None
    if config.pinning is not None:
        config.pinning.apply(case.cpu_freq_khz)
    too_hot = _wait_to_start(index, case, config, reporter)
    if too_hot:
        return {**fields, "status": "skipped", "reason": too_hot}, None
    before = ThermalState.read()
    reporter.case_started(index, case, "measure")
    benchmark, outcome = _measure_step(index, case, config, tmp, job)
    if benchmark is None:
        return {**fields, **outcome, **thermal_fields(before, ThermalState.read())}, None
    benchmark, precision = _until_precise(index, case, config, tmp, job, benchmark,
                                          reporter)
    variant = get_variant(case.variant)
    verdicts = [parity_verdict(benchmark, variant), forecast_verdict(benchmark), precision]
    fields.update(measurement_fields(benchmark, case.batch))
    benchmark.update_metadata({column: fields[column] for column in INTERVAL_COLUMNS
                               if fields.get(column) is not None})  # also in the JSON
    fields.update(row_status(verdicts))
    if case.variant != FP32 and fields["status"] in ("ok", "invalid"):
        reporter.case_started(index, case, "versus fp32")
        fields.update(_versus_step(index, case, config, tmp, exporter))
        verdicts.append(growth_verdict(fields, variant))
        fields.update(row_status(verdicts))
    if fields["status"] == "ok" and config.power != "none":
        reporter.case_started(index, case, "energy")
        energy = cold_energy_fields(job, config.power, config.idle_s, COLD_ENERGY_FORECASTS,
                                    tmp, config.case_timeout_s) \
            if case.scenario == SCENARIO_COLD_START else _energy_step(index, case, config, tmp)
        verdicts.append(Finding("energy", reason=energy.pop("reason", "")))
        fields.update(energy)
    if fields["status"] == "ok" and "valgrind" in config.counters:
        reporter.case_started(index, case, "counting instructions")
        counted = _callgrind_step(index, case, config, tmp)
        note = "; ".join(filter(None, [fields.get("counters_note"),
                                       counted.pop("counters_note", None)]))
        fields.update(counted, counters_note=note or None)
    after = ThermalState.read()
    verdicts.append(throttle_verdict(before, after))
    fields.update(thermal_fields(before, after))
    fields.update(derived_fields(fields))
    fields.update(row_status(verdicts))
    return fields, benchmark


#: longest wait for --max-start-temp before a case is skipped (s)
MAX_COOL_WAIT_S = 600.0
COOL_POLL_S = 1.0


def _wait_to_start(index: int, case: Case, config: RunConfig, reporter: Reporter) -> str:
    """Sleep --cooldown, then wait until the device is below --max-start-temp; the reason
    to skip the case if it stays hotter for MAX_COOL_WAIT_S, else ""."""
    if config.cooldown_s <= 0 and config.max_start_temp_c is None:
        return ""
    reporter.case_started(index, case, "cool down")
    time.sleep(config.cooldown_s)
    limit = config.max_start_temp_c
    deadline = time.monotonic() + MAX_COOL_WAIT_S
    while limit is not None:
        temp_c = temperature_c()
        if temp_c is None or temp_c <= limit:
            return ""
        if time.monotonic() > deadline:
            return (f"still {temp_c:.1f} C after waiting {MAX_COOL_WAIT_S:g} s for "
                    f"--max-start-temp {limit:g} C")
        time.sleep(COOL_POLL_S)
    return ""


def thermal_fields(before: ThermalState, after: ThermalState) -> dict[str, Any]:
    """Temperature and frequency at the case's start and end, the governor in force, and
    whether it throttled (None where the device cannot tell)."""
    reason = throttle_reason(before, after)
    readable = is_throttle_readable(before) and is_throttle_readable(after)
    governor = current_governor()
    return {"temp_start_c": before.temp_c, "temp_end_c": after.temp_c,
            "cpu_freq_start_khz": before.freq_khz, "cpu_freq_end_khz": after.freq_khz,
            "throttled": (reason is not None) if readable or reason else None,
            **({"governor": governor} if governor else {})}


def throttle_verdict(before: ThermalState, after: ThermalState) -> Finding:
    """The throttle check: a case that throttled is `invalid` with the reason."""
    why = throttle_reason(before, after)
    return Finding("throttle", INVALID, f"throttled during the case: {why}") if why else \
        Finding("throttle")


def _energy_step(index: int, case: Case, config: RunConfig, tmp: Path) -> dict[str, Any]:
    """The case's energy figures from the energy child, or empty power cells and the
    reason (the latency row stays as measured)."""
    job_path, out_path = tmp / f"case{index}.json", tmp / f"case{index}.energy.json"
    child = run_child([*child_argv("edge_rnn_harness.measure.energy"), str(job_path),
                       "--power", config.power, "--idle-seconds", str(config.idle_s),
                       "--loop-seconds", str(config.loop_s), "--ends-at",
                       repr(time.monotonic() + config.idle_s + config.loop_s),
                       "--interval", repr(paced_interval_s(case.scenario) or 0.0),
                       "-o", str(out_path)],
                      config.case_timeout_s, "measuring energy")
    if not child.ok:
        config.log_failure(f"{case.label} (energy)", child.output)
        return {"power_meter": config.power, "reason": f"power: {child.reason}"}
    return EnergyResult(**json.loads(out_path.read_text())).row_fields()


def _callgrind_step(index: int, case: Case, config: RunConfig, tmp: Path) -> dict[str, Any]:
    """The case's instruction count per inference (and cache figures) from the callgrind
    child, or empty cells with the reason (the child's output goes to the log)."""
    counted = count_instructions(tmp / f"case{index}.json", tmp / f"case{index}.callgrind",
                                 config.case_timeout_s)
    if counted.failure_output:
        config.log_failure(f"{case.label} (callgrind)", counted.failure_output)
    return counted.fields


def _until_precise(index: int, case: Case, config: RunConfig, tmp: Path, job: WorkerJob,
                   benchmark: Any, reporter: Reporter) -> tuple[Any, Finding]:
    """With --target-precision: more worker processes (another manager child each round)
    until the median's 95% interval is within the target or --max-time is spent; the
    merged benchmark and a note when the target was not reached."""
    target = config.target_precision_pct
    if target is None or case.scenario == SCENARIO_COLD_START:  # a cold start: its samples
        return benchmark, Finding("precision")
    start, rounds = time.monotonic(), 1
    precision = median_precision_pct(runs_ms(benchmark))
    while (precision is None or precision > target) and \
            time.monotonic() - start < config.max_time_s:
        reporter.case_started(index, case, f"measure (+-{precision or 0:.2f}%, want "
                                           f"+-{target:g}%)")
        more, _ = _measure_step(index, case, config, tmp, job)
        if more is None:
            break
        benchmark.add_runs(more)
        rounds += 1
        precision = median_precision_pct(runs_ms(benchmark))
    if precision is not None and precision <= target:
        return benchmark, Finding("precision")
    reached = "no interval" if precision is None else f"+-{precision:.2f}%"
    return benchmark, Finding("precision", reason=(
        f"precision: the median's 95% interval is {reached} after {rounds} round(s) of "
        f"{config.profile.processes} processes "
        f"({time.monotonic() - start:.0f} s, --max-time {config.max_time_s:g}); target "
        f"+-{target:g}%"))


def _versus_step(index: int, case: Case, config: RunConfig, tmp: Path,
                 exporter: Exporter | None) -> dict[str, Any]:
    """fp32_max_abs_err and fp32_rmse: the variant against the same backend's fp32
    artifact (exported first on the host), from the versus child; {} when there is no
    fp32 artifact or the child fails (its output goes to the log)."""
    fp32_case = dataclasses.replace(case, variant=FP32)
    if exporter is not None and exporter.ensure(fp32_case, tmp):
        return {}
    try:
        bundle = Bundle.load(config.bundle_root)
    except BundleError:
        return {}
    artifact = bundle.artifact(case.model, FP32, case.backend)
    if artifact is None or bundle.damaged(artifact.files):
        return {}
    out_path = tmp / f"case{index}.versus.json"
    child = run_child([*child_argv("edge_rnn_harness.measure.versus"),
                       str(tmp / f"case{index}.json"), "--fp32-artifact",
                       str(bundle.path(artifact.artifact)), "-o", str(out_path)],
                      config.case_timeout_s, "comparing with fp32")
    if not child.ok:
        config.log_failure(f"{case.label} (versus fp32)", child.output)
        return {}
    return json.loads(out_path.read_text())


def case_fields(case: Case) -> dict[str, Any]:
    """The row fields every case has: its key, runtime version, meter."""
    return {**case.to_dict(), "backend_version": get_backend(case.backend).version(),
            "power_meter": "none"}


def case_job(case: Case, config: RunConfig) -> tuple[dict[str, Any], WorkerJob | None]:
    """The case's row fields so far and the worker job measuring it from the bundle, or
    (fields with status and reason, None) when it cannot be measured: runtime not
    installed, variant not offered, artifact not in the bundle, a file altered."""
    fields = case_fields(case)
    backend = get_backend(case.backend)
    unsupported = backend.unsupported_reason(case.variant)
    if unsupported is not None:
        return {**fields, "status": "unsupported", "reason": unsupported}, None
    why_not = backend.installed()
    if why_not is not None:
        return {**fields, "status": "skipped", "reason": why_not}, None
    try:
        bundle = Bundle.load(config.bundle_root)
    except BundleError as error:
        return {**fields, "status": "failed", "reason": str(error)}, None
    model = bundle.models.get(case.model)
    form = artifact_form(case, model.seq_len) if model else ""
    artifact = bundle.artifact(case.model, case.variant, case.backend, form)
    if model is None or artifact is None:
        return {**fields, "status": "skipped",
                "reason": f"the bundle has no {case.backend} {case.variant} artifact for "
                          f"{case.model}" + (f" ({form_text(form)})" if form else "")}, None
    # rmse/mae are measured on windows of the length the model was trained on
    testset = model.files.get("testset") \
        if config.accuracy and case.seq_len == model.seq_len else None
    reference = artifact.reference or model.files["reference"]
    fields.update(params=model.params, artifact_bytes=artifact.size_bytes,
                  dataset=model.dataset if testset else None, model_id=model.identity,
                  artifact_id=artifact.identity)
    damage = bundle.damaged([*artifact.files, reference, *([testset] if testset else [])])
    if damage:
        return {**fields, "status": "failed", "reason": damage}, None
    return fields, WorkerJob(
        case=case.to_dict(), artifact=str(bundle.path(artifact.artifact)),
        reference=str(bundle.path(reference)),
        tuning=dict(config.tuning.get(case.backend, {})),
        testset=str(bundle.path(testset)) if testset else None,
        tolerance=dataclasses.asdict(config.tolerance) if config.tolerance else None,
        module_callable=config.callables.get(case.model), notes=artifact.notes)


def pyperf_args(case: Case, config: RunConfig) -> list[str]:
    """The case's pyperf options: the profile's, or for a paced case --paced-calls values
    (one warm-up) in at most MAX_PACED_PROCESSES of the profile's processes: each value
    waits its interval, so the count bounds the case's time."""
    if paced_interval_s(case.scenario) is None:
        return config.profile.pyperf_args()
    return ["--processes", str(paced_processes(config)), "--values",
            str(config.paced_calls), "--warmups", "1", "--loops", "1"]


def paced_processes(config: RunConfig) -> int:
    """Worker processes of a paced case."""
    return min(config.profile.processes, MAX_PACED_PROCESSES)


def paced_seconds(cases: list[Case], config: RunConfig) -> float:
    """How long the paced cases of a plan sleep, in all (s): stated before a run starts."""
    return sum((paced_interval_s(case.scenario) or 0) * paced_processes(config)
               * (config.paced_calls + 1) for case in cases)


def _measure_step(index: int, case: Case, config: RunConfig, tmp: Path,
                  job: WorkerJob) -> tuple[Any, dict[str, str]]:
    """The case's pyperf benchmark from its own manager child (a cold start: from its
    fresh processes); else (None, failure)."""
    import pyperf

    if case.scenario == SCENARIO_COLD_START:
        benchmark, failure = sample_cold_starts(job, config.cold_samples, tmp,
                                                config.case_timeout_s, config.drop_caches)
        if failure and is_not_installed(failure["reason"]):
            return None, {"status": "skipped", "reason": failure["reason"]}
        return benchmark, failure

    job_path, out_path = tmp / f"case{index}.json", tmp / f"case{index}.pyperf.json"
    job.save(job_path)
    hooks = ["--hook", COUNTERS_HOOK] if "perf" in config.counters else []
    out_path.unlink(missing_ok=True)
    child = run_child([*child_argv("edge_rnn_harness.measure.worker"), str(job_path),
                       "-o", str(out_path), "--quiet", "--hook", MEMORY_HOOK, *hooks,
                       "--inherit-environ", SYSFS_ROOT_ENV,  # workers read the same device
                       *pyperf_args(case, config)], config.case_timeout_s, "measuring")
    if child.returncode == EXIT_UNAVAILABLE:
        return None, {"status": "skipped", "reason": child.reason}
    if child.returncode == EXIT_UNSUPPORTED:
        return None, {"status": "unsupported", "reason": child.reason}
    if not child.ok:
        config.log_failure(f"{case.label} (measure)", child.output)
        return None, {"status": "failed", "reason": child.reason}
    return pyperf.Benchmark.load(str(out_path)), {}
