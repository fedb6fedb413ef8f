"""`harness ab`: measure a baseline and a candidate interleaved, then gate them in one line.

    harness ab --bundle main-bundle --cand-bundle pr-bundle --backends all
    harness ab --bundle b --model lstm --cand-model lstm-x4 --backends onnxruntime
    harness ab --bundle b --variants fp32 --cand-variant int8-dynamic --backends tflite
    harness ab --bundle b --tune onnxruntime.graph_level=all \
               --cand-tune onnxruntime.graph_level=basic --backends onnxruntime
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.analysis.gate import judge
from edge_rnn_harness.backends.registry import backend_names
from edge_rnn_harness.bundle.reader import Bundle, BundleError
from edge_rnn_harness.cli.judging import (
    add_gate_args,
    add_judging_args,
    report_verdict,
    thresholds_dict,
    thresholds_of,
)
from edge_rnn_harness.cli.options import (
    add_measure_args,
    add_timeout_arg,
    add_variants_arg,
    check_writable,
    check_writable_file,
    checked_tuning,
    name_list,
    request_from,
    resolve_names,
    user_path,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import build_plan
from edge_rnn_harness.core.profiles import get_profile
from edge_rnn_harness.core.results import OutputBusy
from edge_rnn_harness.core.variants import VARIANT_NAMES
from edge_rnn_harness.measure.ab import Side, ab_paths, interleaving, rename_of, run_ab
from edge_rnn_harness.measure.runner import DEFAULT_CASE_TIMEOUT_S, RunConfig


def add_parser(commands: Any) -> None:
    """The `harness ab` subcommand."""
    ab = commands.add_parser(
        "ab", help="baseline and candidate measured interleaved, then gated",
        description="Measure a baseline (A) and a candidate (B) in one command, interleaved "
        "so that drift, heat and neighbours fall on both alike, then judge them as "
        "'harness gate' does (exit 0 pass, 1 regression, 2 inconclusive or cannot judge). "
        "The sides differ by bundle (--cand-bundle), model (--cand-model), variant "
        "(--cand-variant), tuning (--cand-tune) or Python environment (--cand-python). "
        "Both sides in one Python: each "
        "worker process prepares both and alternates single calls (A B B A ...); two Pythons: "
        "whole worker processes alternate. Writes OUT-base.csv and OUT-cand.csv with their "
        "pyperf JSON; the interleaving column says which was used.")
    ab.add_argument("--bundle", type=user_path, required=True, metavar="DIR",
                    help="the baseline's bundle (harness export)")
    ab.add_argument("--cand-bundle", type=user_path, default=None, metavar="DIR",
                    help="the candidate's bundle (default: the same bundle)")
    ab.add_argument("--model", default=None, metavar="NAME",
                    help="the baseline model in its bundle (default: the bundle's only model)")
    ab.add_argument("--cand-model", default=None, metavar="NAME",
                    help="the candidate model in its bundle (default: the baseline's)")
    ab.add_argument("--cand-variant", default=None, metavar="NAME",
                    help="the candidate's precision variant, e.g. int8-dynamic against a "
                         "baseline --variants fp32 (one baseline variant then)")
    ab.add_argument("--tune", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                    help="a backend option for the baseline (repeatable)")
    ab.add_argument("--cand-tune", action="append", default=None, metavar="BACKEND.KEY=VALUE",
                    help="a backend option for the candidate (repeatable; default: the "
                         "baseline's)")
    ab.add_argument("--cand-python", default=None, metavar="PATH",
                    help="the candidate's Python interpreter (another environment, e.g. "
                         "another runtime version): whole processes alternate")
    ab.add_argument("--backends", type=name_list, default=["all"], metavar="LIST",
                    help="comma-separated backends, or 'all' (default)")
    add_variants_arg(ab, VARIANT_NAMES)
    add_measure_args(ab)
    ab.add_argument("--out", type=user_path, default=None, metavar="CSV",
                    help="results name: writes <stem>-base.csv and <stem>-cand.csv (default "
                         "results/ab-<UTC timestamp>.csv)")
    add_timeout_arg(ab, DEFAULT_CASE_TIMEOUT_S)
    ab.add_argument("--no-accuracy", action="store_true",
                    help="skip rmse/mae on the bundles' test splits")
    ab.add_argument("--counters", choices=("valgrind",), default=None,
                    help="valgrind: also count each side's instructions per inference under "
                         "callgrind (each side by its own Python); the gate then judges "
                         "them (--max-instructions-growth)")
    add_judging_args(ab)
    add_gate_args(ab)
    ab.set_defaults(handler=cmd_ab)


def _side_model(bundle: Any, name: str | None, flag: str) -> str:
    if name is None:
        if len(bundle.models) != 1:
            raise UsageError(f"harness ab: bundle {bundle.root} holds "
                             f"{', '.join(bundle.models)}; choose one with {flag}")
        return next(iter(bundle.models))
    if name not in bundle.models:
        raise UsageError(f"harness ab: {flag} {name!r} is not in bundle {bundle.root} (it "
                         f"holds {', '.join(bundle.models)})")
    return name


#: how long the --cand-python probe may take (an interpreter importing this harness)
PYTHON_PROBE_S = 120.0


def _check_python(python: str) -> None:
    """UsageError (one line) unless `python` is an interpreter that imports this harness
    as a child program does (`-P`): checked before any pair is measured."""
    try:
        done = subprocess.run([python, "-P", "-c", "import edge_rnn_harness"],
                              capture_output=True, text=True, timeout=PYTHON_PROBE_S,
                              check=False)
    except OSError as error:
        raise UsageError(f"harness ab: --cand-python {python}: cannot run it "
                         f"({error.strerror or error})") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"harness ab: --cand-python {python}: no answer in "
                         f"{PYTHON_PROBE_S:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise UsageError(f"harness ab: --cand-python {python} cannot import edge_rnn_harness "
                         f"({last[:200]}); install the harness in that environment")


@dataclass(frozen=True)
class AbRequest:
    """`harness ab`'s options, typed; `thresholds` holds every gated metric's
    limit by column."""
    bundle: Path = Path()
    cand_bundle: Path | None = None
    model: str | None = None
    cand_model: str | None = None
    cand_variant: str | None = None
    tune: list[str] = field(default_factory=list)
    cand_tune: list[str] | None = None
    cand_python: str | None = None
    backends: list[str] = field(default_factory=lambda: ["all"])
    variants: list[str] = field(default_factory=lambda: ["fp32"])
    threads: list[int] | None = None
    profile: str = "default"
    out: Path | None = None
    case_timeout: float = DEFAULT_CASE_TIMEOUT_S
    no_accuracy: bool = False
    counters: str | None = None
    min_effect: float = 0.05
    alpha: float = 0.01
    summary: Path | None = None
    thresholds: dict[str, float | None] = field(default_factory=dict)


def cmd_ab(args: argparse.Namespace) -> int:
    """`harness ab`: its typed request, run."""
    return ab_command(request_from(AbRequest, args, thresholds=thresholds_dict(args)))


def ab_command(request: AbRequest) -> int:
    """`harness ab`: validate, measure interleaved, judge."""
    try:
        profile = get_profile(request.profile)
        bundles = (Bundle.load(request.bundle), Bundle.load(request.cand_bundle or request.bundle))
    except (ValueError, BundleError) as error:
        raise UsageError(f"harness ab: {error}") from None
    models = (_side_model(bundles[0], request.model, "--model"),
              _side_model(bundles[1], request.cand_model or request.model, "--cand-model"))
    backends = resolve_names(request.backends, backend_names(), "backend", "ab")
    variants = resolve_names(request.variants, list(VARIANT_NAMES), "variant", "ab")
    cand_variants = variants
    if request.cand_variant is not None:
        cand_variants = resolve_names([request.cand_variant], list(VARIANT_NAMES), "variant",
                                       "ab")
        if len(variants) != 1:
            raise UsageError("harness ab: --cand-variant needs exactly one baseline variant "
                             "(--variants NAME)")
    tunings = (checked_tuning(request.tune, "ab", "--tune"),
               checked_tuning(request.tune if request.cand_tune is None
                              else request.cand_tune, "ab", "--cand-tune"))
    out = request.out or Path("results") / (dt.datetime.now(dt.UTC).strftime("ab-%Y%m%d-%H%M%S")
                                         + ".csv")
    outs = ab_paths(out)
    for path in outs:
        check_writable(path, "ab")
    if request.counters and shutil.which("valgrind") is None:
        raise UsageError("harness ab: --counters valgrind needs valgrind (apt-get install "
                         "valgrind)")
    configs = [RunConfig(profile=profile, out=path, bundle_root=bundle.root,
                         case_timeout_s=request.case_timeout, tuning=tuning,
                         accuracy=not request.no_accuracy,
                         counters=(request.counters,) if request.counters else ())
               for path, bundle, tuning in zip(outs, bundles, tunings)]
    if request.cand_python:
        _check_python(request.cand_python)
    if request.summary is not None:  # written after the measuring
        check_writable_file(request.summary, "ab", "--summary")
    sides = (Side(configs[0]), Side(configs[1], request.cand_python) if request.cand_python
             else Side(configs[1]))
    plans = [build_plan([(model, bundle.models[model].seq_len)], side_variants, backends,
                        request.threads or [1])
             for model, bundle, side_variants in zip(models, bundles,
                                                     (variants, cand_variants))]
    pairs = list(zip(*plans))
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"harness ab: {len(pairs)} pair(s), profile {profile.name}, interleaving "
                  f"{interleaving(*sides)} -> {outs[0]}, {outs[1]}")
    try:
        run_ab(pairs, sides, profile, outs, lambda index, base, cand: console.print(
            f"[{index + 1}/{len(pairs)}] {base.label}  vs  {cand.label}"))
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: pairs measured so far are kept in {outs[0]} "
                      f"and {outs[1]}")
        return 130
    except OutputBusy as error:
        raise UsageError(f"harness ab: {error}") from None
    try:
        comparison = compare_runs(outs[0], outs[1], request.min_effect, request.alpha,
                                  rename_of(pairs), rename_of(pairs, "variant"))
    except ValueError as error:
        raise UsageError(f"harness ab: {error}") from None
    return report_verdict(judge(comparison, thresholds_of(request), allow_mismatch=True),
                          comparison, request.summary)
