"""`harness devices` (list, setup, fetch): the inventory's devices, installing the harness
there, and bringing back a run's rows."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge_rnn_harness.cli.options import (
    EXIT_FAILED_CASES,
    EXIT_OK,
    check_writable,
    request_from,
    user_path,
)
from edge_rnn_harness.cli.remote_options import device_name_arg, inventory_of, rows_to_keep
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.table import table_console
from edge_rnn_harness.fleet.farm import Farm, FarmError, coordinator_address
from edge_rnn_harness.fleet.inventory import (
    DEFAULT_INVENTORY,
    Device,
    InventoryError,
    load_defaults,
)


def add_parser(commands: Any) -> None:
    """`harness devices [list | setup NAME | fetch NAME --into CSV]`."""
    devices = commands.add_parser(
        "devices", help="list the inventory's devices, set one up, fetch a run's rows",
        description="The devices of the inventory (a TOML file: [devices.NAME] with host = "
        "\"user@host[:port]\", python, workdir, tags; see README). Without an action: "
        "list each with reachability, its harness and runtime versions, or why it cannot "
        "be used (exit 1 if one cannot).")
    devices.add_argument("--inventory", type=user_path, default=DEFAULT_INVENTORY,
                         metavar="TOML", help="the device inventory (default ./devices.toml)")
    devices.add_argument("--labgrid", action="store_true",
                         help="list the places of a labgrid board farm instead: free or held "
                              "(by whom), tags, address, and for the free ones whether this "
                              "harness reaches them over SSH (keys and known_hosts from the "
                              "inventory's [defaults])")
    devices.add_argument("--coordinator", default=None, metavar="HOST[:PORT]",
                         help="with --labgrid: the labgrid coordinator (default: "
                              "$LG_COORDINATOR)")
    actions = devices.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="the default: each device's status and versions")
    setup = actions.add_parser(
        "setup", help="install this harness version (device extra) on a device",
        description="Create a virtualenv on the device where the inventory's python points "
        "(<folder>/bin/python), copy this harness's wheel there (built from this checkout, "
        "or --wheel) and install it with the device extra; the device's package index "
        "supplies only the dependencies, so both sides run the same harness.")
    setup.add_argument("name", type=device_name_arg, metavar="NAME")
    setup.add_argument("--wheel", type=user_path, default=None, metavar="FILE",
                       help="the harness wheel to install (default: build one from this "
                            "checkout with pip wheel)")
    fetch = actions.add_parser(
        "fetch", help="bring back a device run's rows (after a lost connection)",
        description="Copy the rows a device measured in a run (default: its latest) and "
        "merge them into a results CSV: a row of the same case and device is replaced, "
        "other rows are kept, the pyperf JSON beside it is merged too.")
    fetch.add_argument("name", type=device_name_arg, metavar="NAME")
    fetch.add_argument("--into", type=user_path, required=True, metavar="RESULTS.csv",
                       help="the results CSV to merge into (created if missing)")
    fetch.add_argument("--run", type=device_name_arg, default=None, metavar="RUN_ID",
                       help="the run id (the run folder's name on the device; default the "
                            "latest)")
    for action in (listing, setup, fetch):  # also accepted after the action
        action.add_argument("--inventory", type=user_path, default=argparse.SUPPRESS,
                            metavar="TOML", help="the device inventory (default "
                                                 "./devices.toml)")
    devices.set_defaults(handler=cmd_devices)


@dataclass(frozen=True)
class DevicesRequest:
    """`harness devices`'s options, typed (the action's own where given)."""
    inventory: Path = DEFAULT_INVENTORY
    labgrid: bool = False
    coordinator: str | None = None
    action: str | None = None
    name: str | None = None
    wheel: Path | None = None
    into: Path | None = None
    run: str | None = None


def cmd_devices(args: argparse.Namespace) -> int:
    """`harness devices`: its typed request, run."""
    return devices_command(request_from(DevicesRequest, args))


def devices_command(request: DevicesRequest) -> int:
    """`harness devices`: list, setup or fetch."""
    action = request.action or "list"
    if request.labgrid:
        if action != "list":
            raise UsageError(f"harness devices {action}: --labgrid lists a farm's places; "
                             f"{action} works on inventory devices")
        return _places_list(request.coordinator, request.inventory)
    inventory = inventory_of(request, "devices")
    if action == "list":
        return _devices_list(list(inventory.values()))
    if request.name not in inventory:
        raise UsageError(f"harness devices {action}: no device {request.name!r} in "
                         f"{request.inventory} (devices: {', '.join(inventory)})")
    device = inventory[request.name]
    if action == "setup":
        return _devices_setup(device, request.wheel)
    return _devices_fetch(device, request.run, request.into)


def _devices_list(devices: list[Device]) -> int:
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


def _places_list(coordinator: str | None, inventory: Path) -> int:
    """`harness devices --labgrid`: the farm's places; exit 1 when a free place cannot be
    used (no NetworkService, unreachable, no harness)."""
    from edge_rnn_harness.fleet.admin import device_statuses

    try:
        with Farm(coordinator_address(coordinator)) as farm:
            places, me = farm.places(), farm.me
        defaults = load_defaults(inventory)
        free = {place.name: place.device(defaults, inventory) for place in places
                if place.address and place.held_by in (None, me)}
    except (FarmError, InventoryError) as error:
        raise UsageError(f"harness devices: {error}") from None
    statuses = {status.device.name: status for status in device_statuses(list(free.values()))}
    table = Table(title=f"labgrid places ({coordinator_address(coordinator)})",
                  header_style="bold")
    for header in ("place", "address", "tags", "held by", "status", "harness"):
        table.add_column(header)
    unusable = 0
    for place in places:
        status = statuses.get(place.name)
        if place.address is None:
            text, unusable = "[red]no NetworkService resource[/]", unusable + 1
        elif status is None:
            text = "[yellow]held: not checked[/]"
        elif status.problem:
            text, unusable = f"[red]{_escape(status.problem)}[/]", unusable + 1
        else:
            text = "[green]ok[/]"
        address = free[place.name].address if place.name in free else (place.address or "-")
        table.add_row(place.name, address, _escape(place.tag_text or "-"),
                      _escape(place.held_by or "-"), text,
                      str((status.facts or {}).get("harness", "-")) if status else "-")
    table_console().print(table)
    return EXIT_FAILED_CASES if unusable else EXIT_OK


def _escape(text: str) -> str:
    return escape(text)


def _devices_setup(device: Device, wheel: Path | None) -> int:
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
    from edge_rnn_harness.fleet.admin import fetch_device
    from edge_rnn_harness.fleet.remote import FleetResults, case_key
    from edge_rnn_harness.fleet.ssh import LINK_ERRORS, HostKeyRefused, Unreachable

    check_writable(into, "devices fetch")
    resumed = rows_to_keep(into if into.exists() else None, set())
    kept, benchmarks = resumed.kept, resumed.benchmarks
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
