"""`harness run --on DEVICES` (a fleet run over SSH), the device-side options such a run
passes (`--device-name`, `--progress-file`, `--cases`), and `harness devices` (list, setup,
fetch)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_rnn_harness.cli.main import EXIT_FAILED_CASES, EXIT_INTERRUPTED, EXIT_OK, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.fleet.inventory import (
    DEFAULT_INVENTORY,
    Device,
    InventoryError,
    load_inventory,
    select_devices,
)

#: `harness run` options a fleet run forwards to every device: (attribute, flag)
_FORWARDED = (("atol", "--atol"), ("rtol", "--rtol"), ("profile", "--profile"),
              ("case_timeout", "--case-timeout"), ("power", "--power"),
              ("energy_seconds", "--energy-seconds"), ("idle_seconds", "--idle-seconds"),
              ("cooldown", "--cooldown"), ("max_start_temp", "--max-start-temp"),
              ("governor", "--governor"))
#: largest --cases file read
MAX_CASES_BYTES = 16 << 20


def _device_name(text: str) -> str:
    """A device name or run id: a plain word (letters, digits, '.', '_', '-')."""
    from edge_rnn_harness.fleet.inventory import NAME_PATTERN

    if not NAME_PATTERN.fullmatch(text) or text.strip(".") == "":
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain name (letters, digits, "
                                         f"'.', '_', '-')")
    return text


def add_remote_args(run: argparse.ArgumentParser) -> None:
    """--on, --inventory, --resume (the workstation) and the options a fleet run gives the
    device's harness (--device-name, --progress-file, --cases)."""
    group = run.add_argument_group("remote devices over SSH (see 'harness devices')")
    group.add_argument("--on", default=None, metavar="NAME[,NAME..]|all",
                       help="with --bundle: run on these inventory devices (or all, or "
                            "tag:TAG) over SSH instead of here: the bundle is copied (files "
                            "already there with the same sha256 are not sent), each "
                            "device's harness measures its cases, devices in parallel, and "
                            "the rows merge into one --out")
    group.add_argument("--inventory", type=user_path, default=DEFAULT_INVENTORY,
                       metavar="TOML", help="the device inventory (default ./devices.toml)")
    group.add_argument("--resume", type=user_path, default=None, metavar="RESULTS.csv",
                       help="with --on: keep this file's ok rows and measure only the cases "
                            "not yet ok; the merged rows replace the file (or go to --out)")
    group.add_argument("--device-name", type=_device_name, default=None, metavar="NAME",
                       help="with --bundle: the inventory name this run's rows carry "
                            "(device_name column); set by --on on each device")
    group.add_argument("--progress-file", type=user_path, default=None, metavar="FILE",
                       help="also append one JSON line per case stage to FILE (what --on "
                            "follows on a device)")
    group.add_argument("--cases", type=user_path, default=None, metavar="JSON",
                       help="with --bundle: measure only these cases of the plan (a JSON list "
                            "of case keys, as --resume writes for a device)")


def select_cases(cases: list, path: Path) -> list:
    """The cases of the plan the --cases file names (in plan order); UsageError for a file
    that is not a JSON list of case keys or names a case outside the plan."""
    from edge_rnn_harness.core.plan import case_key

    try:
        if path.stat().st_size > MAX_CASES_BYTES:
            raise UsageError(f"harness run: --cases {path} is larger than "
                             f"{MAX_CASES_BYTES >> 20} MiB")
        wanted = json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"harness run: cannot read --cases {path} "
                         f"({error.strerror or error})") from None
    except ValueError as error:
        raise UsageError(f"harness run: --cases {path} is not JSON ({error})") from None
    if not isinstance(wanted, list) or not all(isinstance(item, dict) for item in wanted):
        raise UsageError(f"harness run: --cases {path} is not a JSON list of cases")
    keys = {case_key(item) for item in wanted}
    chosen = [case for case in cases if case_key(case.to_dict()) in keys]
    if len(chosen) != len(keys):
        raise UsageError(f"harness run: --cases {path} names {len(keys) - len(chosen)} "
                         f"case(s) outside this run's plan")
    return chosen


