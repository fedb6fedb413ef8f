"""Shared fixtures: a bundle folder exported once per session, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyperf
import pytest

from edge_rnn_harness.backends.base import Backend
from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.bundle.export import export_artifact
from edge_rnn_harness.bundle.sources import ModelSource, RegisteredSource
from edge_rnn_harness.core.results import ResultsWriter, new_row
from edge_rnn_harness.models.registry import ModelEntry, get_entry
from edge_rnn_harness.models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
#: one small model per recurrent cell: the registered "tiny" LSTM, and GRU/RNN twins
TINY_MODELS = {
    "lstm": RegisteredSource(get_entry("tiny")),
    "gru": RegisteredSource(ModelEntry("tiny-gru", ModelSpec(cell="gru", hidden_size=8),
                                       "test GRU")),
    "rnn": RegisteredSource(ModelEntry("tiny-rnn", ModelSpec(cell="rnn", hidden_size=8),
                                       "test RNN")),
}


@dataclass
class Exported:
    """Artifacts exported in-process (no manifest): (model, backend) -> (artifact, reference)."""

    root: Path
    paths: dict[tuple[str, str], tuple[Path, Path]] = field(default_factory=dict)

    def add(self, source: ModelSource, backend: type[Backend]) -> Path:
        """Export `source` for `backend` (fp32) under root; the artifact's path."""
        result = export_artifact(self.root, source, backend, "fp32")
        self.paths[(source.name, backend.name)] = (
            self.root / result["artifact"]["artifact"],
            self.root / result["model"]["reference"]["path"])
        return self.paths[(source.name, backend.name)][0]

    def artifact(self, source: ModelSource, backend: type[Backend]) -> Path:
        """The exported file the runtime opens."""
        return self.paths[(source.name, backend.name)][0]

    def reference(self, source: ModelSource) -> Path:
        """The model's reference windows file."""
        return next(ref for (name, _), (_, ref) in self.paths.items() if name == source.name)


#: the backends the per-backend suites cover: every registered one, or the comma-separated
#: names in HARNESS_TEST_BACKENDS (how a plugin's own conformance run is kept to the plugin)
TEST_BACKENDS = sorted(name for name in BACKENDS if name in os.environ.get(
    "HARNESS_TEST_BACKENDS", name).split(","))


@pytest.fixture(scope="session")
def session_bundle(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Every tiny model exported for every available backend under test."""
    exported = Exported(tmp_path_factory.mktemp("bundle"))
    for backend in (BACKENDS[name] for name in TEST_BACKENDS):
        if backend.available() is None:
            for source in TINY_MODELS.values():
                exported.add(source, backend)
    return exported


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness export` of the tiny model for every backend, with its test split: the
    folder a device receives."""
    root = tmp_path_factory.mktemp("device") / "bundle"
    result = run_cli("export", "--model", "tiny", "--backends", "all", "--out", str(root))
    assert result.returncode == 0, result.stderr
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m edge_rnn_harness ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "edge_rnn_harness", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout, check=False, env=env)


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_harness(*args: str, **kwargs: object) -> subprocess.Popen:
    """Start `python -m edge_rnn_harness ARGS` with pipes, and with SIGINT at its default
    disposition: a shell running the tests in the background hands SIGINT down ignored,
    and a Ctrl-C test would then wait for a run that never sees the signal. (pytest runs
    no other thread here: pytest-timeout uses the signal method.)"""
    return subprocess.Popen([sys.executable, "-m", "edge_rnn_harness", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kwargs)  # noqa: PLW1509


#: backends of the synthetic runs below
SYNTHETIC_BACKENDS = ("onnxruntime", "openvino")


def _runs(seed: int, factor: float, processes: int = 6, values: int = 300) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    base_s = 25e-6 * factor
    return [list(base_s * rng.lognormal(0.0, 0.05, values) * rng.normal(1.0, 0.01))
            for _ in range(processes)]


def write_run(path: Path, seed: int, factor: float = 1.0,
              raw: dict[str, list[list[float]]] | None = None, **overrides: object) -> Path:
    """A synthetic results CSV + pyperf JSON: two lstm cases (onnxruntime, openvino) whose
    raw latencies are about 25 us x factor (or `raw[backend]`: per process, seconds);
    `overrides[backend]` replaces row fields."""
    writer = ResultsWriter(path)
    benchmarks = []
    for index, backend in enumerate(SYNTHETIC_BACKENDS):
        runs = (raw or {}).get(backend) or _runs(seed * 10 + index, factor)
        values_ms = np.concatenate(runs) * 1e3
        fields = dict(run_id=f"r{seed}", model="lstm", variant="fp32", backend=backend,
                      backend_version="1.0", scenario="single_stream", threads=1, batch=1,
                      seq_len=24, status="ok", settings='{"threads": 1}', device="box",
                      cpu="cpu", cores=2, latency_median_ms=float(np.median(values_ms)),
                      latency_p90_ms=float(np.percentile(values_ms, 90)), peak_rss_mb=68.0,
                      artifact_bytes=76279, rmse=0.0596, throttled=False)
        fields.update(overrides.get(backend, {}))  # type: ignore[arg-type]
        writer.append(new_row(**fields))
        name = f"lstm/fp32/{backend}/t1/b1"
        benchmarks.append(pyperf.Benchmark([
            pyperf.Run(values, warmups=None, metadata={"name": name, "unit": "second",
                                                       "loops": 1}, collect_metadata=False)
            for values in runs]))
    writer.close()
    pyperf.BenchmarkSuite(benchmarks).dump(str(path.with_suffix(".json")), replace=True)
    return path


def write_rows(path: Path, *rows: dict) -> Path:
    """A results CSV holding `rows` (new_row dicts), written and closed."""
    writer = ResultsWriter(path)
    for row in rows:
        writer.append(row)
    writer.close()
    return path


def relu_onnx(path: Path) -> Path:
    """A one-node ONNX model, y = Relu(x) with x float32 [1, 3], saved at `path`: the
    smallest valid model for tests of everything around the model."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A tmpfs of a given size (KiB) mounted under tmp_path: a disk that fills up. Needs
    root (CI runs as root); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size_kib: int) -> Path:
        folder = tmp_path / f"disk{size_kib}k"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                               str(folder)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)  # a file may be open


#: the machine-dependent branches the tests took here (which answer this CPU gave), printed
#: at the end of the run so a log from another machine shows where the two differ
MACHINE_BRANCHES: list[str] = []


@pytest.fixture
def machine_branch(request: pytest.FixtureRequest) -> object:
    """Record, for the end-of-run summary, a branch a test took because of this machine
    (e.g. "openvino fp16: unsupported: no FP16 capability"): call it with the text."""
    def record(text: str) -> None:
        MACHINE_BRANCHES.append(f"{request.node.nodeid}: {text}")
    return record


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Print the machine-dependent branches the tests took."""
    if MACHINE_BRANCHES:
        terminalreporter.section("machine-dependent branches taken")  # type: ignore[attr-defined]
        for line in dict.fromkeys(MACHINE_BRANCHES):
            terminalreporter.write_line(line)  # type: ignore[attr-defined]
