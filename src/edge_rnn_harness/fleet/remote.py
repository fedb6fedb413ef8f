"""A fleet run: one bundle measured on several devices over SSH, merged into one results file.

Per device (devices in parallel, a device's cases one at a time, as its own harness runs
them): check the device's harness (same version as here), copy the bundle (files whose
sha256 already matches on the device are not sent), start `harness run --bundle` there
detached in a run folder, follow its progress file, and fetch its CSV and pyperf JSON as
rows appear. Rows are appended to the merged CSV the moment they arrive, so a dropped
connection, a hung device or Ctrl-C loses nothing already fetched; the device keeps writing
into its run folder, and `harness devices fetch` brings the rest back later.

Everything read back from a device is hostile until checked: sizes are bounded, the CSV goes
through `read_results`, and only rows of the cases planned for that device are taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edge_rnn_harness import __version__
from edge_rnn_harness.bundle.reader import Bundle
from edge_rnn_harness.core.launcher import child_program_args
from edge_rnn_harness.core.plan import Case, bench_name, case_key
from edge_rnn_harness.core.results import (
    ResultsWriter,
    dump_suite,
    load_benchmarks,
    new_row,
    read_results,
    row_dicts,
)
from edge_rnn_harness.fleet import agent
from edge_rnn_harness.fleet.inventory import Device, remote_path
from edge_rnn_harness.fleet.ssh import (
    LINK_ERRORS,
    Completed,
    HostKeyRefused,
    Unreachable,
    connect,
    put_atomic,
    read_file,
    run,
)

#: seconds between two looks at a device's progress
POLL_S = 1.0
#: a remote command that only reads or starts something must answer within this long
COMMAND_TIMEOUT_S = 120.0
#: added to the longest a device-side step may take before the device counts as hung
STALL_MARGIN_S = 10.0
#: more silence allowed before a device's first progress line (its harness starting up)
STARTUP_GRACE_S = 60.0
#: largest results CSV, pyperf JSON or progress read back from a device
MAX_FETCH_BYTES = 256 << 20


class DeviceUnusable(Exception):
    """The device answers but cannot run this bundle (no harness, another version)."""


def new_run_id() -> str:
    """A run id that sorts by time: <UTC yyyymmdd-HHMMSS>-<6 hex>."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def device_workdir(device: Device) -> PurePosixPath:
    """The device's work folder as its SSH session sees it (relative: under home)."""
    return PurePosixPath(remote_path(device.workdir))


def bundle_folder(device: Device, bundle_root: Path) -> PurePosixPath:
    """Where a bundle lives on the device (one folder per bundle name, updated in place)."""
    return device_workdir(device) / "bundles" / bundle_root.resolve().name


def run_folder(device: Device, run_id: str) -> PurePosixPath:
    """A run's folder on the device."""
    return device_workdir(device) / "runs" / run_id


def python_argv(device: Device, *args: str) -> list[str]:
    """The device's harness Python running `args`."""
    return [remote_path(device.python), *args]


#: the interpreter options that start the device's agent (a child program)
AGENT = child_program_args("edge_rnn_harness.fleet.agent")