def _inventory(args: argparse.Namespace, command: str) -> dict[str, Device]:
    try:
        return load_inventory(args.inventory)
    except InventoryError as error:
        raise UsageError(f"harness {command}: {error}") from None


def _forwarded_args(args: argparse.Namespace, backends: list[str], variants: list[str]
                    ) -> list[str]:
    """The device-side `harness run` options for this fleet run (values as given here)."""
    forwarded = ["--backends", ",".join(backends), "--variants", ",".join(variants),
                 "--threads", ",".join(map(str, args.threads)),
                 "--batch", ",".join(map(str, args.batch))]
    if args.scenario:
        forwarded += ["--scenario", ",".join(args.scenario)]
    if args.seq_len:
        forwarded += ["--seq-len", ",".join(map(str, args.seq_len))]
    if args.models:
        forwarded += ["--model", ",".join(args.models)]
    for attribute, flag in _FORWARDED:
        value = getattr(args, attribute)
        if value is not None:
            forwarded += [flag, str(value)]
    for item in args.tune:
        forwarded += ["--tune", item]
    if args.cpu_freq:
        forwarded += ["--cpu-freq", ",".join(map(str, args.cpu_freq))]
    if args.no_accuracy:
        forwarded.append("--no-accuracy")
    return forwarded


def _kept_rows(resume: Path | None, device_names: set[str]) -> tuple[list[dict], list]:
    """--resume: the file's rows to keep (ok rows, and every row of devices not in this
    run) and their benchmarks. With no device names: every row."""
    if resume is None:
        return [], []
    from edge_rnn_harness.analysis.compare import resolve_pair
    from edge_rnn_harness.core.results import load_benchmarks, read_results, row_dicts

    try:
        csv_path, json_path = resolve_pair(resume)
        records = row_dicts(read_results(csv_path))
        benchmarks = load_benchmarks(json_path)
    except ValueError as error:
        raise UsageError(f"harness: {error}") from None
    kept = [row for row in records
            if row["status"] == "ok" or row["device_name"] not in device_names]
    return kept, benchmarks


def cmd_run_on(args: argparse.Namespace, backends: list[str], variants: list[str],
               out: Path) -> int:
    """`harness run --bundle B --on DEVICES`: plan per device, run them in parallel over
    SSH, merge; exit 0 when every row is ok/skipped/unsupported, 1 when one failed, 2 for a
    host key not verified (nothing run), 130 on Ctrl-C."""
    from edge_rnn_harness.bundle.reader import Bundle, BundleError
    from edge_rnn_harness.cli.main import _resolve_names, shapes_of
    from edge_rnn_harness.core.plan import build_plan
    from edge_rnn_harness.fleet.remote import DeviceJob, FleetSpec, case_key, new_run_id

    if args.bundle is None:
        raise UsageError("harness run: --on needs --bundle DIR (what travels to a device is "
                         "a bundle: write one with 'harness export')")
    if args.tune_file is not None:
        raise UsageError("harness run: --tune-file is for runs on this machine (a tune file "
                         "is measured where it is used); on devices give --tune and --threads")
    for flag in ("device_name", "cases", "progress_file"):
        if getattr(args, flag) is not None:
            raise UsageError(f"harness run: --{flag.replace('_', '-')} is set on each device "
                             f"by --on; do not give it with --on")
    devices = _selected(args)
    try:
        bundle = Bundle.load(args.bundle)
    except BundleError as error:
        raise UsageError(f"harness run: {error}") from None
    models = _resolve_names(args.models or ["all"], list(bundle.models), "model in the bundle")
    kept_rows, kept_benchmarks = _kept_rows(args.resume, {d.name for d in devices})
    ok_keys = {case_key(row) for row in kept_rows if row["status"] == "ok"}
    jobs, subset = [], {}
    for device in devices:
        plan = build_plan([(name, bundle.models[name].seq_len) for name in models], variants,
                          backends, args.threads, args.cpu_freq, device.name, shapes_of(args))
        todo = [case for case in plan if case_key(case.to_dict()) not in ok_keys]
        subset[device.name] = len(todo) != len(plan)
        if todo:
            jobs.append(DeviceJob(device, todo))
    stall_s = args.case_timeout + args.cooldown + (600 if args.max_start_temp else 0)
    from edge_rnn_harness.fleet.remote import STALL_MARGIN_S

    spec = FleetSpec(args.bundle, _forwarded_args(args, backends, variants), new_run_id(),
                     stall_s + STALL_MARGIN_S)
    return _run_fleet(jobs, spec, out, kept_rows, kept_benchmarks, subset)


