"""The run: for each case of the plan, export (cached, in a child process), measure (a
pyperf manager in a child process, with its own worker processes), write the row.

Each case's row is appended to the CSV, and its benchmark to the pyperf JSON, as soon as
it finishes, so a crash or Ctrl-C later keeps every row already measured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from backends.registry import get_backend
from harness import __version__, bundle
from harness.environment import environment
from harness.isolation import run_child
from harness.parity import Tolerance
from harness.plan import Case
from harness.profiles import Profile
from harness.results import ResultsWriter, new_row
from harness.sources import ModelSource
from harness.stats import latency_summary_ms
from harness.worker import MEMORY_HOOK, WorkerJob
from models.data import Dataset, make_splits

DEFAULT_CASE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run measures.

    out: results CSV (the pyperf JSON goes beside it, same stem).
    bundle_root: export cache folder. case_timeout_s: limit for each child step.
    tuning: backend name -> backend-specific options.
    """

    profile: Profile
    out: Path
    bundle_root: Path
    case_timeout_s: float = DEFAULT_CASE_TIMEOUT_S
    tuning: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the models by name (registered, ONNX files, PyTorch callables)
    sources: Mapping[str, ModelSource] = field(default_factory=dict)
    #: accuracy is measured on this dataset's test split, for registered models (None: no
    #: rmse/mae)
    dataset: Dataset | None = None
    #: parity tolerance replacing every variant's default
    tolerance: Tolerance | None = None

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


class Reporter(Protocol):
    """What the runner tells the user while it works (the CLI shows it with rich)."""

    def case_started(self, index: int, case: Case, stage: str) -> None:
        """Case `index` (0-based) entered `stage` ("export" or "measure")."""

    def case_finished(self, index: int, case: Case, row: Mapping[str, Any]) -> None:
        """Case `index` finished with `row`."""

    def notice(self, text: str) -> None:
        """A one-line notice (e.g. a damaged cached artifact being re-exported)."""


