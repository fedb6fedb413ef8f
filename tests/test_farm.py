"""Board farms through labgrid: a real coordinator and exporter (labgrid from the package
index) on 127.0.0.1, exporting NetworkService resources that point at two real OpenSSH
servers (tests/sshd.py); places are created, tagged, acquired and released with labgrid's
own client. Nothing of labgrid or the transport is mocked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.fleet.farm import Farm, FarmError, FarmSelection, parse_farm_spec
from tests.conftest import popen_harness, run_cli
from tests.sshd import SshServer, keygen, sshd_missing

BIN = Path(sys.executable).parent
LABGRID_MISSING = None if (BIN / "labgrid-coordinator").exists() else \
    "labgrid is not installed (pip install -e '.[farm]')"
pytestmark = [pytest.mark.skipif(sshd_missing() is not None, reason=str(sshd_missing())),
              pytest.mark.skipif(LABGRID_MISSING is not None, reason=str(LABGRID_MISSING)),
              pytest.mark.slow]
PLACES = ("pi1", "pi2")
#: two backends of the tiny bundle: rows from both places merge into one file
RUN_ARGS = ("--backends", "onnxruntime,tflite", "--profile", "quick", "--power", "none")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabFarm:
    """A labgrid coordinator and exporter, two places (tag board=pi) whose NetworkService
    is an SSH server, and an inventory holding only [defaults] (key, known_hosts, python,
    workdir)."""

    folder: Path
    coordinator: str
    inventory: Path
    servers: dict[str, SshServer]

    def client(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess:
        """labgrid-client ARGS against this coordinator (as LG_USERNAME=user if given)."""
        env = {**os.environ, "LG_COORDINATOR": self.coordinator}
        if user:
            env["LG_USERNAME"] = user
        return subprocess.run([str(BIN / "labgrid-client"), *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    def holders(self) -> dict[str, str | None]:
        """place -> who holds it (host/user) or None, as the coordinator says now."""
        with Farm(self.coordinator) as farm:
            return {place.name: place.held_by for place in farm.places()}

    def run_folders(self, place: str) -> list[Path]:
        """A place's run folders on its "board", oldest first."""
        runs = self.folder / "work" / place / "runs"
        return sorted(runs.iterdir()) if runs.is_dir() else []

    def env(self) -> dict[str, str]:
        """The harness's environment: LG_COORDINATOR set."""
        return {**os.environ, "LG_COORDINATOR": self.coordinator}


def _wait_for(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFarm]:
    folder = tmp_path_factory.mktemp("farm")
    key = keygen(folder / "client_key")
    servers = {name: SshServer(folder / name, key).start() for name in PLACES}
    (folder / "known_hosts").write_text("".join(s.known_hosts_line() for s in servers.values()))
    inventory = folder / "devices.toml"
    inventory.write_text(f'[defaults]\nknown_hosts = "{folder / "known_hosts"}"\n'
                         f'identity = "{key}"\npython = "{sys.executable}"\n'
                         f'workdir = "{folder / "work"}"\n')
    (folder / "exporter.yaml").write_text("".join(
        f"{name}:\n  NetworkService:\n    address: 127.0.0.1\n    username: root\n"
        f"    port: {server.port}\n" for name, server in servers.items()))
    address = f"127.0.0.1:{_free_port()}"
    logs = (folder / "coordinator.log").open("w"), (folder / "exporter.log").open("w")
    processes = [subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", address],
                                  cwd=folder, stdout=logs[0], stderr=subprocess.STDOUT)]
    made = LabFarm(folder, address, inventory, servers)
    _wait_for(lambda: made.client("places").returncode == 0, 30, "the coordinator")
    processes.append(subprocess.Popen(
        [str(BIN / "labgrid-exporter"), "--coordinator", address, "--name", "exp1",
         str(folder / "exporter.yaml")], cwd=folder, stdout=logs[1], stderr=subprocess.STDOUT))
    _wait_for(lambda: made.client("resources").stdout.count("NetworkService") == 2, 30,
              "the exporter's resources")
    for name in PLACES:
        for args in (("create",), ("add-match", f"exp1/{name}/NetworkService"),
                     ("set-tags", "board=pi", f"slot={name[-1]}")):
            done = made.client("-p", name, *args)
            assert done.returncode == 0, done.stderr
    yield made
    for process in processes:
        process.terminate()
        process.wait(timeout=20)
    for server in servers.values():
        server.kill()


def _farm_run(lab: LabFarm, bundle: Path, out: Path, on: str, *extra: str
              ) -> subprocess.Popen:
    return popen_harness("run", "--bundle", str(bundle), "--on", on, "--inventory",
                         str(lab.inventory), *RUN_ARGS, "--out", str(out), *extra,
                         env=lab.env())


def test_farm_specs_parse() -> None:
    assert parse_farm_spec("pi1,dev2") is None  # inventory devices
    assert parse_farm_spec("labgrid:pi1,pi2") == FarmSelection(names=("pi1", "pi2"))
    assert parse_farm_spec("labgrid:board=pi,slot=1") == FarmSelection(
        tags=(("board", "pi"), ("slot", "1")))
    for bad in ("labgrid:", "labgrid:pi1,board=pi", "labgrid:Board=pi", "labgrid:a b"):
        with pytest.raises(FarmError):
            parse_farm_spec(bad)