class FleetResults:
    """The merged results file of a fleet run: rows appended as they arrive from any
    device, the pyperf JSON rewritten beside it after each; kept rows (from --resume) are
    written first; the rows being measured again (`pending`) are written at `close()` for
    every case no new row replaced (a run stopped early keeps them). `rows` holds this
    run's rows (not the kept ones)."""

    def __init__(self, out: Path, kept_rows: list[dict] | None = None,
                 kept_benchmarks: list | None = None,
                 device_tags: dict[str, str] | None = None,
                 pending: list[dict] | None = None) -> None:
        """Lock and truncate `out` (OutputBusy / OSError), then write the kept rows."""
        self.device_tags = device_tags or {}
        self._pending = list(pending or [])
        self.out, self.json_path = out, out.with_suffix(".json")
        self._writer = ResultsWriter(out)
        self._benchmarks: dict[str, Any] = {}
        self.rows: list[dict] = []
        #: called with each row appended after the kept ones (the progress display)
        self.on_row: Callable[[dict], None] = lambda row: None
        self.add(kept_rows or [], kept_benchmarks or [])
        self.rows = []  # rows of this run only

    def add(self, rows: list[dict], benchmarks: list) -> None:
        """Append rows (their benchmarks first, so a CSV row always has its values)."""
        import pyperf

        wanted = {bench_name(row) for row in rows}
        fresh = [b for b in benchmarks if b.get_name() in wanted]
        if fresh:
            self._benchmarks.update({b.get_name(): b for b in fresh})
            dump_suite(pyperf.BenchmarkSuite(list(self._benchmarks.values())), self.json_path)
        for row in rows:
            tags = self.device_tags.get(str(row.get("device_name")))
            if tags:
                row = {**row, "device_tags": tags}
            self._writer.append(row)
            self.rows.append(row)
            self.on_row(row)

    def close(self) -> None:
        """Write the pending rows no new row replaced, then release the file. Idempotent."""
        replaced = {case_key(row) for row in self.rows}
        left = [row for row in self._pending if case_key(row) not in replaced]
        self._pending = []
        try:
            for row in left:
                self._writer.append(row)
        finally:
            self._writer.close()


@dataclass
class DeviceJob:
    """One device's share of a fleet run and what has come back from it."""

    device: Device
    cases: list[Case]
    fetched: dict[tuple, dict] = field(default_factory=dict)
    stage: str = "waiting"

    @property
    def unfinished(self) -> list[Case]:
        """Planned cases with no row back yet."""
        return [case for case in self.cases if case_key(case.to_dict()) not in self.fetched]


@dataclass(frozen=True)
class FleetSpec:
    """What every device runs: the bundle (on this machine), the device-side `harness run`
    request (a JSON object of its options: `harness run --request FILE` reads it on the
    device), the run id, and how long a device may stay silent before it counts as hung."""

    bundle_root: Path
    request: dict[str, Any]
    run_id: str
    stall_s: float
    #: device name -> why it cannot be used (a farm place someone else holds): its cases
    #: get `skipped` rows with that reason, and nothing connects to it
    unavailable: dict[str, str] = field(default_factory=dict)
    #: device name -> the tags its rows carry (device_tags: a farm place's tags)
    device_tags: dict[str, str] = field(default_factory=dict)


Notify = Callable[[DeviceJob, str], None]


def gap_rows(job: DeviceJob, status: str, reason: str, spec: FleetSpec) -> list[dict]:
    """Rows for the cases of `job` nothing came back for: status and reason, the case key,
    the device's inventory name and what the case would have measured (model and artifact
    identity, from the bundle here); no device facts: none were read."""
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    bundle = Bundle.load(spec.bundle_root)
    return [new_row(**case.to_dict(), status=status, reason=reason, run_id=spec.run_id,
                    timestamp=stamp, harness_version=__version__,
                    **bundle.case_identity(case))
            for case in job.unfinished]


def read_fetched(folder: Path, accept: Callable[[dict], bool]) -> tuple[list[dict], list]:
    """The rows of a device's fetched results.csv that `accept` takes, and the benchmarks
    of its pyperf JSON; ValueError for a file that is not results."""

    rows = [row for row in row_dicts(read_results(folder / agent.RESULTS_CSV))
            if accept(row)]
    benchmarks = load_benchmarks(folder / agent.RESULTS_JSON) if rows else []
    return rows, benchmarks


async def fetch_results(sftp: Any, rundir: PurePosixPath, accept: Callable[[dict], bool]
                        ) -> tuple[list[dict], list]:
    """Copy the run folder's CSV and JSON here (bounded) and read the rows `accept` takes."""
    with tempfile.TemporaryDirectory(prefix="harness-fetch-") as tmp:
        for name in (agent.RESULTS_CSV, agent.RESULTS_JSON):
            data = await read_file(sftp, str(rundir / name), MAX_FETCH_BYTES + 1)
            if data is None:
                if name == agent.RESULTS_CSV:
                    return [], []
                continue
            if len(data) > MAX_FETCH_BYTES:
                raise ValueError(f"the device's {name} is larger than "
                                 f"{MAX_FETCH_BYTES >> 20} MiB")
            (Path(tmp) / name).write_bytes(data)
        return read_fetched(Path(tmp), accept)


