"""The CLI in a subprocess, as a user runs it, on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.bundle.export import Exporter
from edge_rnn_harness.bundle.reader import MANIFEST, Bundle, file_sha256
from edge_rnn_harness.bundle.sources import RegisteredSource
from edge_rnn_harness.core.plan import Case
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.models.registry import get_entry
from tests.conftest import popen_harness, run_cli

QUICK = ("--model", "tiny", "--profile", "quick")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess,
                                                                  Path, Path]:
    """One quick run of torch and onnxruntime on the tiny model."""
    tmp = tmp_path_factory.mktemp("run")
    out = tmp / "a.csv"
    result = run_cli("run", "--backends", "torch,onnxruntime", *QUICK, "--out", str(out),
                     "--bundle-dir", str(tmp / "bundle"), "--store", str(tmp / "store"))
    return result, out, tmp / "bundle"


def test_run_adds_its_rows_and_values_to_the_store(quick_run: tuple) -> None:
    """--store: the run's rows and every timed value are in the store when it ends."""
    from edge_rnn_harness.analysis.store import open_store
    from edge_rnn_harness.measure.stats import raw_values

    result, out, bundle = quick_run
    assert result.returncode == 0, result.stderr
    store = open_store(bundle.parent / "store")
    run_id = str(read_results(out)["run_id"].iloc[0])
    assert f"run {run_id} (2 rows) added" in result.stdout
    assert list(store.runs()["run_id"]) == [run_id]
    stored, measured = store.values(run_id), raw_values(out.with_suffix(".json"))
    assert sorted(stored) == sorted(measured)
    assert sum(len(v) for runs in stored.values() for v in runs) == 400  # 2 cases x 200


def test_run_refuses_a_store_it_cannot_write_before_measuring(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "store.json").write_text('{"format": "edge-rnn-harness run store", '
                                      '"store_version": 99, "results_schema": 6}')
    result = run_cli("run", "--backends", "onnxruntime", *QUICK, "--out",
                     str(tmp_path / "r.csv"), "--store", str(store))
    assert result.returncode == 2 and "written by a newer harness" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.slow
def test_run_writes_csv_and_pyperf_json(quick_run: tuple) -> None:
    result, out, _ = quick_run
    assert result.returncode == 0, result.stderr
    frame = read_results(out)
    assert list(frame["backend"]) == ["torch", "onnxruntime"]
    assert list(frame["status"]) == ["ok", "ok"]
    for _, row in frame.iterrows():
        assert 0 < row["latency_min_ms"] <= row["latency_median_ms"] <= row["latency_p99_ms"]
        assert row["n_values"] == 200  # quick: 2 processes x 100 values
        assert row["peak_rss_mb"] > 0 and row["rss_delta_mb"] > 0
        assert row["artifact_bytes"] > 0 and row["load_ms"] > 0 and row["first_run_ms"] > 0
        assert row["max_abs_err"] <= 1e-5
        assert json.loads(row["settings"])["threads"] == 1
        # no --power: no energy step ran, so every power cell is empty, not zero
        assert row["power_meter"] == "none" and row[["power_mean_w", "energy_per_inf_mj",
                                                     "energy_inferences"]].isna().all()
    assert len(set(frame["run_id"])) == 1
    stats = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(out.with_suffix(
        ".json"))], capture_output=True, text=True, check=False)
    assert stats.returncode == 0, stats.stderr
    assert "tiny/fp32/onnxruntime/single_stream/s24/t1/b1" in stats.stdout
    assert "Total number of values: 200" in stats.stdout


def test_accuracy_pass_runs_in_the_first_worker_only(quick_run: tuple) -> None:
    """The test-split pass gives one answer per artifact: one worker computes it, and the
    row's rmse is that worker's."""
    import pyperf

    _, out, _ = quick_run
    rows = read_results(out).set_index("backend")
    for bench in pyperf.BenchmarkSuite.load(str(out.with_suffix(".json"))).get_benchmarks():
        runs = [run.get_metadata() for run in bench.get_runs()]
        with_rmse = [meta["rmse"] for meta in runs if "rmse" in meta]
        backend = bench.get_name().split("/")[2]
        assert len(runs) == 2 and len(with_rmse) == 1
        assert with_rmse[0] == pytest.approx(rows.loc[backend, "rmse"], rel=1e-6)