def _selected(args: argparse.Namespace) -> list[Device]:
    from edge_rnn_harness.cli.main import _names

    inventory = _inventory(args, "run")
    try:
        return select_devices(inventory, _names(args.on), args.inventory)
    except (InventoryError, argparse.ArgumentTypeError) as error:
        raise UsageError(f"harness run: --on: {error}") from None


def _run_fleet(jobs: list, spec: Any, out: Path, kept_rows: list[dict], kept_benchmarks: list,
               subset: Mapping[str, bool]) -> int:
    """Run the jobs with a progress line per device; print the merged table."""
    from contextlib import ExitStack

    from rich.console import Console
    from rich.markup import escape

    from edge_rnn_harness.core.progress import FleetProgress
    from edge_rnn_harness.core.results import OutputBusy, read_results
    from edge_rnn_harness.core.table import results_table, table_console
    from edge_rnn_harness.fleet.remote import FleetResults, run_fleet
    from edge_rnn_harness.fleet.ssh import HostKeyRefused

    console = Console(stderr=True, soft_wrap=True)
    opened: list[FleetResults] = []

    def start(stack: ExitStack) -> tuple[FleetResults, Any]:
        total = sum(len(job.cases) for job in jobs)
        console.print(escape(f"harness run --on: {len(jobs)} device(s), {total} case(s) to "
                             f"measure, run {spec.run_id} -> {out}"))
        try:
            sink = FleetResults(out, kept_rows, kept_benchmarks)
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
    failed = [row for row in opened[0].rows if row["status"] in ("failed", "invalid")]
    console.print(escape(f"wrote {out}" + (f" and {opened[0].json_path}"
                                           if opened[0].json_path.exists() else "")))
    if failed:
        console.print(f"[bold red]{len(failed)} case(s) failed or invalid[/]")
        return EXIT_FAILED_CASES
    return EXIT_OK


def add_devices_parser(commands: Any) -> None:
    """`harness devices [list | setup NAME | fetch NAME --into CSV]`."""
    devices = commands.add_parser(
        "devices", help="list the inventory's devices, set one up, fetch a run's rows",
        description="The devices of the inventory (a TOML file: [devices.NAME] with host = "
        "\"user@host[:port]\", python, workdir, tags; see README). Without an action: "
        "list each with reachability, its harness and runtime versions, or why it cannot "
        "be used (exit 1 if one cannot).")
    devices.add_argument("--inventory", type=user_path, default=DEFAULT_INVENTORY,
                         metavar="TOML", help="the device inventory (default ./devices.toml)")
    actions = devices.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="the default: each device's status and versions")
    setup = actions.add_parser(
        "setup", help="install this harness version (device extra) on a device",
        description="Create a virtualenv on the device where the inventory's python points "
        "(<folder>/bin/python), copy this harness's wheel there (built from this checkout, "
        "or --wheel) and install it with the device extra; the device's package index "
        "supplies only the dependencies, so both sides run the same harness.")
    setup.add_argument("name", type=_device_name, metavar="NAME")
    setup.add_argument("--wheel", type=user_path, default=None, metavar="FILE",
                       help="the harness wheel to install (default: build one from this "
                            "checkout with pip wheel)")
    fetch = actions.add_parser(
        "fetch", help="bring back a device run's rows (after a lost connection)",
        description="Copy the rows a device measured in a run (default: its latest) and "
        "merge them into a results CSV: a row of the same case and device is replaced, "
        "other rows are kept, the pyperf JSON beside it is merged too.")
    fetch.add_argument("name", type=_device_name, metavar="NAME")
    fetch.add_argument("--into", type=user_path, required=True, metavar="RESULTS.csv",
                       help="the results CSV to merge into (created if missing)")
    fetch.add_argument("--run", type=_device_name, default=None, metavar="RUN_ID",
                       help="the run id (the run folder's name on the device; default the "
                            "latest)")
    for action in (listing, setup, fetch):  # also accepted after the action
        action.add_argument("--inventory", type=user_path, default=argparse.SUPPRESS,
                            metavar="TOML", help="the device inventory (default "
                                                 "./devices.toml)")


