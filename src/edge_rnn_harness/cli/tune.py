"""`harness tune --backend NAME`: the fastest setting of one backend on this device."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from edge_rnn_harness.backends.registry import backend_names, get_backend
from edge_rnn_harness.bundle.reader import Bundle, BundleError
from edge_rnn_harness.cli.options import (
    EXIT_OK,
    check_writable_dir,
    check_writable_file,
    float_arg,
    request_from,
    thread_counts,
    user_path,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.profiles import get_profile
from edge_rnn_harness.measure.tune import (
    TuneJob,
    chosen,
    summary_lines,
    tune,
    tune_file_text,
)


def _percent(text: str) -> float:
    return float_arg(text, "a percentage", lambda v: 0 <= v <= 1000,
                     "must be a percentage from 0 to 1000") / 100


def add_parser(commands: Any) -> None:
    """The `tune` subcommand."""
    tune = commands.add_parser(
        "tune", help="find a backend's fastest tuning options and thread count here",
        description="Measure every combination of a backend's tuning options and thread "
        "counts on this device: a quick first pass drops settings more than --margin slower "
        "than the best; the rest and the default are measured again with --profile in "
        "alternating rounds, and the best is compared with the default (95% bootstrap "
        "interval of the median ratio). Every run's CSV and pyperf JSON stay in --out.")
    tune.add_argument("--backend", required=True, choices=backend_names(), metavar="NAME",
                      help=f"the backend to tune: {', '.join(backend_names())}")
    tune.add_argument("--model", default=None, metavar="NAME",
                      help="the model (default lstm; with --bundle, the bundle's only model)")
    tune.add_argument("--bundle", type=user_path, default=None, metavar="DIR",
                      help="tune on this bundle's artifact (a device); default: export into "
                           "--bundle-dir as harness run does")
    tune.add_argument("--bundle-dir", type=user_path, default=None, metavar="DIR",
                      help="without --bundle: the export cache (default ./bundle)")
    tune.add_argument("--threads", type=thread_counts, default=None, metavar="N[,N...]",
                      help="thread counts to try (default 1 up to this machine's cores, at "
                           "most 4)")
    tune.add_argument("--profile", default="default", metavar="NAME",
                      help="profile of the second pass (default: default); the first pass "
                           "is quick")
    tune.add_argument("--margin", type=_percent, default=0.25, metavar="PCT",
                      help="keep settings within PCT%% of the first pass's best (default 25)")
    tune.add_argument("--out", type=user_path, default=None, metavar="DIR",
                      help="folder for every run's files (default results/tune-<backend>-"
                           "<UTC timestamp>)")
    tune.add_argument("--write", type=user_path, default=None, metavar="FILE",
                      help="save the best setting as a tune file for harness run --tune-file")
    tune.set_defaults(handler=cmd_tune)


@dataclass(frozen=True)
class TuneRequest:
    """`harness tune`'s options, typed."""
    backend: str = ""
    model: str | None = None
    bundle: Path | None = None
    bundle_dir: Path | None = None
    threads: list[int] | None = None
    profile: str = "default"
    margin: float = 0.25
    out: Path | None = None
    write: Path | None = None


def cmd_tune(args: argparse.Namespace) -> int:
    """`harness tune`: its typed request, run."""
    return tune_command(request_from(TuneRequest, args))


def tune_command(request: TuneRequest) -> int:
    """Run both passes and print the verdict; exit 0 (2 if the default cannot run)."""
    try:
        get_profile(request.profile)
    except ValueError as error:
        raise UsageError(f"harness tune: {error}") from None
    backend = get_backend(request.backend)
    why_not = backend.installed()
    if why_not:
        raise UsageError(f"harness tune: {why_not}")
    threads = request.threads or list(range(1, min(4, os.cpu_count() or 1) + 1))
    source = (["--bundle", str(request.bundle)] if request.bundle else
              (["--bundle-dir", str(request.bundle_dir)] if request.bundle_dir else []))
    model = request.model or ("lstm" if request.bundle is None else _only_model(request.bundle))
    if model:
        source += ["--model", model]
    out_dir = request.out or Path("results") / dt.datetime.now(dt.UTC).strftime(
        f"tune-{request.backend}-%Y%m%d-%H%M%S")
    check_writable_dir(out_dir, "tune")  # both written after minutes of measuring
    if request.write:
        check_writable_file(request.write, "tune", "--write")
    job = TuneJob(request.backend, source, request.profile, out_dir, request.margin)
    console = Console(stderr=True, soft_wrap=True)
    choices = {key: tuple(values) for key, values in backend.tuning_choices.items()}
    console.print(escape(f"harness tune {request.backend}: {len(threads)} thread count(s) x "
                         f"{_count(choices)} option combination(s) -> {out_dir}"))
    try:
        default, best, ratio_ci = tune(job, choices, threads,
                                       lambda text: console.print(escape(text)))
    except ValueError as error:
        raise UsageError(f"harness tune: {error}") from None
    for line in summary_lines(request.backend, default, best, ratio_ci):
        print(line)
    if request.write:
        saved = chosen(default, best, ratio_ci)  # only a proven gain replaces the default
        try:
            request.write.write_text(tune_file_text(job, model, default, best, ratio_ci))
        except OSError as error:
            raise UsageError(f"harness tune: cannot write --write {request.write} "
                             f"({error.strerror or error}); the runs' files are in "
                             f"{out_dir}") from None
        console.print(escape(f"wrote {request.write}: {saved.setting.label}"
                             + ("" if saved is best else " (the default: no setting was "
                                "significantly faster)")
                             + f"; use: harness run --tune-file {request.write}"))
    return EXIT_OK


def _only_model(bundle_root: Path) -> str:
    """The bundle's one model; UsageError when it has another number of them."""
    try:
        models = list(Bundle.load(bundle_root).models)
    except BundleError as error:
        raise UsageError(f"harness tune: {error}") from None
    if len(models) != 1:
        raise UsageError(f"harness tune: the bundle holds {len(models)} models; name one "
                         f"with --model ({', '.join(models) or 'none'})")
    return models[0]


def _count(choices: dict[str, tuple[str, ...]]) -> int:
    total = 1
    for values in choices.values():
        total *= len(values)
    return total