def test_run_prints_table_and_show_renders_it(quick_run: tuple) -> None:
    result, out, _ = quick_run
    assert "onnxruntime" in result.stdout and "median ms" in result.stdout
    shown = run_cli("show", str(out))
    assert shown.returncode == 0
    assert "onnxruntime" in shown.stdout and "torch" in shown.stdout


def _tiny_artifact(root: Path, backend: str) -> Path:
    return root / Bundle.load(root).artifact("tiny", "fp32", backend).artifact


def test_second_run_reuses_exports(quick_run: tuple, tmp_path: Path) -> None:
    _, _, bundle_dir = quick_run
    artifact = _tiny_artifact(bundle_dir, "onnxruntime")
    before = artifact.stat().st_mtime_ns
    result = run_cli("run", "--backends", "onnxruntime", *QUICK, "--out",
                     str(tmp_path / "b.csv"), "--bundle-dir", str(bundle_dir))
    assert result.returncode == 0, result.stderr
    assert artifact.stat().st_mtime_ns == before


@pytest.mark.slow
def test_truncated_cached_artifact_is_reexported(quick_run: tuple, tmp_path: Path) -> None:
    _, _, bundle_dir = quick_run
    artifact = _tiny_artifact(bundle_dir, "onnxruntime")
    artifact.write_bytes(artifact.read_bytes()[:100])
    result = run_cli("run", "--backends", "onnxruntime", *QUICK, "--out",
                     str(tmp_path / "c.csv"), "--bundle-dir", str(bundle_dir))
    assert result.returncode == 0, result.stderr
    assert "sha256 differs" in result.stderr and "re-exporting" in result.stderr
    assert list(read_results(tmp_path / "c.csv")["status"]) == ["ok"]


