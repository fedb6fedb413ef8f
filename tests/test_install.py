"""How a device gets the harness: the wheel, installed non-editable with only the runtimes
(or only tflite-runtime with numpy<2), runs a bundle from a folder that has packages of
its own named `backends`, `models` and `harness`; and the Raspberry Pi OS install resolves
to wheels only. These tests install from the package index and are skipped, saying so,
where it cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_rnn_harness.core.results import read_results
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

#: Raspberry Pi OS 64-bit (bookworm): aarch64, CPython 3.11, glibc 2.36. pip does not
#: widen an explicit --platform to older manylinux tags, so every one is listed.
PI_PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)] + \
    ["manylinux2014_aarch64"]
_OFFLINE_SIGNS = ("Failed to establish a new connection", "Network is unreachable",
                  "Temporary failure in name resolution", "ConnectionError",
                  "Could not fetch URL", "No matching distribution found for pyperf")


def _pip(*args: str, python: str = sys.executable, timeout: float = 900
         ) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _skip_if_offline(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0 and any(sign in result.stdout + result.stderr
                                      for sign in _OFFLINE_SIGNS):
        pytest.skip("the package index cannot be reached: " +
                    (result.stderr.strip().splitlines() or ["?"])[-1])


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The harness built as a wheel, as a device installs it."""
    out = tmp_path_factory.mktemp("wheel")
    result = _pip("wheel", "--no-deps", "--quiet", str(ROOT), "-w", str(out))
    _skip_if_offline(result)
    assert result.returncode == 0, result.stderr
    return next(out.glob("edge_rnn_harness-*.whl"))


def _venv(folder: Path, *requirements: str) -> Path:
    """A fresh virtualenv with `requirements` installed; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    result = _pip("install", "--quiet", *requirements, python=str(python))
    _skip_if_offline(result)
    assert result.returncode == 0, result.stderr[-2000:]
    return python


#: top-level names a user's project folder may hold that the harness's children import:
#: a child started without -P would import these from the working folder and fail
SHADOWING_NAMES = ("edge_rnn_harness", "numpy", "pyperf", "onnxruntime", "openvino", "ncnn",
                   "backends", "models", "harness")


def _shadowing_folder(tmp_path: Path, python: Path) -> Path:
    """A user's project folder holding packages named like what the harness imports; checked
    to shadow them for a `python -m` started there, and not for one started with -P."""
    folder = tmp_path / "project"
    for name in SHADOWING_NAMES:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text("raise ImportError('the user package')\n")
    probe = [str(python), "-m", "edge_rnn_harness", "--version"]
    assert subprocess.run(probe, cwd=folder, capture_output=True, check=False).returncode != 0
    assert subprocess.run([probe[0], "-P", *probe[1:]], cwd=folder, capture_output=True,
                          check=False).returncode == 0
    return folder


def test_pi_install_resolves_to_wheels_only(wheel: Path, tmp_path: Path) -> None:
    platforms = [arg for plat in PI_PLATFORMS for arg in ("--platform", plat)]
    report = tmp_path / "report.json"
    result = _pip("install", "--dry-run", "--ignore-installed", "--report", str(report),
                  "--only-binary=:all:", "--python-version", "3.11", "--implementation",
                  "cp", *platforms, "--target", str(tmp_path / "t"), f"{wheel}[device]")
    _skip_if_offline(result)
    assert result.returncode == 0, result.stderr[-2000:]
    installed = {item["metadata"]["name"].lower(): item["download_info"]["url"].rsplit("/")[-1]
                 for item in json.loads(report.read_text())["install"]}
    for runtime in ("onnxruntime", "ai-edge-litert", "openvino", "ncnn", "numpy"):
        assert runtime in installed, sorted(installed)
    for name, filename in installed.items():
        assert filename.endswith(".whl"), f"{name} would be built from {filename}"
        assert "none-any" in filename or "aarch64" in filename, filename
    assert "torch" not in installed and "onnx" not in installed


def test_device_only_wheel_runs_a_bundle_from_a_shadowing_folder(
        wheel: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", f"{wheel}[device]")
    where = subprocess.run([str(python), "-c", "import edge_rnn_harness as h; print(h.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert str(tmp_path / "venv") in where  # the installed wheel, not this checkout
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True,
                          check=False).returncode != 0
    out = tmp_path / "device.csv"
    result = subprocess.run([str(python.parent / "harness"), "run", "--bundle",
                             str(tiny_bundle), "--backends", "all", "--profile", "quick",
                             "--out", str(out)], cwd=_shadowing_folder(tmp_path, python),
                            capture_output=True, text=True, timeout=600, check=False,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    frame = read_results(out).set_index("backend")
    assert frame.loc["torch", "status"] == "skipped"
    assert "torch is not installed" in frame.loc["torch", "reason"]
    for backend in ("onnxruntime", "tflite", "openvino", "ncnn"):
        assert frame.loc[backend, "status"] == "ok", frame.loc[backend, "reason"]
        assert frame.loc[backend, "rmse"] > 0


def test_tflite_runtime_with_numpy_1_runs_a_bundle(wheel: Path, tiny_bundle: Path,
                                                   tmp_path: Path) -> None:
    """Many boards have tflite-runtime (frozen at 2.14, numpy<2) instead of ai-edge-litert."""
    python = _venv(tmp_path / "venv", str(wheel), "tflite-runtime", "numpy<2")
    out = tmp_path / "tflite.csv"
    result = subprocess.run([str(python.parent / "harness"), "run", "--bundle",
                             str(tiny_bundle), "--backends", "tflite", "--profile", "quick",
                             "--out", str(out)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    row = read_results(out).iloc[0]
    assert row["status"] == "ok"
    assert json.loads(row["settings"])["interpreter"] == "tflite-runtime"
    assert row["backend_version"].startswith("2.14")
    numpy_version = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"],
                                   capture_output=True, text=True, check=True).stdout
    assert numpy_version.startswith("1.")
    assert row["rmse"] > 0 and row["max_abs_err"] <= 1e-5
