"""Remote runs over SSH against real OpenSSH servers on 127.0.0.1 (tests/sshd.py): two
"devices" (two servers, each with its own work folder) whose harness is this test's Python.
Nothing of the transport is mocked: servers are killed and restarted for real."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_rnn_harness.core.results import read_results
from tests.conftest import popen_harness, run_cli
from tests.sshd import SshServer, keygen, sshd_missing

pytestmark = [pytest.mark.skipif(sshd_missing() is not None, reason=str(sshd_missing())),
              pytest.mark.slow]
#: every backend of the tiny bundle: one row per device each
BACKENDS = ("torch", "onnxruntime", "tflite", "openvino", "ncnn")


@dataclass
class Fleet:
    """Two SSH servers, their known_hosts and an inventory naming them dev1 and dev2."""

    folder: Path
    servers: dict[str, SshServer]
    inventory: Path
    client_key: Path

    def workdir(self, name: str) -> Path:
        """The device's work folder (bundles/, runs/)."""
        return self.folder / f"work-{name}"

    def write_inventory(self, path: Path, known_hosts: Path | None = None,
                        **extra: dict[str, str]) -> Path:
        """An inventory of dev1, dev2 (and `extra` devices: name -> fields)."""
        lines = ["[defaults]", f'known_hosts = "{known_hosts or self.folder / "known_hosts"}"',
                 f'identity = "{self.client_key}"', f'python = "{sys.executable}"']
        devices = {name: {"host": f"root@127.0.0.1:{server.port}",
                          "workdir": str(self.workdir(name))}
                   for name, server in self.servers.items()}
        devices.update(extra)
        for name, fields in devices.items():
            lines += [f"[devices.{name}]", *(f"{key} = {json.dumps(value)}"
                                              for key, value in fields.items())]
        path.write_text("\n".join(lines) + "\n")
        return path

    def run_folders(self, name: str) -> list[Path]:
        """The device's run folders, oldest first."""
        runs = self.workdir(name) / "runs"
        return sorted(runs.iterdir()) if runs.is_dir() else []


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Two sshd on free ports, a client key they accept, a known_hosts with both."""
    folder = tmp_path_factory.mktemp("fleet")
    key = keygen(folder / "client_key")
    servers = {name: SshServer(folder / name, key).start() for name in ("dev1", "dev2")}
    (folder / "known_hosts").write_text("".join(s.known_hosts_line() for s in servers.values()))
    made = Fleet(folder, servers, folder / "devices.toml", key)
    made.write_inventory(made.inventory)
    yield made
    for server in servers.values():
        server.kill()


def _fleet_run(fleet: Fleet, bundle: Path, out: Path, *extra: str,
               inventory: Path | None = None):
    return run_cli("run", "--bundle", str(bundle), "--inventory",
                   str(inventory or fleet.inventory),
                   "--profile", "quick", "--power", "none", "--out", str(out), *extra,
                   timeout=900)


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    return {(row["device_name"], row["backend"]): row
            for row in read_results(path).to_dict("records")}


def test_fleet_run_merges_every_device_into_one_file(fleet: Fleet, tiny_bundle: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "merged.csv"
    result = _fleet_run(fleet, tiny_bundle, out, "--on", "all")
    assert result.returncode == 0, result.stderr
    rows = _rows(out)
    assert set(rows) == {(d, b) for d in ("dev1", "dev2") for b in BACKENDS}
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert all(row["device"] and row["cpu"] for row in rows.values())  # read on the device
    import pyperf

    names = {b.get_name() for b in
             pyperf.BenchmarkSuite.load(str(out.with_suffix(".json"))).get_benchmarks()}
    assert "tiny/fp32/onnxruntime/single_stream/s24/t1/b1@dev2" in names and len(names) == 10
    assert "bundle: 0 file(s) sent" not in result.stderr  # the first copy sends files
    # a second run sends nothing: every file's sha256 already matches on the device
    again = _fleet_run(fleet, tiny_bundle, tmp_path / "again.csv", "--on", "dev1",
                       "--backends", "onnxruntime")
    assert again.returncode == 0, again.stderr
    assert "dev1: bundle: 0 file(s) sent" in again.stderr
    # compare joins per device; the report draws the device x backend table and plot
    compared = run_cli("compare", str(out), str(out))
    assert compared.returncode == 0, compared.stderr
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Devices x backends" in text and (tmp_path / "report" / "devices.png").is_file()
    assert "| dev1 (" in text and "| dev2 (" in text


def test_an_unreachable_device_is_skipped_the_others_measure_and_the_run_fails(
        fleet: Fleet, tiny_bundle: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inventory = fleet.write_inventory(
        tmp_path / "inv.toml",
        ghost={"host": f"root@127.0.0.1:{port}", "workdir": str(tmp_path / "ghost")},
        nopython={"host": f"root@127.0.0.1:{fleet.servers['dev2'].port}",
                  "workdir": str(tmp_path / "nopython"), "python": "/nonexistent/python3"})
    out = tmp_path / "r.csv"
    result = run_cli("run", "--bundle", str(tiny_bundle), "--inventory", str(inventory),
                     "--on", "dev1,ghost", "--backends", "onnxruntime", "--profile", "quick",
                     "--power", "none", "--out", str(out))
    # a board down is a failure of the run (exit 1), and the board that was up is kept
    assert result.returncode == 1, result.stderr
    assert "1 case(s) failed, invalid or skipped by a fault" in result.stderr
    rows = _rows(out)
    assert rows[("dev1", "onnxruntime")]["status"] == "ok"
    ghost = rows[("ghost", "onnxruntime")]
    assert ghost["status"] == "skipped" and "unreachable" in ghost["reason"]
    assert not (tmp_path / "ghost").exists()
    # every board down, or one without the interpreter the inventory names: exit 1 as well
    for name in ("ghost", "nopython"):
        alone = run_cli("run", "--bundle", str(tiny_bundle), "--inventory", str(inventory),
                        "--on", name, "--backends", "onnxruntime", "--profile", "quick",
                        "--power", "none", "--out", str(tmp_path / f"{name}.csv"))
        assert alone.returncode == 1, (name, alone.stderr)
        row = _rows(tmp_path / f"{name}.csv")[(name, "onnxruntime")]
        assert row["status"] == "skipped" and name in row["reason"], row


@pytest.mark.parametrize("known", ["unknown", "changed"])
def test_a_host_key_not_in_known_hosts_refuses_before_anything_runs(
        fleet: Fleet, tiny_bundle: Path, tmp_path: Path, known: str) -> None:
    known_hosts = tmp_path / "known_hosts"
    lines = [fleet.servers["dev1"].known_hosts_line()]
    if known == "changed":  # dev2's address with another server's key
        other = keygen(tmp_path / "other_host_key")
        public = Path(f"{other}.pub").read_text().split()
        lines.append(f"[127.0.0.1]:{fleet.servers['dev2'].port} {public[0]} {public[1]}\n")
    known_hosts.write_text("".join(lines))
    inventory = fleet.write_inventory(tmp_path / "inv.toml", known_hosts)
    before = {name: fleet.run_folders(name) for name in ("dev1", "dev2")}
    out = tmp_path / "r.csv"
    result = _fleet_run(fleet, tiny_bundle, out, "--on", "all", inventory=inventory)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "dev2" in result.stderr and "host key not verified" in result.stderr
    assert "nothing was run" in result.stderr
    assert not out.exists()
    assert {name: fleet.run_folders(name) for name in ("dev1", "dev2")} == before


def test_shell_characters_in_the_inventory_reach_the_device_as_plain_words(
        fleet: Fleet, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    inventory = fleet.write_inventory(tmp_path / "inv.toml", evil={
        "host": f"root@127.0.0.1:{fleet.servers['dev1'].port}",
        "python": f"python3; touch {marker}", "workdir": f"$(touch {marker})"})
    result = run_cli("devices", "--inventory", str(inventory))
    assert result.returncode == 1, result.stdout  # evil cannot be used; the others can
    assert "no usable harness" in result.stdout
    assert not marker.exists()


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _fetched_ok(out: Path, device: str) -> int:
    """Rows of `device` the workstation has written ok into `out` so far (rows are
    appended whole, so the file reads as CSV at any moment)."""
    import csv

    if not out.is_file():
        return 0
    with out.open(newline="") as handle:
        return sum(row["status"] == "ok" and row["device_name"] == device
                   for row in csv.DictReader(handle))


def test_a_server_lost_mid_run_fails_its_unfinished_rows_and_nothing_is_lost(
        fleet: Fleet, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged.csv"
    known_runs = set(fleet.run_folders("dev2"))
    process = popen_harness("run", "--bundle", str(tiny_bundle), "--inventory",
                            str(fleet.inventory), "--on", "all", "--profile", "quick",
                            "--power", "none", "--out", str(out))
    try:
        _wait_for(lambda: _fetched_ok(out, "dev2") >= 1, 300, "a row of dev2")
        rundir = (set(fleet.run_folders("dev2")) - known_runs).pop()
        fleet.servers["dev2"].kill()
        _, stderr = process.communicate(timeout=600)
    finally:
        process.kill()
        fleet.servers["dev2"].start()  # the same port and host key: the board is back
    assert process.returncode == 1, stderr
    rows = _rows(out)
    assert all(rows[("dev1", b)]["status"] == "ok" for b in BACKENDS)
    lost = [rows[("dev2", b)] for b in BACKENDS if rows[("dev2", b)]["status"] != "ok"]
    assert lost and all(r["status"] == "failed" and "connection lost" in r["reason"]
                        and "harness devices fetch dev2" in r["reason"] for r in lost)
    # the device measured on without us: its run folder gets every row
    _wait_for(lambda: (rundir / "rc").exists(), 600, "dev2's detached run to end")
    fetched = tmp_path / "fetched.csv"
    result = run_cli("devices", "fetch", "dev2", "--run", rundir.name, "--into", str(fetched),
                     "--inventory", str(fleet.inventory))
    assert result.returncode == 0, result.stderr
    assert {r["status"] for r in _rows(fetched).values()} == {"ok"}
    assert len(_rows(fetched)) == len(BACKENDS)
    # --resume measures only what is not ok yet; rows already ok keep their run
    kept_run = {key: row["run_id"] for key, row in rows.items() if row["status"] == "ok"}
    resumed = run_cli("run", "--bundle", str(tiny_bundle), "--inventory",
                      str(fleet.inventory), "--on", "all", "--profile", "quick", "--power",
                      "none", "--resume", str(out), timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    after = _rows(out)
    assert {row["status"] for row in after.values()} == {"ok"} and len(after) == 10
    assert {key: after[key]["run_id"] for key in kept_run} == kept_run
    assert all(after[("dev2", r["backend"])]["run_id"] != r["run_id"] for r in lost)
    assert f"1 device(s), {len(lost)} case(s) to measure" in resumed.stderr
    assert len(lost) < len(BACKENDS)  # so dev2 ran a part of its plan (--cases)


def test_ctrl_c_stops_the_devices_runs_and_keeps_the_file(fleet: Fleet, tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    known_runs = {name: set(fleet.run_folders(name)) for name in ("dev1", "dev2")}
    process = popen_harness("run", "--bundle", str(tiny_bundle), "--inventory",
                            str(fleet.inventory), "--on", "all", "--profile", "quick",
                            "--power", "none", "--out", str(out))

    def started() -> list[Path]:
        return [r for name in ("dev1", "dev2")
                for r in set(fleet.run_folders(name)) - known_runs[name]
                if (r / "pid").exists()]
    try:
        _wait_for(lambda: len(started()) == 2, 120, "both devices' runs to start")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    for rundir in started():  # each device's harness was interrupted as by Ctrl-C there
        _wait_for(lambda rundir=rundir: (rundir / "rc").exists(), 60, f"{rundir} to stop")
        assert (rundir / "rc").read_text() == "130"
    read_results(out)  # the merged file is whole


def test_a_hung_device_is_given_up_by_the_workstation(fleet: Fleet, tiny_bundle: Path,
                                                      tmp_path: Path) -> None:
    """The device's run is frozen (SIGSTOP) once its case has begun: no progress for
    --case-timeout + 10 s, so the workstation marks its cases failed and goes on; it does
    not wait for ever."""
    out = tmp_path / "r.csv"
    known_runs = set(fleet.run_folders("dev1"))
    process = popen_harness("run", "--bundle", str(tiny_bundle), "--inventory",
                            str(fleet.inventory), "--on", "dev1", "--backends", "onnxruntime",
                            "--profile", "quick", "--power", "none", "--case-timeout", "2",
                            "--out", str(out))
    frozen = None
    try:
        def begun() -> bool:
            progress = [r / "progress.jsonl" for r in set(fleet.run_folders("dev1")) - known_runs]
            return any(p.is_file() and p.stat().st_size for p in progress)

        _wait_for(begun, 120, "dev1's case to begin")
        rundir = (set(fleet.run_folders("dev1")) - known_runs).pop()
        frozen = int((rundir / "pid").read_text())
        os.killpg(frozen, signal.SIGSTOP)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
        if frozen is not None:
            os.killpg(frozen, signal.SIGKILL)
            os.killpg(frozen, signal.SIGCONT)
    assert process.returncode == 1, stderr
    row = _rows(out)[("dev1", "onnxruntime")]
    assert row["status"] == "failed" and "no progress from the device for 12 s" in row["reason"]


def test_devices_setup_installs_this_harness_in_a_new_virtualenv(
        fleet: Fleet, tmp_path: Path) -> None:
    """setup builds this checkout's wheel, creates the virtualenv the inventory's python
    names on the device and installs the wheel with the device extra there."""
    venv = tmp_path / "device-venv"
    inventory = fleet.write_inventory(tmp_path / "inv.toml", fresh={
        "host": f"root@127.0.0.1:{fleet.servers['dev1'].port}",
        "python": str(venv / "bin" / "python"), "workdir": str(tmp_path / "work")})
    before = run_cli("devices", "--inventory", str(inventory))
    assert "fresh" in before.stdout and "no usable harness" in before.stdout
    result = run_cli("devices", "setup", "fresh", "--inventory", str(inventory), timeout=1500)
    assert result.returncode == 0, result.stderr
    assert "harness 0.1.0 on Python 3.11" in result.stderr
    assert "onnxruntime 1." in result.stderr and "ncnn 1." in result.stderr
    assert "torch (" in result.stderr  # the device extra has no torch: listed as missing
    listed = run_cli("devices", "--inventory", str(inventory))
    line = next(x for x in listed.stdout.splitlines() if "fresh" in x)
    assert " ok " in line and "0.1.0" in line


def test_compare_and_gate_say_when_rows_come_from_different_devices(tmp_path: Path) -> None:
    from tests.conftest import SYNTHETIC_BACKENDS, write_run

    named = {b: {"device_name": "pi4"} for b in SYNTHETIC_BACKENDS}
    other = {b: {"device_name": "pi5"} for b in SYNTHETIC_BACKENDS}
    base = write_run(tmp_path / "base.csv", 1, **named)
    cand = write_run(tmp_path / "cand.csv", 2, **other)
    compared = run_cli("compare", str(base), str(cand))
    assert compared.returncode == 2
    assert "device_name: pi4 vs pi5 (rows from different devices)" in compared.stderr
    gated = run_cli("gate", str(base), str(cand))
    assert gated.returncode == 2 and "rows from different devices" in gated.stdout + gated.stderr
    allowed = run_cli("compare", str(base), str(cand), "--allow-mismatch")
    assert allowed.returncode == 0, allowed.stderr


def test_inventory_problems_are_one_line_before_any_connection(tmp_path: Path) -> None:
    cases = {
        '[defaults]\npassword = "hunter2"\n[devices.a]\nhost = "pi@h"\n': "use a key",
        '[devices.a]\nhost = "pi@h"\nport = 22\n': "unknown key 'port'",
        '[devices.a]\nhost = "pi@h;reboot"\n': "is not user@host[:port]",
        '[devices."a b"]\nhost = "pi@h"\n': "must be letters, digits",
        '[devices]\n': "no devices",
        'not toml [': "not valid TOML",
    }
    for number, (text, expected) in enumerate(cases.items()):
        inventory = tmp_path / f"inv{number}.toml"
        inventory.write_text(text)
        result = run_cli("devices", "--inventory", str(inventory))
        assert result.returncode == 2, (text, result.stdout)
        assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr
    result = run_cli("run", "--on", "all", "--inventory", str(tmp_path / "none.toml"),
                     "--bundle", str(tmp_path))
    assert result.returncode == 2 and "no inventory there" in result.stderr


def _resume_file(path: Path, bundle: Path, **fields: object) -> Path:
    """A results file holding one row of dev1's tiny/fp32/onnxruntime case: by default ok
    and of `bundle`'s model and artifact; `fields` replace any of its values."""
    from edge_rnn_harness.bundle.reader import Bundle
    from edge_rnn_harness.core.plan import Case
    from edge_rnn_harness.core.results import ResultsWriter, new_row

    case = Case("tiny", "fp32", "onnxruntime", threads=1, seq_len=24, device_name="dev1")
    row = new_row(**case.to_dict(), status="ok", run_id="old", latency_median_ms=0.05,
                  **Bundle.load(bundle).case_identity(case))
    writer = ResultsWriter(path)
    writer.append({**row, **fields})
    writer.close()
    return path