def new_rows_of(job: DeviceJob) -> Callable[[dict], bool]:
    """Accepts a device's row when it is one of the cases planned for it and not yet in."""
    planned = {case_key(case.to_dict()) for case in job.cases}
    return lambda row: case_key(row) in planned and case_key(row) not in job.fetched


async def device_info(conn: Any, device: Device) -> dict[str, Any]:
    """The device's harness facts (the agent's info); DeviceUnusable when there is no
    harness at the inventory's python or it is another version than this one."""
    done = await run(conn, python_argv(device, *AGENT,
                                       "info"), COMMAND_TIMEOUT_S)
    hint = f"run 'harness devices setup {device.name}'"
    if done.exit_status != 0:
        raise DeviceUnusable(f"no usable harness at {device.python} on the device "
                             f"({completed_text(done)}); {hint}")
    try:
        facts = json.loads(done.stdout)
        version = facts["harness"]
    except (ValueError, KeyError, TypeError):
        raise DeviceUnusable(f"the harness at {device.python} on the device did not "
                             f"describe itself; {hint}") from None
    if version != __version__:
        raise DeviceUnusable(f"the device has harness {version!s:.40}, this machine "
                             f"{__version__}; {hint} so both run the same version")
    return facts


async def sync_bundle(conn: Any, device: Device, bundle_root: Path) -> tuple[int, int]:
    """Make the device's copy of the bundle match this one; (files sent, bytes sent).
    Files whose sha256 already matches on the device are not sent; the manifest goes last,
    so a copy cut short never describes files it lacks."""
    bundle = Bundle.load(bundle_root)
    wanted = bundle.file_hashes()
    target = bundle_folder(device, bundle_root)
    done = await run(conn, python_argv(device, *AGENT,
                                       "hash", str(target)),
                     COMMAND_TIMEOUT_S, stdin=json.dumps(sorted(wanted)))
    try:
        present = json.loads(done.stdout) if done.exit_status == 0 else {}
    except ValueError:
        present = {}
    missing = [path for path, digest in wanted.items()
               if not isinstance(present, dict) or present.get(path) != digest]
    sent_bytes = 0
    async with conn.start_sftp_client() as sftp:
        folders = {str((target / path).parent) for path in [*missing, "manifest.json"]}
        for folder in sorted(folders):
            await sftp.makedirs(folder, exist_ok=True)
        for path in missing:
            await put_atomic(sftp, bundle_root / path, str(target / path))
            sent_bytes += (bundle_root / path).stat().st_size
        await put_atomic(sftp, bundle_root / "manifest.json", str(target / "manifest.json"))
    return len(missing), sent_bytes


async def _put_json(sftp: Any, value: Any, remote: PurePosixPath) -> None:
    """Write `value` as JSON to the device's file `remote` (whole or not at all)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        handle.write(json.dumps(value))
        handle.flush()
        await put_atomic(sftp, Path(handle.name), str(remote))


async def _start(conn: Any, job: DeviceJob, spec: FleetSpec, rundir: PurePosixPath,
                 remote_bundle: PurePosixPath, subset: bool) -> None:
    """Start the device's harness run detached in `rundir`."""
    request = {**spec.request, "bundle": str(remote_bundle),
               "out": str(rundir / agent.RESULTS_CSV),
               "progress_file": str(rundir / agent.PROGRESS),
               "device_name": job.device.name}
    async with conn.start_sftp_client() as sftp:
        await sftp.makedirs(str(rundir), exist_ok=True)
        if subset:
            await _put_json(sftp, [case.to_dict() for case in job.cases], rundir / "cases.json")
            request["cases"] = str(rundir / "cases.json")
        await _put_json(sftp, request, rundir / "request.json")
    args = ["run", "--request", str(rundir / "request.json")]
    done = await run(conn, python_argv(job.device, *AGENT, "start", str(rundir), *args),
                     COMMAND_TIMEOUT_S)
    if done.exit_status != 0:
        raise DeviceUnusable(f"could not start the run on the device: {completed_text(done)}")


