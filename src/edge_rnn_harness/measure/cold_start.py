"""The cold_start scenario: what a forecast costs from a cold process, as a cron job pays it
once an hour. Child program, one forecast per process:

  python -P -m edge_rnn_harness.measure.cold_start JOB.json OUT.json

Started the way a deployed job starts (`-P`: only the installed device side importable),
it notes CLOCK_MONOTONIC (system-wide, so the parent's clock) at each phase: its first line
(the interpreter's start), numpy and the harness's device side imported, the runtime
imported, the model loaded (the reference file, which holds the input window, is read in
this phase: its tensors name the model's), the input window taken, the first inference,
the forecast written (and fsynced). Parity of that forecast against the reference and the process's
peak resident set (VmHWM: interpreter, runtime and model, everything) are recorded after
the timed phases. The parent (`sample_cold_starts`) notes the clock just before it starts
each process: each sample's latency is exec to the forecast written.

Page cache: the runtime's and the model's files are read through the page cache; after the
first sample they are cached. With `drop_caches` (root only) the parent drops the cache
before every sample (a Pi after an hour of other work is in between); otherwise the rows
say "warm page cache".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

#: the phases a cold start is cut into, in order, with the words the results columns use
PHASES = (("cold_interpreter_ms", "interpreter start"),
          ("cold_harness_import_ms", "numpy and the harness's device side imported"),
          ("cold_runtime_import_ms", "the runtime imported"),
          ("cold_load_ms", "the model loaded"),
          ("cold_input_ms", "the input window taken from the file read while loading"),
          ("cold_inference_ms", "the first inference"),
          ("cold_output_ms", "the forecast written"))


def _forecast(job_path: str, out_path: str) -> dict:
    """The timed phases of one cold forecast (CLOCK_MONOTONIC ns at each phase's end) and
    what was checked after them."""
    stamps = [time.monotonic_ns()]  # the interpreter is up: this module's first work
    import numpy as np

    from edge_rnn_harness.backends.registry import get_backend
    from edge_rnn_harness.bundle.reader import load_reference
    from edge_rnn_harness.measure.worker import WorkerJob, open_model

    stamps.append(time.monotonic_ns())
    job = WorkerJob.load(Path(job_path))
    backend = get_backend(job.case["backend"])
    why_not = backend.available()  # imports the runtime
    if why_not is not None:
        raise RuntimeError(why_not)
    stamps.append(time.monotonic_ns())
    windows = load_reference(Path(job.reference))
    model = open_model(job, windows)
    stamps.append(time.monotonic_ns())
    inputs = {name: np.array(array) for name, array in windows[0][0].items()}
    stamps.append(time.monotonic_ns())
    outputs = model.run(model.feed(inputs))
    stamps.append(time.monotonic_ns())
    with open(out_path + ".forecast.json", "w") as handle:
        json.dump({name: np.asarray(value).tolist() for name, value in outputs.items()},
                  handle)
        handle.flush()
        os.fsync(handle.fileno())
    stamps.append(time.monotonic_ns())
    return {"stamps_ns": stamps, **_checks(job, model, outputs, windows)}


def _checks(job: object, model: object, outputs: dict, windows: list) -> dict:
    """After the timed phases: parity of the forecast with the reference's first window,
    the settings read back, and the whole process's peak resident set."""
    import numpy as np

    from edge_rnn_harness.core.parity import Tolerance, compare_outputs
    from edge_rnn_harness.core.variants import get_variant
    from edge_rnn_harness.measure.memory import peak_rss_mb

    tolerance = Tolerance(**job.tolerance) if job.tolerance else \
        get_variant(job.case["variant"]).parity  # type: ignore[attr-defined]
    parity = compare_outputs({name: np.asarray(value)[None] for name, value in outputs.items()},
                             {name: np.asarray(value)[None]
                              for name, value in windows[0][1].items()}, tolerance)
    worst = parity.outputs[parity.worst_output]
    return {"max_abs_err": parity.max_abs_err, "max_rel_err": parity.max_rel_err,
            "parity_ok": int(parity.within), "parity_output": parity.worst_output,
            "parity_output_abs_err": worst.max_abs_err,
            "parity_output_rel_err": worst.max_rel_err,
            "parity_atol": tolerance.atol, "parity_rtol": tolerance.rtol,
            "peak_rss_mb": peak_rss_mb(),
            "settings": json.dumps({**model.settings, **job.notes},  # type: ignore[attr-defined]
                                   sort_keys=True)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of one cold forecast's process."""
    job_path, out_path = (argv if argv is not None else sys.argv[1:])[:2]
    try:
        result = _forecast(job_path, out_path)
    except Exception as error:  # noqa: BLE001 -- any failure is this sample's reason
        from edge_rnn_harness.core.errors import error_line

        print(error_line(error), file=sys.stderr)
        return 1
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return 0


#: the page-cache states a row can name
WARM_CACHE, DROPPED_CACHE = "warm", "dropped before each sample"
DROP_CACHES_PATH = Path("/proc/sys/vm/drop_caches")


def drop_page_cache() -> str | None:
    """Write back dirty pages and drop the page cache (root only); None when done, else
    why not."""
    os.sync()
    try:
        DROP_CACHES_PATH.write_text("3\n")
    except OSError as error:
        return f"cannot drop the page cache ({error.strerror or error}: needs root)"
    return None


def sample_cold_starts(job: Any, samples: int, tmp: Path, timeout_s: float,
                       drop_caches: bool = False) -> tuple[Any, dict[str, str]]:
    """`samples` cold forecasts, each a fresh process: a pyperf benchmark of one value per
    process (exec to forecast written, seconds) whose run metadata holds the phases and
    checks, or (None, {"status": "failed", "reason": ...}) at the first that fails."""
    import pyperf

    from edge_rnn_harness.core.launcher import child_argv, run_child
    from edge_rnn_harness.measure.worker import device_metadata

    job_path = tmp / "cold.job.json"
    job.save(job_path)
    runs = []
    for sample in range(samples):
        out = tmp / f"cold{sample}.json"
        out.unlink(missing_ok=True)
        if drop_caches:
            why_not = drop_page_cache()
            if why_not:
                return None, {"status": "failed", "reason": f"--drop-caches: {why_not}"}
        started_ns = time.monotonic_ns()
        child = run_child(child_argv("edge_rnn_harness.measure.cold_start", job_path, out),
                          timeout_s, "starting cold")
        if not child.ok:
            return None, {"status": "failed", "reason": f"cold start: {child.reason}"}
        runs.append(_run(job, json.loads(out.read_text()), started_ns, pyperf))
    benchmark = pyperf.Benchmark(runs)
    benchmark.update_metadata({**device_metadata(),
                               "page_cache": DROPPED_CACHE if drop_caches else WARM_CACHE})
    return benchmark, {}


def cold_energy_fields(job: Any, power: str, idle_s: float, forecasts: int, tmp: Path,
                       timeout_s: float) -> dict[str, Any]:
    """Energy per cold forecast where a meter exists: the meter's idle power for `idle_s`,
    then its mean power over `forecasts` cold processes run one after another (each from
    exec to exit, teardown included: what the battery pays per hourly job); gross and net
    (idle subtracted) energy per forecast, or empty cells with a `power:` reason."""
    from edge_rnn_harness.board.power import MeterUnavailable, open_meter
    from edge_rnn_harness.core.launcher import child_argv, run_child
    from edge_rnn_harness.measure.energy import EnergyResult

    meter, why_none = open_meter(power)
    if meter is None:
        return {"power_meter": power, "reason": f"power: {why_none}"}
    job_path = tmp / "cold.job.json"
    job.save(job_path)
    try:
        with meter.measure() as idle:
            time.sleep(idle_s)
        with meter.measure() as busy:
            for sample in range(forecasts):
                child = run_child(child_argv("edge_rnn_harness.measure.cold_start", job_path,
                                             tmp / f"cold-energy{sample}.json"),
                                  timeout_s, "measuring cold-start energy")
                if not child.ok:
                    raise MeterUnavailable(f"a cold forecast failed: {child.reason}")
    except MeterUnavailable as error:
        return {"power_meter": meter.name, "reason": f"power: {error}"}
    return EnergyResult(meter.name, meter.covers, idle.mean_w, busy.mean_w, busy.samples,
                        busy.seconds, forecasts, idle.error or busy.error).row_fields()


def _run(job: Any, result: dict, started_ns: int, pyperf: Any) -> Any:
    """One sample as a pyperf run: its value exec to forecast written, its metadata the
    phases (ms) and the checks."""
    stamps = [started_ns, *result.pop("stamps_ns")]
    phases = {column: (end - start) / 1e6
              for (column, _), start, end in zip(PHASES, stamps, stamps[1:])}
    total_s = (stamps[-1] - started_ns) / 1e9
    return pyperf.Run([total_s], warmups=None, collect_metadata=True, metadata={
        "name": job.bench_name, "unit": "second", "loops": 1, **phases, **result,
        "load_ms": phases["cold_load_ms"], "first_run_ms": phases["cold_inference_ms"]})


if __name__ == "__main__":
    from edge_rnn_harness.core.launcher import exit_without_teardown

    exit_without_teardown(main())  # the forecast is written: skip the runtime's teardown