def _cached_artifact_replaced(root: Path, backend_name: str, write: object) -> None:
    """Export the tiny model for a backend, then replace its artifact with `write(path)`
    and record the new file's hash, so the cache serves it as intact."""
    case = Case(model="tiny", variant="fp32", backend=backend_name, threads=1, seq_len=24)
    assert Exporter(root, {"tiny": RegisteredSource(get_entry("tiny"))}, 300).ensure(
        case, root.parent) == {}
    manifest = json.loads((root / MANIFEST).read_text())
    entry = next(a for a in manifest["artifacts"] if a["backend"] == backend_name)
    write(root / entry["artifact"])  # type: ignore[operator]
    for item in entry["files"]:
        item["sha256"] = file_sha256(root / item["path"])
        item["bytes"] = (root / item["path"]).stat().st_size
    (root / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.slow
def test_runtime_that_rejects_its_artifact_is_a_failed_row(tmp_path: Path) -> None:
    """An artifact whose manifest matches but that the runtime cannot load: the case is
    failed with the cause, the other backend still measures, exit code 1."""
    root = tmp_path / "bundle"
    _cached_artifact_replaced(root, "onnxruntime",
                              lambda path: path.write_bytes(b"this is not an onnx model"))
    out = tmp_path / "d.csv"
    result = run_cli("run", "--backends", "onnxruntime,torch", *QUICK, "--out", str(out),
                     "--bundle-dir", str(root))
    assert result.returncode == 1
    frame = read_results(out)
    assert list(frame["status"]) == ["failed", "ok"]
    assert "onnxruntime cannot load" in frame.loc[0, "reason"]
    assert "1 case(s) failed, invalid or skipped by a fault" in result.stderr
    assert out.with_suffix(".log").exists()


def test_hanging_case_is_killed_and_recorded(tmp_path: Path) -> None:
    out = tmp_path / "e.csv"
    result = run_cli("run", "--backends", "torch", *QUICK, "--out", str(out),
                     "--bundle-dir", str(tmp_path / "bundle"), "--case-timeout", "0.5")
    assert result.returncode == 1
    frame = read_results(out)
    assert frame.loc[0, "status"] == "failed"
    assert frame.loc[0, "reason"] == "export: timeout after 0.5 s (--case-timeout)"


def test_backends_lists_every_backend_with_version() -> None:
    result = run_cli("backends")
    assert result.returncode == 0
    for name in ("torch", "onnxruntime"):
        line = next(line for line in result.stdout.splitlines() if f" {name} " in line)
        assert get_backend(name).version() in line


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("run", "--backends", "tensorrt"), "unknown backend 'tensorrt'; choose from: torch"),
    (("run", "--model", "transformer"), "unknown model 'transformer'; choose from: lstm"),
    (("run", "--profile", "slow"), "unknown profile 'slow'; choose from: quick"),
    (("run", "--threads", "0"), "0 is not a whole number from 1 to 1,024"),
    (("run", "--threads", "99999999999"), "99999999999 is not a whole number from 1 to 1,024"),
    (("run", "--threads", "two"), "'two' is not a whole number"),
    (("run", "--case-timeout", "-3"), "-3 must be a number of seconds above 0 and at most 604800"),
    (("run", "--case-timeout", "inf"), "inf must be a number of seconds above 0 and at most 604800"),
    (("run", "--atol", "nan"), "tolerances must be finite numbers >= 0"),
    (("run", "--out", "/proc/no/such/dir/r.csv"), "cannot write --out"),
    (("run", "--tune", "graph_level"), "is not BACKEND.KEY=VALUE"),
    (("run", "--out", "r.json"), "--out r.json is not a .csv file path"),
    (("run", "--out", "tests/data.csv", "--dataset", "tests/data.csv", "--column", "load"),
     "would overwrite the input tests/data.csv"),
    (("show", "/no/such/results.csv"), "no such file"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple, message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_show_refuses_a_file_that_is_not_results(tmp_path: Path) -> None:
    bogus = tmp_path / "x.csv"
    bogus.write_text("name,value\nfoo,1\n")
    result = run_cli("show", str(bogus))
    assert result.returncode == 2
    assert "not a results CSV" in result.stderr


def test_help_explains_every_run_option() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for option in ("--backends", "--model", "--variants", "--threads", "--profile", "--out",
                   "--bundle-dir", "--case-timeout", "--tune", "--power", "--energy-seconds",
                   "--idle-seconds", "--cooldown", "--max-start-temp", "--cpu-freq",
                   "--governor"):
        assert option in result.stdout


def _rows_written(csv: Path) -> int:
    """Complete data lines in a results CSV being appended to (0 while it is empty or only
    its header is there): the writer appends each row with one newline-terminated write."""
    try:
        text = csv.read_text()
    except FileNotFoundError:
        return 0
    return max(text.count("\n") - 1, 0)


def _wait_for(condition: object, what: str, timeout_s: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_keeps_the_rows_already_measured(tmp_path: Path, signal_name: str) -> None:
    """SIGINT (or SIGTERM) while the second case is measuring: exit 130, the first case's
    row is on disk, and none of the processes that were measuring (manager and workers)
    survives. No race: the second case's worker hangs until it is killed, so the signal
    always lands while it measures; the harness starts with SIGINT's default disposition
    (a shell running the tests in the background would hand it down ignored)."""
    import signal

    import psutil

    out = tmp_path / "i.csv"
    proc = popen_harness("run", "--backends", "onnxruntime,torch", "--model",
                         "tests.byo_models:make_worker_hang", "--profile", "quick", "--out",
                         str(out), "--bundle-dir", str(tmp_path / "bundle"))
    parent = psutil.Process(proc.pid)

    def measuring_workers() -> list[psutil.Process]:
        found = []
        for child in parent.children(recursive=True):
            try:
                if "--worker" in child.cmdline():
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    def hanging(worker: psutil.Process) -> bool:
        """The worker has reached the hang (tests.byo_models marks it beside its job file):
        from then on it writes nothing, so only a kill can end it. (A worker still
        starting could die writing to the pipe of a harness that is gone, and so hide a
        harness that leaves its children behind.)"""
        try:
            return any(Path(arg).with_suffix(".hanging").exists() for arg in worker.cmdline()
                       if arg.endswith(".json"))
        except psutil.NoSuchProcess:
            return False

    _wait_for(lambda: _rows_written(out) == 1, "the first row")
    _wait_for(lambda: any(hanging(w) for w in measuring_workers()),
              "a worker of the second case hanging in the model")
    measuring = parent.children(recursive=True)
    assert measuring, "the second case had no child processes"
    proc.send_signal(getattr(signal, signal_name))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    frame = read_results(out)
    assert list(frame["backend"]) == ["onnxruntime"] and frame.loc[0, "status"] == "ok"
    _, alive = psutil.wait_procs(measuring, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive


@pytest.mark.slow
def test_a_hang_while_measuring_is_killed_and_named(tmp_path: Path) -> None:
    """A model that hangs inside the measuring worker: after --case-timeout the case's whole
    process group is killed (every process collected while it was measuring is gone), the
    row is `failed` saying the measurement timed out, and the next backend still measures."""
    import psutil

    out = tmp_path / "h.csv"
    proc = subprocess.Popen([sys.executable, "-m", "edge_rnn_harness", "run", "--backends",
                             "torch,onnxruntime", "--model", "tests.byo_models:make_worker_hang",
                             "--profile", "quick", "--case-timeout", "20", "--out", str(out),
                             "--bundle-dir", str(tmp_path / "bundle")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)

    def hanging_worker() -> bool:
        try:
            return any("--worker" in p.cmdline() for p in parent.children(recursive=True))
        except psutil.NoSuchProcess:
            return False

    _wait_for(hanging_worker, "the hanging worker")
    measuring = parent.children(recursive=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    frame = read_results(out)
    assert list(frame["status"]) == ["failed", "ok"]
    assert frame.loc[0, "reason"] == "timeout after 20 s while measuring (--case-timeout)"
    _, alive = psutil.wait_procs(measuring, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive


@pytest.mark.slow
def test_worker_segfault_is_a_failed_row_and_the_run_goes_on(tmp_path: Path) -> None:
    """A model whose forward pass segfaults inside the measuring worker: that case is
    `failed` naming the signal, the next backend still measures, exit code 1."""
    out = tmp_path / "s.csv"
    result = run_cli("run", "--backends", "torch,onnxruntime", "--model",
                     "tests.byo_models:make_worker_crash", "--profile", "quick", "--out",
                     str(out), "--bundle-dir", str(tmp_path / "bundle"))
    assert result.returncode == 1
    frame = read_results(out)
    assert list(frame["status"]) == ["failed", "ok"]
    assert frame.loc[0, "reason"] == "crashed: killed by SIGSEGV"


@pytest.mark.slow
def test_two_runs_with_one_out_do_not_mix(tmp_path: Path) -> None:
    """While one run writes r.csv, a second run with the same --out is refused in one line
    (exit 2) and the first run's rows are all there, under one run id. The first run is
    stopped (SIGSTOP) while the second tries, so it cannot have finished: no race."""
    import signal
    import time

    out = tmp_path / "r.csv"
    first = subprocess.Popen([sys.executable, "-m", "edge_rnn_harness", "run", "--backends",
                              "onnxruntime,torch", *QUICK, "--out", str(out), "--bundle-dir",
                              str(tmp_path / "bundle")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not out.exists() or not out.read_text():
        assert time.monotonic() < deadline and first.poll() is None, "no header written"
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # it holds the lock and cannot finish meanwhile
    try:
        second = run_cli("run", "--backends", "onnxruntime", *QUICK, "--out", str(out),
                         "--bundle-dir", str(tmp_path / "bundle2"))
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    assert "is being written by another harness process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    first.communicate(timeout=300)
    assert first.returncode == 0
    frame = read_results(out)
    assert list(frame["backend"]) == ["onnxruntime", "torch"] and frame["run_id"].nunique() == 1