class StepClock:
    """Wall-clock seconds of a device's steps (untimed by pyperf: the remote path's own
    overhead, for the progress notes)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, step: str) -> None:
        """Record the seconds since the previous lap as `step`."""
        now = time.perf_counter()
        self.laps[step], self._last = now - self._last, now

    def text(self) -> str:
        """e.g. "check 0.41 s, copy 0.20 s, start 0.33 s, run and fetch 12.0 s"."""
        return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in self.laps.items())


class DeviceHung(Exception):
    """The device's run made no progress for longer than any step may take."""


async def follow(conn: Any, job: DeviceJob, spec: FleetSpec, rundir: PurePosixPath,
                 sink: FleetResults, notify: Notify) -> int:
    """Follow the device's run until it ends: show its stage, fetch rows as they appear;
    the device harness's exit code. DeviceHung when it stays silent too long."""
    offset, last_change, grace = 0, time.monotonic(), STARTUP_GRACE_S
    async with conn.start_sftp_client() as sftp:
        while True:
            await asyncio.sleep(POLL_S)
            chunk = await read_file(sftp, str(rundir / agent.PROGRESS), 1 << 20, offset)
            finished = False
            if chunk:
                complete = chunk[:chunk.rfind(b"\n") + 1]
                offset += len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    event = _event(line)
                    if event:
                        last_change, grace = time.monotonic(), 0.0
                        finished |= event.get("stage") == "finished"
                        job.stage = f"{event.get('stage', '?')} {event.get('label', '')}"
                        notify(job, "stage")
            code_text = await read_file(sftp, str(rundir / agent.RC), 64)
            if finished or code_text is not None:
                rows, benchmarks = await fetch_results(sftp, rundir, new_rows_of(job))
                for row in rows:
                    job.fetched[case_key(row)] = row
                sink.add(rows, benchmarks)
            if code_text is not None:
                text = code_text.decode(errors="replace").strip()
                return int(text) if text.lstrip("-").isdigit() else 1
            if time.monotonic() - last_change > spec.stall_s + grace:
                raise DeviceHung(f"no progress from the device for {spec.stall_s + grace:.0f} s")


def _event(line: str) -> dict | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


