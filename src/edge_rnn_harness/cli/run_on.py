"""`harness run --bundle B --on DEVICES`: a fleet run over SSH, one plan per device,
devices in parallel, rows merged into one results file."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from edge_rnn_harness.bundle.reader import Bundle, BundleError
from edge_rnn_harness.cli.options import (
    EXIT_FAILED_CASES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    name_list,
    resolve_names,
    shapes_of,
)
from edge_rnn_harness.cli.remote_options import Resumed, inventory_of, rows_to_keep
from edge_rnn_harness.cli.run_request import RunRequest
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import build_plan
from edge_rnn_harness.core.progress import FleetProgress
from edge_rnn_harness.core.results import OutputBusy, read_results
from edge_rnn_harness.core.status import failed_run
from edge_rnn_harness.core.table import results_table, table_console
from edge_rnn_harness.fleet.farm import (
    Farm,
    FarmError,
    FarmSelection,
    coordinator_address,
    parse_farm_spec,
)
from edge_rnn_harness.fleet.inventory import (
    Device,
    InventoryError,
    load_defaults,
    select_devices,
)


def cmd_run_on(request: RunRequest, backends: list[str], variants: list[str],
               out: Path) -> int:
    """`harness run --bundle B --on DEVICES`: plan per device, run them in parallel over
    SSH, merge; exit 0 when no row is a `failed_run`, 1 when one is, 2 for a
    host key not verified (nothing run), 130 on Ctrl-C."""
    if request.bundle is None:
        raise UsageError("harness run: --on needs --bundle DIR (what travels to a device is "
                         "a bundle: write one with 'harness export')")
    if request.tune_file is not None:
        raise UsageError("harness run: --tune-file is for runs on this machine (a tune file "
                         "is measured where it is used); on devices give --tune and --threads")
    for flag in ("device_name", "cases", "progress_file"):
        if getattr(request, flag) is not None:
            raise UsageError(f"harness run: --{flag.replace('_', '-')} is set on each device "
                             f"by --on; do not give it with --on")
    try:
        selection = parse_farm_spec(request.on or "")
    except FarmError as error:
        raise UsageError(f"harness run: {error}") from None
    devices = _selected(request) if selection is None else []  # the inventory first
    try:
        bundle = Bundle.load(request.bundle)
    except BundleError as error:
        raise UsageError(f"harness run: {error}") from None
    if selection is None:
        return _run_on_devices(request, bundle, backends, variants, out, devices)
    try:
        with Farm(coordinator_address(request.coordinator)) as farm:
            devices, spec_extra = _acquired(farm, selection, request)
            return _run_on_devices(request, bundle, backends, variants, out, devices,
                                   **spec_extra)
    except (FarmError, InventoryError) as error:
        raise UsageError(f"harness run: {error}") from None


def _acquired(farm: Farm, selection: FarmSelection, request: RunRequest
              ) -> tuple[list[Device], dict[str, dict[str, str]]]:
    """Acquire the selected places (waiting up to --wait, in all, for those someone else
    holds); the devices they are, and the FleetSpec fields that say which are held by
    someone else and what tags each place's rows carry."""
    console = Console(stderr=True, soft_wrap=True)
    places = farm.select(selection)
    started = time.monotonic()
    held = farm.acquire_all([place.name for place in places], request.wait)
    console.print(escape(
        f"labgrid {farm.address}: acquired {', '.join(farm.acquired) or 'no place'} as "
        f"{farm.me} in {time.monotonic() - started:.2f} s"
        + "".join(f"; {reason}" for reason in held.values())))
    defaults = load_defaults(request.inventory)
    identity = str(request.identity) if request.identity else None
    devices = [place.device(defaults, request.inventory, identity) for place in places]
    return devices, {"unavailable": held,
                     "device_tags": {place.name: place.tag_text for place in places}}


def _run_on_devices(request: RunRequest, bundle: Bundle, backends: list[str],
                    variants: list[str], out: Path, devices: list[Device],
                    unavailable: dict[str, str] | None = None,
                    device_tags: dict[str, str] | None = None) -> int:
    """Plan each device's cases (those --resume does not keep), then run the fleet."""
    from edge_rnn_harness.fleet.remote import DeviceJob, FleetSpec, case_key, new_run_id

    models = resolve_names(list(request.models or ["all"]), list(bundle.models),
                           "model in the bundle")
    resumed = rows_to_keep(request.resume, {d.name for d in devices}, bundle)
    ok_keys = {case_key(row) for row in resumed.kept if row["status"] == "ok"}
    jobs, subset = [], {}
    for device in devices:
        plan = build_plan([(name, bundle.models[name].seq_len) for name in models], variants,
                          backends, request.thread_counts, request.cpu_freq, device.name,
                          shapes_of(request))
        todo = [case for case in plan if case_key(case.to_dict()) not in ok_keys]
        subset[device.name] = len(todo) != len(plan)
        if todo:
            jobs.append(DeviceJob(device, todo))
    stall_s = request.case_timeout + request.cooldown + (600 if request.max_start_temp else 0)
    from edge_rnn_harness.fleet.remote import STALL_MARGIN_S

    sent = dataclasses.replace(request, backends=tuple(backends), variants=tuple(variants),
                               threads=tuple(request.thread_counts))
    spec = FleetSpec(bundle.root, sent.for_device(), new_run_id(), stall_s + STALL_MARGIN_S,
                     unavailable or {}, device_tags or {})
    return _run_fleet(jobs, spec, out, resumed, subset)


def _selected(request: RunRequest) -> list[Device]:
    inventory = inventory_of(request, "run")
    try:
        return select_devices(inventory, name_list(request.on), request.inventory)
    except (InventoryError, argparse.ArgumentTypeError) as error:
        raise UsageError(f"harness run: --on: {error}") from None


def _run_fleet(jobs: list, spec: Any, out: Path, resumed: Resumed,
               subset: Mapping[str, bool]) -> int:
    """Run the jobs with a progress line per device; print the merged table."""
    from edge_rnn_harness.fleet.remote import FleetResults, run_fleet
    from edge_rnn_harness.fleet.ssh import HostKeyRefused

    console = Console(stderr=True, soft_wrap=True)
    opened: list[FleetResults] = []

    def start(stack: ExitStack) -> tuple[FleetResults, Any]:
        total = sum(len(job.cases) for job in jobs)
        console.print(escape(f"harness run --on: {len(jobs)} device(s), {total} case(s) to "
                             f"measure, run {spec.run_id} -> {out}"))
        try:
            sink = FleetResults(out, resumed.kept, resumed.benchmarks, spec.device_tags,
                                resumed.pending)
        except OutputBusy as error:
            raise UsageError(f"harness run: {error}") from None
        opened.append(sink)
        progress = stack.enter_context(FleetProgress(console, jobs))
        sink.on_row = progress.row
        return sink, progress.notify

    try:
        with ExitStack() as stack:
            asyncio.run(run_fleet(jobs, spec, lambda: start(stack), dict(subset)))
    except HostKeyRefused as error:
        raise UsageError(f"harness run: {error}; nothing was run") from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: " + escape(
            f"rows fetched so far are kept in {out}; the devices' runs were stopped"))
        return EXIT_INTERRUPTED
    finally:
        for sink in opened:
            sink.close()
    table_console().print(results_table(read_results(out), title=str(out)))
    failed = [row for row in opened[0].rows if failed_run(row)]
    console.print(escape(f"wrote {out}" + (f" and {opened[0].json_path}"
                                           if opened[0].json_path.exists() else "")))
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) failed, invalid or skipped by a fault[/]")
        return EXIT_FAILED_CASES
    return EXIT_OK