def test_a_run_on_tagged_places_acquires_runs_and_releases_them(
        lab: LabFarm, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "farm.csv"
    process = _farm_run(lab, tiny_bundle, out, "labgrid:board=pi")
    held_while_running: dict[str, str | None] = {}

    def both_held() -> bool:
        held_while_running.update(lab.holders())
        return all(held_while_running[name] for name in PLACES) or process.poll() is not None

    _wait_for(both_held, 120, "both places acquired")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    me = next(iter(held_while_running.values()))
    assert me and set(held_while_running.values()) == {me}  # both held by this run
    assert f"acquired pi1, pi2 as {me}" in err
    rows = read_results(out)
    assert sorted(zip(rows["device_name"], rows["backend"], rows["status"])) == [
        (place, backend, "ok") for place in PLACES for backend in ("onnxruntime", "tflite")]
    assert set(rows["device_tags"]) == {"board=pi;slot=1", "board=pi;slot=2"}
    assert dict(zip(rows["device_name"], rows["device_tags"]))["pi2"] == "board=pi;slot=2"
    assert lab.holders() == {"pi1": None, "pi2": None}  # released afterwards


def test_a_place_held_by_someone_else_is_skipped_naming_the_holder(
        lab: LabFarm, tiny_bundle: Path, tmp_path: Path) -> None:
    assert lab.client("-p", "pi2", "acquire", user="alice").returncode == 0
    try:
        out = tmp_path / "held.csv"
        process = _farm_run(lab, tiny_bundle, out, "labgrid:pi1,pi2")
        _, err = process.communicate(timeout=600)
        assert process.returncode == 1, err  # a place held by someone else fails the run
        rows = read_results(out).set_index(["device_name", "backend"])
        assert set(rows.loc["pi1", "status"]) == {"ok"}
        assert set(rows.loc["pi2", "status"]) == {"skipped"}
        reason = rows.loc["pi2", "reason"].iloc[0]
        assert "place pi2 is held by" in reason and "/alice (labgrid)" in reason
        assert "--wait" in reason
        holders = lab.holders()
        assert holders["pi1"] is None and holders["pi2"].endswith("/alice")  # never released
    finally:
        lab.client("-p", "pi2", "release", user="alice")


def test_with_wait_a_place_released_meanwhile_is_used(lab: LabFarm, tiny_bundle: Path,
                                                      tmp_path: Path) -> None:
    assert lab.client("-p", "pi2", "acquire", user="alice").returncode == 0
    releaser = threading.Timer(2.0, lab.client, ("-p", "pi2", "release"), {"user": "alice"})
    releaser.start()
    try:
        out = tmp_path / "waited.csv"
        process = _farm_run(lab, tiny_bundle, out, "labgrid:pi1,pi2", "--wait", "5")
        _, err = process.communicate(timeout=600)
    finally:
        releaser.join()
    assert process.returncode == 0, err
    rows = read_results(out)
    assert set(rows["status"]) == {"ok"} and set(rows["device_name"]) == set(PLACES)
    assert lab.holders() == {"pi1": None, "pi2": None}


def test_ctrl_c_releases_every_place_and_stops_the_devices_runs(
        lab: LabFarm, tiny_bundle: Path, tmp_path: Path) -> None:
    before = {place: len(lab.run_folders(place)) for place in PLACES}
    out = tmp_path / "interrupted.csv"
    process = _farm_run(lab, tiny_bundle, out, "labgrid:board=pi", "--backends", "all")
    _wait_for(lambda: all(len(lab.run_folders(p)) > before[p]
                          and (lab.run_folders(p)[-1] / "pid").exists() for p in PLACES)
              or process.poll() is not None, 180, "both devices' runs started")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert lab.holders() == {"pi1": None, "pi2": None}
    for place in PLACES:
        rc = lab.run_folders(place)[-1] / "rc"
        _wait_for(rc.exists, 60, f"{place}'s run to end")
        assert rc.read_text().strip() == "130"


def test_an_unreachable_coordinator_is_one_line_and_exit_2(tiny_bundle: Path,
                                                           tmp_path: Path, lab: LabFarm
                                                           ) -> None:
    out = tmp_path / "none.csv"
    done = run_cli("run", "--bundle", str(tiny_bundle), "--on", "labgrid:board=pi",
                   "--coordinator", f"127.0.0.1:{_free_port()}", "--inventory",
                   str(lab.inventory), *RUN_ARGS, "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot be reached" in done.stderr
    assert not out.exists()
    unknown = run_cli("run", "--bundle", str(tiny_bundle), "--on", "labgrid:pi9",
                      "--coordinator", lab.coordinator, "--inventory", str(lab.inventory),
                      *RUN_ARGS, "--out", str(out))
    assert unknown.returncode == 2 and "has no place 'pi9'" in unknown.stderr
    assert lab.holders() == {"pi1": None, "pi2": None}


def test_devices_labgrid_lists_the_places(lab: LabFarm) -> None:
    assert lab.client("-p", "pi2", "acquire", user="alice").returncode == 0
    try:
        done = run_cli("devices", "--labgrid", "--coordinator", lab.coordinator,
                       "--inventory", str(lab.inventory))
    finally:
        lab.client("-p", "pi2", "release", user="alice")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines()
             if line.startswith("│ pi")}
    assert set(lines) == set(PLACES)
    assert "board=pi;slot=1" in lines["pi1"] and "ok" in lines["pi1"]
    assert "/alice" in lines["pi2"] and "held: not checked" in lines["pi2"]
