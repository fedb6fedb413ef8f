"""Options and value types shared by the commands: the one-line-error parser, bounded
numbers, paths, name lists, the shared argument groups (models, variants, shapes, measuring,
sources) and the checks of names and output paths. Imports nothing from `cli`."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge_rnn_harness.backends.registry import backend_names, get_backend
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import (
    DEFAULT_INTERVALS_S,
    PACED_PREFIX,
    SCENARIOS,
    Shapes,
    interval_label,
    paced_interval_s,
)
from edge_rnn_harness.core.profiles import PROFILES
from edge_rnn_harness.core.results import OutputBusy, check_not_busy
from edge_rnn_harness.core.variants import DEFAULT_CALIBRATION_WINDOWS, VARIANTS
from edge_rnn_harness.measure.runner import (
    DEFAULT_COLD_SAMPLES,
    DEFAULT_PACED_CALLS,
    MAX_COLD_SAMPLES,
    MAX_PACED_CALLS,
    MAX_PACED_PROCESSES,
)

EXIT_OK, EXIT_FAILED_CASES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


T = TypeVar("T")


class UsageParser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


#: largest whole number an option takes (a count of windows, epochs, ...)
MAX_COUNT = 1_000_000

#: largest --threads value (a runtime asked for billions of threads exhausts the machine)
MAX_THREADS = 1024

#: longest window a --seq-len sweep may ask for (a year of hours) and the largest batch
MAX_SEQ_LEN, MAX_BATCH = 8760, 4096


def positive_ints(text: str, limit: int = MAX_COUNT) -> list[int]:
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


def thread_counts(text: str) -> list[int]:
    return positive_ints(text, MAX_THREADS)


def request_from(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """The typed request (a dataclass) of a parsed command line: each field from the option
    of its name (its default where this command line has no such option, e.g. another
    action's), plus `extra` fields computed from it."""
    names = [item.name for item in dataclasses.fields(cls)]  # type: ignore[arg-type]
    given = {name: getattr(args, name) for name in names
             if hasattr(args, name) and name not in extra}
    return cls(**given, **extra)


def seq_lens(text: str) -> list[int]:
    """--seq-len: window lengths, each from 1 to MAX_SEQ_LEN."""
    return positive_ints(text, MAX_SEQ_LEN)


def batches(text: str) -> list[int]:
    """--batch: windows per call, each from 1 to MAX_BATCH."""
    return positive_ints(text, MAX_BATCH)


def user_path(text: str) -> Path:
    """A path option or argument; ArgumentTypeError for an empty one or one with a NUL
    character (no file system takes it)."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file path")
    return Path(text)


def positive_int(text: str) -> int:
    values = positive_ints(text)
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


def name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def parse_tuning(values: Sequence[str]) -> dict[str, dict[str, str]]:
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
    tuning = parse_tuning(values)
    for name, options in tuning.items():
        resolve_names([name], backend_names(), "backend", command)
        try:
            get_backend(name).check_tuning(options)
        except ValueError as error:
            raise UsageError(f"harness {command}: {flag}: {error}") from None
    return tuning


def add_dataset_args(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument("--dataset", type=user_path, default=None, metavar="CSV",
                        help=f"your own hourly series as a CSV, {purpose} (default: the "
                             f"bundled Victoria 2014 electricity demand, in GW)")
    parser.add_argument("--column", default=None, metavar="NAME",
                        help="with --dataset: the column to forecast")
    parser.add_argument("--time-column", default=None, metavar="NAME",
                        help="with --dataset: a timestamp column; rows must be in time order "
                             "and hour-of-day features are derived from it")


def add_model_args(parser: argparse.ArgumentParser, default: str, names: list[str],
                    extra: str) -> None:
    parser.add_argument("--model", "--models", dest="models", type=name_list, default=None,
                        metavar="LIST",
                        help=f"comma-separated models (default {default}{extra}): registered "
                             f"names ({', '.join(names)}), paths to .onnx files, or "
                             f"package.module:callable returning (torch module, example input)")


def add_variants_arg(parser: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    parser.add_argument("--variants", type=name_list, default=["fp32"], metavar="LIST",
                        help=f"comma-separated precision variants, or all (default fp32): "
                             f"{'; '.join(f'{v}: {VARIANTS[v].summary}' for v in variants)}. "
                             f"A pair a runtime cannot do is an "
                             f"'unsupported' row with the reason; each variant is also "
                             f"compared with the same backend's fp32")


def scenario_names(text: str) -> list[str]:
    names = name_list(text)
    for name in names:
        if name not in SCENARIOS:
            raise argparse.ArgumentTypeError(f"unknown scenario {name!r}; choose from: "
                                             f"{', '.join(SCENARIOS)}")
    return list(dict.fromkeys(names))


def add_shape_args(parser: argparse.ArgumentParser) -> None:
    """--scenario, --seq-len and --batch: which forms of each model a run measures."""
    parser.add_argument("--scenario", type=scenario_names, default=None, metavar="LIST",
                        help="comma-separated scenarios: " + "; ".join(
                            f"{name}: {what}" for name, what in SCENARIOS.items())
                        + " (default: single_stream for batch 1, batch for larger --batch)")
    parser.add_argument("--seq-len", type=seq_lens,
                        default=None, metavar="N[,N...]",
                        help="window lengths to sweep (default: each model's own, 24 for the "
                             "registered forecasters); another length is its own export, "
                             "cached; rmse/mae only at the model's own length")
    parser.add_argument("--batch", type=batches,
                        default=[1], metavar="N[,N...]",
                        help="windows per call to sweep (default 1); batch > 1 runs the "
                             "batch scenario: latency per call, throughput in windows/s")


def add_deployed_args(parser: argparse.ArgumentParser) -> None:
    """--cold-samples, --interval, --paced-calls and --drop-caches: how the cold_start and
    paced scenarios measure (`harness run` only: they need no export of their own)."""
    parser.add_argument("--cold-samples", type=cold_samples, default=DEFAULT_COLD_SAMPLES,
                        metavar="N",
                        help=f"cold_start: fresh processes per case, each one forecast "
                             f"(default {DEFAULT_COLD_SAMPLES}, at most {MAX_COLD_SAMPLES})")
    parser.add_argument("--interval", type=intervals, default=None, metavar="LIST",
                        help="paced: the sleeps between calls, e.g. 10ms,1s,60s (default "
                             "10ms,1s); one case per interval")
    parser.add_argument("--paced-calls", type=paced_calls, default=DEFAULT_PACED_CALLS,
                        metavar="N",
                        help=f"paced: timed calls per worker process, each after its interval "
                             f"(default {DEFAULT_PACED_CALLS}; at most {MAX_PACED_PROCESSES} "
                             f"processes: a 1s interval costs about processes x N seconds; "
                             f"the run states the total before it starts)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="cold_start: drop the page cache before each process (root "
                             "only; else the rows say 'warm page cache': the runtime's and "
                             "the model's files are read from memory after the first)")


#: the longest paced interval (an hour: the forecaster's own period)
MAX_INTERVAL_S = 3600.0


def intervals(text: str) -> list[str]:
    """--interval: comma-separated intervals with a unit, "10ms", "1s", "60s", each above 0
    and at most MAX_INTERVAL_S; as their canonical labels (plan.interval_label)."""
    labels = []
    for part in name_list(text):
        number, scale = (part[:-2], 1e-3) if part.endswith("ms") else (part[:-1], 1.0) \
            if part.endswith("s") else (part, math.nan)
        try:
            seconds = float(number) * scale
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= MAX_INTERVAL_S:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{part!r} is not an interval such as 10ms or 1s "
                                             f"(above 0, at most {MAX_INTERVAL_S:g} s)")
        labels.append(interval_label(seconds))
    return list(dict.fromkeys(labels))


def paced_calls(text: str) -> int:
    """--paced-calls: timed calls per paced worker process, 1 to MAX_PACED_CALLS."""
    values = positive_ints(text, MAX_PACED_CALLS)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not one whole number")
    return values[0]


def cold_samples(text: str) -> int:
    """--cold-samples: processes per cold_start case, 1 to MAX_COLD_SAMPLES."""
    values = positive_ints(text, MAX_COLD_SAMPLES)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not one whole number")
    return values[0]


def shapes_of(args: argparse.Namespace) -> Any:
    """The run's Shapes (plan) from --scenario, --seq-len and --batch."""
    interval_labels = getattr(args, "interval", None)
    return Shapes(tuple(args.scenario) if args.scenario else None,
                  tuple(args.seq_len) if args.seq_len else None, tuple(args.batch),
                  tuple(paced_interval_s(PACED_PREFIX + label) for label in interval_labels)
                  if interval_labels else DEFAULT_INTERVALS_S)


def add_measure_args(parser: argparse.ArgumentParser) -> None:
    """--threads and --profile: what each case measures and for how long."""
    parser.add_argument("--threads", type=thread_counts, default=None, metavar="N[,N...]",
                        help="intra-op thread counts to measure (default 1)")
    parser.add_argument("--profile", default="default", metavar="NAME",
                        help="how long to measure: " + "; ".join(
                            f"{p.name}: {p.summary}" for p in PROFILES.values())
                        + " (default: default)")


#: the longest --case-timeout (a week): a case is never given longer, and the operating
#: system's timers take no larger number
MAX_CASE_TIMEOUT_S = 7 * 24 * 3600.0


def case_timeout_arg(text: str) -> float:
    """--case-timeout: seconds above 0, at most MAX_CASE_TIMEOUT_S."""
    return float_arg(text, "a number of seconds", lambda v: 0 < v <= MAX_CASE_TIMEOUT_S,
                     f"must be a number of seconds above 0 and at most "
                     f"{MAX_CASE_TIMEOUT_S:g} (a week)")


def add_timeout_arg(parser: argparse.ArgumentParser, default_s: float) -> None:
    parser.add_argument("--case-timeout", type=case_timeout_arg, default=default_s,
                        metavar="SECONDS", help="kill a case's export or measurement after "
                        f"this long and record it as failed (default {default_s:g})")


def add_source_args(parser: argparse.ArgumentParser, no_accuracy_help: str) -> None:
    """Options of the host side: where models and data come from."""
    parser.add_argument("--inputs", type=user_path, default=None, metavar="NPZ",
                        help="for an .onnx model: input arrays by input name (default: the "
                             "test_data_set_N/input_K.pb files beside the model, else seeded "
                             "random inputs of the input shapes)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=DxDxD",
                        help="for an .onnx model: fill an input's dynamic dimensions, e.g. "
                             "x=1x24x1 (repeatable)")
    add_dataset_args(parser, "whose test split measures rmse/mae")
    parser.add_argument("--weights-dir", type=user_path, default=None, metavar="DIR",
                        help="read model weights from DIR (written by harness train --out "
                             "DIR) instead of the committed models/weights")
    parser.add_argument("--no-accuracy", action="store_true", help=no_accuracy_help)
    parser.add_argument("--calibration-windows", type=positive_int, default=None,
                        metavar="N", help=f"training-split windows the int8-static "
                        f"quantizers calibrate on, evenly spaced (default "
                        f"{DEFAULT_CALIBRATION_WINDOWS}; recorded in each row)")


def resolve_names(requested: list[str], valid: list[str], what: str,
                   command: str = "run") -> list[str]:
    if requested == ["all"]:
        return list(valid)
    for name in requested:
        if name not in valid:
            raise UsageError(f"harness {command}: unknown {what} {name!r}; choose from: "
                             f"{', '.join(valid)}" + (" (or 'all')" if what == "backend" else ""))
    return list(dict.fromkeys(requested))


def check_writable(out: Path, command: str = "run") -> None:
    """UsageError unless `out` can be written; creates its folder, not the file (nothing
    is written before the run has been validated)."""

    if out.is_dir() or out.suffix != ".csv":
        raise UsageError(f"harness {command}: --out {out} is not a .csv file path (the "
                         f"pyperf JSON and log are written beside it with the same stem)")
    check_writable_file(out, command, "--out")
    try:
        check_not_busy(out)
    except OutputBusy as error:
        raise UsageError(f"harness {command}: {error}") from None


def check_writable_file(path: Path, command: str, flag: str) -> None:
    """UsageError unless the file `path` can be written (created or replaced): not a
    folder, its folder present or creatable and writable. Checked before any work, so a
    long measurement never ends in a failed write."""
    if path.is_dir():
        raise UsageError(f"harness {command}: {flag} {path} is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"harness {command}: cannot write {flag} {path} "
                         f"({error.strerror or error})") from None
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise UsageError(f"harness {command}: cannot write {flag} {path} (permission denied)")


def check_writable_dir(folder: Path, command: str, flag: str = "--out") -> None:
    """UsageError unless `folder` is (or can be made) a writable folder; checked before
    any work, so a long step does not end in a traceback."""

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"harness {command}: cannot write {flag} {folder} "
                         f"({error.strerror or error})") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"harness {command}: cannot write {flag} {folder} (permission denied)")
