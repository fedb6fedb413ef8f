"""Looking after the devices of the inventory: what each has (`harness devices`), installing
the harness there (`devices setup`), and bringing back a run's rows (`devices fetch`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edge_rnn_harness import __version__
from edge_rnn_harness.fleet import agent
from edge_rnn_harness.fleet.inventory import Device, remote_path
from edge_rnn_harness.fleet.remote import (
    DeviceUnusable,
    completed_text,
    device_info,
    device_workdir,
    fetch_results,
    read_file,
    run_folder,
)
from edge_rnn_harness.fleet.ssh import (
    LINK_ERRORS,
    HostKeyRefused,
    Unreachable,
    connect,
    list_dir,
    run,
)

#: how long `devices setup` may take to install the dependencies on a device
SETUP_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class DeviceStatus:
    """One line of `harness devices`: the device's facts, or why it cannot be used."""

    device: Device
    facts: dict[str, Any] | None
    problem: str | None


async def _status(device: Device) -> DeviceStatus:
    try:
        conn = await connect(device)
    except (HostKeyRefused, Unreachable) as error:
        return DeviceStatus(device, None, str(error))
    try:
        return DeviceStatus(device, await device_info(conn, device), None)
    except DeviceUnusable as error:
        return DeviceStatus(device, None, str(error))
    except LINK_ERRORS as error:
        return DeviceStatus(device, None, f"connection lost ({error})")
    finally:
        conn.close()


def device_statuses(devices: list[Device]) -> list[DeviceStatus]:
    """Every device's status, asked in parallel."""
    async def ask_all() -> list[DeviceStatus]:
        return list(await asyncio.gather(*(_status(device) for device in devices)))

    return asyncio.run(ask_all())


def project_root() -> Path | None:
    """The source checkout this harness runs from (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[3]  # src/edge_rnn_harness/fleet/admin.py
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "edge-rnn-harness"' in pyproject.read_text():
        return root
    return None


def build_wheel(out_dir: Path) -> Path:
    """Build this checkout's wheel (pip wheel --no-deps) into out_dir; ValueError when
    there is no checkout or the build fails."""
    root = project_root()
    if root is None:
        raise ValueError("this harness is not run from a source checkout; give the wheel it "
                         "was installed from with --wheel FILE")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out_dir), str(root)], capture_output=True, text=True,
                          check=False, timeout=600)
    wheels = sorted(out_dir.glob("edge_rnn_harness-*.whl"))
    if done.returncode != 0 or not wheels:
        lines = done.stderr.strip().splitlines() or ["no wheel written"]
        raise ValueError(f"building the harness wheel failed: {lines[-1][:200]}")
    return wheels[-1]


def venv_of(device: Device) -> PurePosixPath:
    """The virtualenv `devices setup` makes: the folder two levels above `python`."""
    python = PurePosixPath(remote_path(device.python))
    if python.parent.name != "bin" or not python.name.startswith("python"):
        raise ValueError(f"device {device.name}: python = {device.python!r} is not inside a "
                         f"virtualenv (<folder>/bin/python); setup creates one there: set "
                         f"python to e.g. ~/.edge-rnn-harness/venv/bin/python")
    return python.parent.parent


async def setup_device(device: Device, wheel: Path, say: Callable[[str], None]) -> dict:
    """Create the virtualenv on the device (if missing), copy the wheel there and install it
    with the `device` extra (dependencies from the device's package index); the device's
    facts afterwards. ValueError with the step that failed."""
    venv = venv_of(device)
    conn = await connect(device)
    try:
        target = device_workdir(device) / "wheels" / wheel.name
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs(str(target.parent), exist_ok=True)
            await sftp.put(str(wheel), str(target))
        say(f"copied {wheel.name} to {target}")
        steps = [("creating the virtualenv", [device.setup_python, "-m", "venv", str(venv)]),
                 ("installing the harness and the device extra (from the package index)",
                  [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                   f"{target}[device]"]),
                 ("installing this exact build of the harness",
                  [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                   "--force-reinstall", "--no-deps", str(target)])]
        for what, argv in steps:
            say(what)
            done = await run(conn, argv, SETUP_TIMEOUT_S)
            if done.exit_status != 0:
                raise ValueError(f"device {device.name}: {what} failed: {completed_text(done)}")
        return await device_info(conn, device)
    finally:
        conn.close()


def latest_run(names: list[str]) -> str | None:
    """The newest run folder name (run ids sort by time)."""
    runs = sorted(name for name in names if not name.startswith("."))
    return runs[-1] if runs else None


async def fetch_device(device: Device, run_id: str | None) -> tuple[str, list, list, bool]:
    """A device run's rows (those naming this device) and benchmarks: (run id, rows,
    benchmarks, still running). ValueError when the device has no such run."""
    conn = await connect(device)
    try:
        async with conn.start_sftp_client() as sftp:
            runs_dir = device_workdir(device) / "runs"
            runs = await list_dir(sftp, str(runs_dir))
            if run_id is None:
                run_id = latest_run(runs)
                if run_id is None:
                    raise ValueError(f"device {device.name} has no runs in {runs_dir}")
            elif run_id not in runs:
                raise ValueError(f"device {device.name} has no run {run_id!r} in {runs_dir} "
                                 f"(latest: {latest_run(runs) or 'none'})")
            rundir = run_folder(device, run_id)
            rows, benchmarks = await fetch_results(
                sftp, rundir, lambda row: row.get("device_name") == device.name)
            running = await read_file(sftp, str(rundir / agent.RC), 64) is None
        return run_id, rows, benchmarks, running
    finally:
        conn.close()


def write_wheel_and_setup(device: Device, wheel: Path | None,
                          say: Callable[[str], None]) -> dict:
    """`devices setup`: the wheel given, or one built from this checkout, installed."""
    with tempfile.TemporaryDirectory(prefix="harness-wheel-") as tmp:
        if wheel is None:
            say(f"building the harness {__version__} wheel from {project_root()}")
            wheel = build_wheel(Path(tmp))
        return asyncio.run(setup_device(device, wheel, say))
