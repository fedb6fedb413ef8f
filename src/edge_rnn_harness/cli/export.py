"""`harness export`: write (or update) a bundle for a device."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from edge_rnn_harness.backends.registry import backend_names
from edge_rnn_harness.bundle.export import Exporter
from edge_rnn_harness.cli.inputs import (
    accuracy_dataset,
    calibration_window_count,
    check_form_sizes,
    model_sources,
)
from edge_rnn_harness.cli.options import (
    EXIT_FAILED_CASES,
    EXIT_OK,
    add_model_args,
    add_shape_args,
    add_source_args,
    add_timeout_arg,
    add_variants_arg,
    name_list,
    request_from,
    resolve_names,
    shapes_of,
    user_path,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import artifact_form, build_plan
from edge_rnn_harness.core.variants import VARIANT_NAMES
from edge_rnn_harness.measure.runner import DEFAULT_CASE_TIMEOUT_S
from edge_rnn_harness.models.registry import DEFAULT_MODEL, model_names


@dataclass(frozen=True)
class ExportRequest:
    """`harness export`'s options, typed."""
    models: list[str] | None = None
    backends: list[str] = field(default_factory=lambda: ["all"])
    variants: list[str] = field(default_factory=lambda: ["fp32"])
    scenario: list[str] | None = None
    seq_len: list[int] | None = None
    batch: list[int] = field(default_factory=lambda: [1])
    out: Path | None = None
    case_timeout: float = DEFAULT_CASE_TIMEOUT_S
    inputs: Path | None = None
    shape: list[str] = field(default_factory=list)
    dataset: Path | None = None
    column: str | None = None
    time_column: str | None = None
    weights_dir: Path | None = None
    no_accuracy: bool = False
    calibration_windows: int | None = None


def cmd_export(args: argparse.Namespace) -> int:
    """`harness export`: its typed request, run."""
    return export_command(request_from(ExportRequest, args))


def export_command(request: ExportRequest) -> int:
    """`harness export`: write (or update) a bundle for a device."""
    backends = resolve_names(request.backends, backend_names(), "backend", "export")
    variants = resolve_names(request.variants, list(VARIANT_NAMES), "variant", "export")
    sources = model_sources(request, "export")
    check_form_sizes(sources, shapes_of(request), "export")
    entries = [entry for entry in (s.entry() for s in sources.values()) if entry is not None]
    dataset = None if request.no_accuracy or not entries else \
        accuracy_dataset(request, entries, "export")
    console = Console(stderr=True, soft_wrap=True)
    failures: list[str] = []

    def log(label: str, output: str) -> None:
        failures.append(f"==== {label}\n{output}")

    try:
        exporter = Exporter(request.out, sources, request.case_timeout, dataset,
                            lambda text: console.print(f"[yellow]note[/]: {escape(text)}"), log,
                            calibration_window_count(request))
    except OSError as error:
        raise UsageError(f"harness export: cannot write --out {request.out} "
                         f"({error.strerror or error})") from None
    if "fp32" not in variants:  # every variant is compared with its backend's fp32
        console.print("[yellow]note[/]: adding fp32: each variant is compared with the same "
                      "backend's fp32 artifact on the device")
        variants = ["fp32", *variants]

    planned = build_plan([(name, source.seq_len()) for name, source in sources.items()],
                         variants, backends, [1], shapes=shapes_of(request))
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
    console.print(escape(f"wrote bundle {request.out} (run it with: harness run --bundle "
                         f"{request.out})"))
    return EXIT_FAILED_CASES if failed else EXIT_OK


def add_parser(commands: Any) -> None:
    """The `harness export` subcommand."""
    export = commands.add_parser(
        "export", help="write a bundle: every model x backend x variant, for a device",
        description="Export models to each backend into a self-describing bundle folder "
        "(manifest.json with sha256 of every file, reference windows and outputs, test-split "
        "and calibration windows) that 'harness run --bundle DIR' runs on a machine with only "
        "the runtimes installed. Each artifact is exported in its own process; an existing "
        "bundle is updated, reusing artifacts that are current.")
    add_model_args(export, DEFAULT_MODEL, model_names(), "")
    export.add_argument("--backends", type=name_list, default=["all"], metavar="LIST",
                        help=f"comma-separated backends, or 'all' (default). "
                             f"Registered: {', '.join(backend_names())}")
    add_variants_arg(export, VARIANT_NAMES)
    add_shape_args(export)
    export.add_argument("--out", type=user_path, required=True, metavar="DIR",
                        help="the bundle folder (created; an existing bundle is updated)")
    add_timeout_arg(export, DEFAULT_CASE_TIMEOUT_S)
    add_source_args(export, "write no test-split or calibration windows into the bundle "
                             "(a device then measures no rmse/mae)")
    export.set_defaults(handler=cmd_export)