def cmd_devices(args: argparse.Namespace) -> int:
    """`harness devices`: list, setup or fetch."""
    action = args.action or "list"
    inventory = _inventory(args, "devices")
    if action == "list":
        return _devices_list(list(inventory.values()))
    if args.name not in inventory:
        raise UsageError(f"harness devices {action}: no device {args.name!r} in "
                         f"{args.inventory} (devices: {', '.join(inventory)})")
    device = inventory[args.name]
    if action == "setup":
        return _devices_setup(device, args.wheel)
    return _devices_fetch(device, args.run, args.into)


def _devices_list(devices: list[Device]) -> int:
    from rich.table import Table

    from edge_rnn_harness.core.table import table_console
    from edge_rnn_harness.fleet.admin import device_statuses

    table = Table(title="devices", header_style="bold")
    for header in ("name", "address", "tags", "status", "harness", "python", "runtimes"):
        table.add_column(header)
    statuses = device_statuses(devices)
    for status in statuses:
        facts = status.facts or {}
        runtimes = ", ".join(f"{name} {info['version']}"
                             for name, info in facts.get("backends", {}).items()
                             if isinstance(info, dict) and info.get("version"))
        table.add_row(status.device.name, status.device.address, ",".join(status.device.tags),
                      "[green]ok[/]" if status.problem is None else
                      f"[red]{_escape(status.problem)}[/]",
                      str(facts.get("harness", "-")), str(facts.get("python", "-")),
                      _escape(runtimes or "-"))
    table_console().print(table)
    return EXIT_FAILED_CASES if any(s.problem for s in statuses) else EXIT_OK


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _devices_setup(device: Device, wheel: Path | None) -> int:
    from rich.console import Console

    from edge_rnn_harness.fleet.admin import write_wheel_and_setup
    from edge_rnn_harness.fleet.ssh import HostKeyRefused, Unreachable

    console = Console(stderr=True, soft_wrap=True)
    try:
        facts = write_wheel_and_setup(device, wheel,
                                      lambda text: console.print(_escape(f"{device.name}: "
                                                                         f"{text}")))
    except (ValueError, HostKeyRefused, Unreachable, OSError) as error:
        raise UsageError(f"harness devices setup: {' '.join(str(error).split())}") from None
    runtimes = ", ".join(f"{name} {info['version'] or '(' + str(info['why_not']) + ')'}"
                         for name, info in facts["backends"].items())
    console.print(_escape(f"{device.name}: harness {facts['harness']} on Python "
                          f"{facts['python']} ({facts['machine']}); {runtimes}"))
    return EXIT_OK


def _devices_fetch(device: Device, run_id: str | None, into: Path) -> int:
    import asyncio

    from rich.console import Console

    from edge_rnn_harness.cli.main import _check_writable
    from edge_rnn_harness.fleet.admin import fetch_device
    from edge_rnn_harness.fleet.remote import FleetResults, case_key
    from edge_rnn_harness.fleet.ssh import LINK_ERRORS, HostKeyRefused, Unreachable

    _check_writable(into, "devices fetch")
    kept, benchmarks = ([], []) if not into.exists() else _kept_rows(into, set())
    try:
        run_id, rows, fetched_benchmarks, running = asyncio.run(fetch_device(device, run_id))
    except (ValueError, HostKeyRefused, Unreachable, *LINK_ERRORS) as error:
        raise UsageError(f"harness devices fetch: {' '.join(str(error).split())}") from None
    fresh = {case_key(row) for row in rows}
    sink = FleetResults(into, [row for row in kept if case_key(row) not in fresh], benchmarks)
    try:
        sink.add(rows, fetched_benchmarks)
    finally:
        sink.close()
    console = Console(stderr=True, soft_wrap=True)
    console.print(_escape(f"{device.name}: run {run_id}: {len(rows)} row(s) merged into "
                          f"{into}" + ("; the run is still going: fetch again when it ends"
                                       if running else "")))
    return EXIT_OK