@pytest.mark.parametrize(("fields", "said"), [
    ({"model_id": "f" * 64}, "measured model ffffffffffff, this bundle's tiny is"),
    ({"artifact_id": "0" * 64}, "measured another onnxruntime fp32 artifact"),
    ({"model_id": None, "artifact_id": None}, "has no model identity"),
])
def test_resume_refuses_rows_of_another_model_in_one_line(
        tiny_bundle: Path, tmp_path: Path, fields: dict, said: str) -> None:
    inventory = tmp_path / "inv.toml"  # nothing is contacted: the file is refused first
    inventory.write_text('[devices.dev1]\nhost = "root@127.0.0.1:1"\n')
    resume = _resume_file(tmp_path / "r.csv", tiny_bundle, **fields)
    before = resume.read_bytes()
    result = run_cli("run", "--bundle", str(tiny_bundle), "--inventory", str(inventory),
                     "--on", "dev1", "--backends", "onnxruntime", "--resume", str(resume))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and said in result.stderr, result.stderr
    assert "cannot stand for this bundle" in result.stderr and "Traceback" not in result.stderr
    assert resume.read_bytes() == before  # refused before the file is touched


def test_rows_measured_again_are_kept_until_replaced(tiny_bundle: Path,
                                                     tmp_path: Path) -> None:
    """The rows --resume measures again stay in the file when the run stops before their
    new rows arrive (Ctrl-C, a lost link): close() writes every one not replaced."""
    from edge_rnn_harness.bundle.reader import Bundle
    from edge_rnn_harness.cli.remote_options import rows_to_keep
    from edge_rnn_harness.fleet.remote import FleetResults

    resume = _resume_file(tmp_path / "r.csv", tiny_bundle, status="failed",
                          reason="worker crashed", latency_median_ms=None)
    resumed = rows_to_keep(resume, {"dev1"}, Bundle.load(tiny_bundle))
    assert [row["status"] for row in resumed.pending] == ["failed"] and resumed.kept == []
    sink = FleetResults(resume, resumed.kept, resumed.benchmarks, {}, resumed.pending)
    assert read_results(resume).empty  # truncated: the pending row is held, not lost
    sink.close()  # stopped before the case was measured again
    kept = read_results(resume)
    assert kept["status"].tolist() == ["failed"] and kept["reason"].tolist() == ["worker crashed"]
    # a case measured again replaces its pending row: no duplicate
    sink = FleetResults(resume, [], [], {}, resumed.pending)
    sink.add([{**resumed.pending[0], "status": "ok", "reason": "", "run_id": "new"}], [])
    sink.close()
    again = read_results(resume)
    assert again["status"].tolist() == ["ok"] and again["run_id"].tolist() == ["new"]
