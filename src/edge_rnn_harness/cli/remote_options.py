"""`harness run`'s options for devices over SSH: --on, --inventory, --resume on the
workstation (and --coordinator, --wait, --identity for board farm places), and what a fleet
run gives each device's harness (--device-name, --progress-file, --cases)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from edge_rnn_harness.analysis.compare import resolve_pair
from edge_rnn_harness.bundle.reader import Bundle
from edge_rnn_harness.cli.options import float_arg, user_path
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.plan import Case, case_key
from edge_rnn_harness.core.results import load_benchmarks, read_results, row_dicts
from edge_rnn_harness.fleet.farm import MAX_WAIT_S
from edge_rnn_harness.fleet.inventory import (
    DEFAULT_INVENTORY,
    NAME_PATTERN,
    Device,
    InventoryError,
    load_inventory,
)

#: largest --cases file read
MAX_CASES_BYTES = 16 << 20


def wait_seconds(text: str) -> float:
    """--wait: seconds from 0 to MAX_WAIT_S."""
    return float_arg(text, "a number of seconds", lambda v: 0 <= v <= MAX_WAIT_S,
                     f"must be a number of seconds from 0 to {MAX_WAIT_S:g}")


def device_name_arg(text: str) -> str:
    """A device name or run id: a plain word (letters, digits, '.', '_', '-')."""
    if not NAME_PATTERN.fullmatch(text) or text.strip(".") == "":
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain name (letters, digits, "
                                         f"'.', '_', '-')")
    return text


def add_remote_args(run: argparse.ArgumentParser) -> None:
    """--on, --inventory, --resume (the workstation) and the options a fleet run gives the
    device's harness (--device-name, --progress-file, --cases)."""
    group = run.add_argument_group("remote devices over SSH (see 'harness devices')")
    group.add_argument("--on", default=None, metavar="NAME[,NAME..]|all|labgrid:...",
                       help="with --bundle: run on these inventory devices (or all, or "
                            "tag:TAG), or on board farm places reserved through labgrid "
                            "(labgrid:PLACE[,PLACE..] or labgrid:KEY=VALUE[,..]; every place "
                            "acquired is released at the end), over SSH instead of here: the "
                            "bundle is copied (files "
                            "already there with the same sha256 are not sent), each "
                            "device's harness measures its cases, devices in parallel, and "
                            "the rows merge into one --out")
    group.add_argument("--inventory", type=user_path, default=DEFAULT_INVENTORY,
                       metavar="TOML", help="the device inventory (default ./devices.toml)")
    group.add_argument("--resume", type=user_path, default=None, metavar="RESULTS.csv",
                       help="with --on: keep this file's ok rows and measure only the cases "
                            "not yet ok; the merged rows replace the file (or go to --out)")
    group.add_argument("--device-name", type=device_name_arg, default=None, metavar="NAME",
                       help="with --bundle: the inventory name this run's rows carry "
                            "(device_name column); set by --on on each device")
    group.add_argument("--progress-file", type=user_path, default=None, metavar="FILE",
                       help="also append one JSON line per case stage to FILE (what --on "
                            "follows on a device)")
    group.add_argument("--coordinator", default=None, metavar="HOST[:PORT]",
                       help="with --on labgrid:...: the labgrid coordinator (default: "
                            "$LG_COORDINATOR)")
    group.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                       help="with --on labgrid:...: wait up to this long for a place someone "
                            "else holds (default 0: its cases are skipped, naming the "
                            "holder)")
    group.add_argument("--identity", type=user_path, default=None, metavar="KEY",
                       help="with --on labgrid:...: the private key for the boards (default: "
                            "the inventory's [defaults] identity, else the SSH agent)")
    group.add_argument("--request", type=user_path, default=None, metavar="JSON",
                       help="every option of the run as one JSON object (what --on sends "
                            "each device: the option names with '_' for '-', lists as JSON "
                            "lists); give it alone")
    group.add_argument("--cases", type=user_path, default=None, metavar="JSON",
                       help="with --bundle: measure only these cases of the plan (a JSON list "
                            "of case keys, as --resume writes for a device)")


def select_cases(cases: list, path: Path) -> list:
    """The cases of the plan the --cases file names (in plan order); UsageError for a file
    that is not a JSON list of case keys or names a case outside the plan."""

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


def inventory_of(args: argparse.Namespace, command: str) -> dict[str, Device]:
    try:
        return load_inventory(args.inventory)
    except InventoryError as error:
        raise UsageError(f"harness {command}: {error}") from None


@dataclass(frozen=True)
class Resumed:
    """What --resume takes from its file: the rows kept as they are (ok rows, and every row
    of devices not in this run) with their benchmarks, and the rows this run measures again
    (`pending`: kept until a new row replaces each, so a run stopped early loses none)."""

    kept: list[dict]
    benchmarks: list
    pending: list[dict]


def rows_to_keep(resume: Path | None, device_names: set[str],
                 bundle: Bundle | None = None) -> Resumed:
    """--resume: the file's rows (see Resumed). With `bundle`, every row of this run's
    devices must have measured that bundle's model and artifact (UsageError naming the
    first that did not: a file of another model is never resumed)."""
    if resume is None:
        return Resumed([], [], [])
    try:
        csv_path, json_path = resolve_pair(resume)
        records = row_dicts(read_results(csv_path))
        benchmarks = load_benchmarks(json_path)
    except ValueError as error:
        raise UsageError(f"harness: {error}") from None
    ours = [row for row in records if row["device_name"] in device_names]
    if bundle is not None:
        for row in ours:
            _check_identity(row, bundle, csv_path)
    again = [row for row in ours if row["status"] != "ok"]
    measured_again = {id(row) for row in again}
    kept = [row for row in records if id(row) not in measured_again]
    return Resumed(kept, benchmarks, again)


def _check_identity(row: dict, bundle: Bundle, path: Path) -> None:
    """UsageError when a resumed row did not measure what `bundle` holds for its case."""
    fields = ("model", "variant", "backend", "threads", "seq_len", "batch", "scenario")
    case = Case(**{name: row[name] for name in fields})
    expected = bundle.case_identity(case)
    if "model_id" not in expected:
        return  # a model the bundle lacks: its rows are not measured again either
    found = {name: row.get(name) for name in expected}
    if found == expected:
        return
    what = "has no model identity (written by a harness before results schema 8)" \
        if not row.get("model_id") else \
        (f"measured model {str(row['model_id'])[:12]}, this bundle's {case.model} is "
         f"{expected['model_id'][:12]}" if row["model_id"] != expected["model_id"] else
         f"measured another {case.backend} {case.variant} artifact than this bundle's")
    raise UsageError(f"harness run: --resume {path}: the row {case.label} on "
                     f"{row['device_name']} {what}; its rows cannot stand for this bundle "
                     f"(give a new --out without --resume to measure afresh)")