def run_plan(cases: list[Case], config: RunConfig, reporter: Reporter) -> list[dict[str, Any]]:
    """Measure every case in order; return the rows (also written to config.out)."""
    import pyperf

    shared = {"run_id": uuid.uuid4().hex[:12],
              "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "harness_version": __version__, **environment()}
    writer = ResultsWriter(config.out)
    config.json_path.unlink(missing_ok=True)
    config.log_path.unlink(missing_ok=True)
    benchmarks: list[pyperf.Benchmark] = []
    with tempfile.TemporaryDirectory(prefix="harness-") as tmp:
        testsets = _write_testsets(cases, config, Path(tmp))
        for index, case in enumerate(cases):
            fields, benchmark = _run_case(index, case, config, Path(tmp), reporter,
                                          testsets.get(case.model))
            row = new_row(**shared, **fields)
            writer.append(row)
            if benchmark is not None:
                benchmarks.append(benchmark)
                pyperf.BenchmarkSuite(benchmarks).dump(str(config.json_path), replace=True)
            reporter.case_finished(index, case, row)
    return writer.rows


def _write_testsets(cases: list[Case], config: RunConfig, tmp: Path) -> dict[str, Path]:
    """Per registered model, its test-split windows as an .npz the workers read (none
    without a dataset, and none for models brought as files or callables)."""
    if config.dataset is None:
        return {}
    paths = {}
    for index, name in enumerate(dict.fromkeys(case.model for case in cases)):
        entry = config.sources[name].entry()
        if entry is None:
            continue
        split = make_splits(config.dataset, entry.features, entry.spec.seq_len,
                            entry.spec.horizon).test
        paths[name] = tmp / f"testset-{index}.npz"
        np.savez(paths[name], x=split.x, y=split.y)
    return paths


def _case_fields(case: Case, config: RunConfig, testset: Path | None) -> dict[str, Any]:
    backend = get_backend(case.backend)
    return {**case.to_dict(), "backend_version": backend.version(), "power_meter": "none",
            "params": config.sources[case.model].params(),
            "dataset": config.dataset.name if config.dataset and testset else None}


def _run_case(index: int, case: Case, config: RunConfig, tmp: Path, reporter: Reporter,
              testset: Path | None) -> tuple[dict[str, Any], Any]:
    """One case's row fields and pyperf benchmark (None when it did not measure)."""
    fields = _case_fields(case, config, testset)
    backend = get_backend(case.backend)
    why_not = backend.available()
    if why_not is None and case.variant not in backend.variants:
        why_not = f"{backend.name} has no {case.variant} variant"
    if why_not is not None:
        return {**fields, "status": "skipped", "reason": why_not}, None
    reporter.case_started(index, case, "export")
    artifact, outcome = _export_step(index, case, config, tmp, reporter)
    if artifact is None:
        return {**fields, **outcome}, None
    fields["artifact_bytes"] = artifact.size_bytes
    reporter.case_started(index, case, "measure")
    benchmark, outcome = _measure_step(index, case, config, tmp, artifact, testset)
    if benchmark is None:
        return {**fields, **outcome}, None
    fields.update(measurement_fields(benchmark, case.batch))
    fields.update(parity_verdict(benchmark))
    return fields, benchmark


def _export_step(index: int, case: Case, config: RunConfig, tmp: Path,
                 reporter: Reporter) -> tuple[bundle.Artifact | None, dict[str, str]]:
    """The cached artifact, or one exported in a child; else (None, status and reason)."""
    source, backend = config.sources[case.model], get_backend(case.backend)
    artifact, notice = bundle.lookup(config.bundle_root, source, backend, case.variant)
    if notice:
        reporter.notice(notice)
    if artifact is not None:
        return artifact, {}
    source_json = tmp / f"source{index}.json"
    source_json.write_text(json.dumps(source.describe()))
    child = run_child([sys.executable, "-m", "harness.bundle", "--root",
                       str(config.bundle_root), "--source", str(source_json),
                       "--backend", case.backend, "--variant", case.variant],
                      config.case_timeout_s)
    if child.returncode == bundle.EXIT_UNSUPPORTED:
        return None, {"status": "unsupported", "reason": child.reason}
    if not child.ok:
        _log_failure(config, case, "export", child.output)
        return None, {"status": "failed", "reason": f"export: {child.reason}"}
    artifact, notice = bundle.lookup(config.bundle_root, source, backend, case.variant)
    if artifact is None:
        return None, {"status": "failed", "reason": f"export: {notice}"}
    return artifact, {}


def _measure_step(index: int, case: Case, config: RunConfig, tmp: Path,
                  artifact: bundle.Artifact, testset: Path | None
                  ) -> tuple[Any, dict[str, str]]:
    """The case's pyperf benchmark from its own manager child; else (None, failure)."""
    import pyperf

    job_path, out_path = tmp / f"case{index}.json", tmp / f"case{index}.pyperf.json"
    source = config.sources[case.model]
    WorkerJob(case=case.to_dict(), artifact=str(artifact.path),
              reference=str(bundle.reference_path(config.bundle_root, source)),
              tuning=dict(config.tuning.get(case.backend, {})),
              testset=str(testset) if testset else None,
              tolerance=dataclasses.asdict(config.tolerance) if config.tolerance else None
              ).save(job_path)
    child = run_child([sys.executable, "-m", "harness.worker", str(job_path),
                       "-o", str(out_path), "--quiet", "--hook", MEMORY_HOOK,
                       *config.profile.pyperf_args()], config.case_timeout_s)
    if not child.ok:
        _log_failure(config, case, "measure", child.output)
        return None, {"status": "failed", "reason": child.reason}
    return pyperf.Benchmark.load(str(out_path)), {}


def measurement_fields(benchmark: Any, batch: int) -> dict[str, Any]:
    """Row fields from one case's pyperf benchmark: latency statistics over every value
    of every worker, and per-worker metadata aggregated (memory and errors: the worst
    worker; load and first-run time: the median worker)."""
    values = benchmark.get_values()
    runs = [run.get_metadata() for run in benchmark.get_runs()]

    def gather(key: str) -> list[Any]:
        return [meta[key] for meta in runs if key in meta]

    fields: dict[str, Any] = {"n_values": len(values), **latency_summary_ms(values, batch)}
    for key in ("load_ms", "first_run_ms"):
        fields[key] = statistics.median(gather(key)) if gather(key) else None
    for key in ("peak_rss_mb", "rss_delta_mb", "max_abs_err", "max_rel_err", "rmse", "mae"):
        fields[key] = max(gather(key)) if gather(key) else None
    fields["settings"] = (gather("settings") or [""])[0]
    versions = gather("backend_version")
    if versions and versions[0] != "-":
        fields["backend_version"] = versions[0]
    return fields


def parity_verdict(benchmark: Any) -> dict[str, str]:
    """status ok, or failed with the reason, from the workers' parity checks: every worker
    must have matched the reference within the tolerance, on every output."""
    runs = [run.get_metadata() for run in benchmark.get_runs()]
    failing = [meta for meta in runs if meta.get("parity_ok") != 1]
    if runs and not failing:
        return {"status": "ok", "reason": ""}
    worst = failing[0] if failing else {}
    nan = float("nan")
    return {"status": "failed",
            "reason": (f"parity: output {worst.get('parity_output', '?')!r} max_abs_err "
                       f"{worst.get('parity_output_abs_err', nan):.3g}, max_rel_err "
                       f"{worst.get('parity_output_rel_err', nan):.3g} exceed atol "
                       f"{worst.get('parity_atol', nan):g} + rtol "
                       f"{worst.get('parity_rtol', nan):g} x |reference|")}


def _log_failure(config: RunConfig, case: Case, stage: str, output: str) -> None:
    with config.log_path.open("a") as log:
        log.write(f"==== {case.bench_name} ({stage})\n{output}\n")