async def _log_tail(conn: Any, rundir: PurePosixPath) -> str:
    """The last line of the device run's log (why it stopped), or ""."""
    try:
        async with conn.start_sftp_client() as sftp:
            size = (await sftp.stat(str(rundir / agent.LOG))).size or 0
            data = await read_file(sftp, str(rundir / agent.LOG), 4096,
                                   max(0, size - 4096))
    except LINK_ERRORS:
        return ""
    lines = [line for line in (data or b"").decode(errors="replace").splitlines()
             if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


async def stop_remote(conn: Any, job: DeviceJob, rundir: PurePosixPath) -> None:
    """Best effort: interrupt the device's run (as Ctrl-C there)."""
    try:
        await run(conn, python_argv(job.device, *AGENT,
                                    "stop", str(rundir)), 10)
    except LINK_ERRORS:
        pass


async def run_device(conn: Any, job: DeviceJob, spec: FleetSpec, sink: FleetResults,
                     notify: Notify, subset: bool) -> None:
    """Everything one device does in a fleet run; rows for cases that did not come back
    are written here too (skipped, failed) with the reason."""
    rundir = run_folder(job.device, spec.run_id)
    started = False
    clock = StepClock()
    try:
        job.stage = "checking the harness"
        notify(job, "stage")
        await device_info(conn, job.device)
        clock.lap("check")
        job.stage = "copying the bundle"
        notify(job, "stage")
        sent_files, sent_bytes = await sync_bundle(conn, job.device, spec.bundle_root)
        clock.lap("copy")
        notify(job, f"note:bundle: {sent_files} file(s) sent ({sent_bytes / 1024:.1f} KiB), "
                    f"the rest already there")
        started = True  # from here the device may be measuring (stop it if we give up)
        await _start(conn, job, spec, rundir, bundle_folder(job.device, spec.bundle_root),
                     subset)
        clock.lap("start")
        code = await follow(conn, job, spec, rundir, sink, notify)
        clock.lap("run and fetch")
        notify(job, f"note:remote path: {clock.text()}")
        if job.unfinished:
            tail = await _log_tail(conn, rundir)
            sink.add(gap_rows(job, "failed", f"the device's harness exited with code {code}"
                              + (f": {tail}" if tail else ""), spec), [])
    except DeviceUnusable as error:
        sink.add(gap_rows(job, "skipped", f"device {job.device.name}: {error}",
                          spec), [])
    except ValueError as error:  # results from the device that do not read as results
        await stop_remote(conn, job, rundir)
        sink.add(gap_rows(job, "failed", f"device {job.device.name} sent results this "
                          f"harness cannot read: {error}", spec), [])
    except DeviceHung as error:
        await stop_remote(conn, job, rundir)
        sink.add(gap_rows(job, "failed", f"device {job.device.name}: {error}; its run was "
                          f"stopped ({rundir} on the device)", spec), [])
    except LINK_ERRORS as error:
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        where = (f"; the device may still be measuring: 'harness devices fetch "
                 f"{job.device.name} --into {sink.out}' brings back its rows") if started else ""
        sink.add(gap_rows(job, "failed", f"connection lost to device {job.device.name} "
                          f"({detail}){where}", spec), [])
    except asyncio.CancelledError:
        if started:
            await asyncio.shield(stop_remote(conn, job, rundir))
        raise
    finally:
        job.stage = "done"
        notify(job, "done")


async def connect_all(devices: list[Device]) -> dict[str, Any]:
    """Connect to every device at once: name -> connection, or the Unreachable error.
    HostKeyRefused for the first device whose host key is not verified (every connection
    made is closed then: nothing may run)."""
    results = await asyncio.gather(*(connect(device) for device in devices),
                                   return_exceptions=True)
    outcome = dict(zip([device.name for device in devices], results))
    refused = [error for error in results if isinstance(error, HostKeyRefused)]
    if refused:
        for value in results:
            if not isinstance(value, BaseException):
                value.close()
        raise refused[0]
    for value in results:
        if isinstance(value, BaseException) and not isinstance(value, Unreachable):
            raise value
    return outcome


async def run_fleet(jobs: list[DeviceJob], spec: FleetSpec,
                    start: Callable[[], tuple[FleetResults, Notify]],
                    subset: dict[str, bool]) -> None:
    """Connect to every device (HostKeyRefused before anything runs or is written), then
    `start()` gives the merged results and the progress callback, and every device's job
    runs in parallel."""
    connections = await connect_all([job.device for job in jobs
                                     if job.device.name not in spec.unavailable])
    sink, notify = start()
    tasks = []
    for job in jobs:
        if job.device.name in spec.unavailable:
            sink.add(gap_rows(job, "skipped", spec.unavailable[job.device.name], spec),
                     [])
            notify(job, "done")
            continue
        conn = connections[job.device.name]
        if isinstance(conn, Unreachable):
            sink.add(gap_rows(job, "skipped", f"device {job.device.name} "
                              f"({job.device.address}): {conn}", spec), [])
            notify(job, "done")
            continue
        tasks.append(_run_and_close(conn, job, spec, sink, notify, subset[job.device.name]))
    await asyncio.gather(*tasks)


async def _run_and_close(conn: Any, job: DeviceJob, spec: FleetSpec, sink: FleetResults,
                         notify: Notify, subset: bool) -> None:
    try:
        await run_device(conn, job, spec, sink, notify, subset)
    finally:
        conn.close()


def completed_text(done: Completed) -> str:
    """A remote command's failure for a message: its last stderr line, else the code."""
    lines = done.stderr.strip().splitlines()
    return lines[-1][:300] if lines else f"exit code {done.exit_status}"
