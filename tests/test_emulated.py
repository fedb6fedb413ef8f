"""The device half on aarch64: the lstm bundle run by `tools/emulated_pi.py` on Debian
bookworm arm64 (the base of Raspberry Pi OS 64-bit) under QEMU user-mode emulation, against
the same bundle run here on x86_64.

Needs root, an enabled qemu-aarch64 handler in binfmt_misc and debootstrap (`.ci/run`
installs them when it runs as root); skipped with the reason otherwise. The arm64 root
and the wheels are cached (~/.cache/edge-rnn-harness-aarch64) and reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edge_rnn_harness.core.results import read_results
from tests.conftest import ROOT, run_cli

# building the arm64 root from nothing and running under QEMU takes longer than the
# suite's per-test limit
pytestmark = [pytest.mark.emulated, pytest.mark.slow, pytest.mark.timeout(3900)]

HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
RUN_ARGS = ("--backends", "all", "--profile", "quick", "--power", "none")
#: runtimes whose aarch64 wheels must load and match the reference under emulation
MUST_RUN = ("onnxruntime", "tflite", "ncnn")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot)"
    if not HANDLER.is_file() or "enabled" not in HANDLER.read_text():
        return f"no enabled qemu-aarch64 handler in binfmt_misc ({HANDLER})"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path, Path]:
    """(emulated rows, x86 results CSV, emulated results CSV) of the lstm bundle."""
    why_not = _why_not()
    if why_not:
        pytest.skip(why_not)
    tmp = tmp_path_factory.mktemp("emulated")
    bundle = tmp / "bundle"
    exported = run_cli("export", "--model", "lstm", "--backends", "all", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    x86 = tmp / "x86.csv"
    assert run_cli("run", "--bundle", str(bundle), *RUN_ARGS, "--out", str(x86)).returncode == 0
    arm = tmp / "arm.csv"
    emulated = subprocess.run([sys.executable, str(ROOT / "tools/emulated_pi.py"), "--bundle",
                               str(bundle), "--out", str(arm), "--", *RUN_ARGS],
                              capture_output=True, text=True, timeout=3600, check=False)
    assert arm.is_file(), emulated.stderr[-3000:]
    return read_results(arm).set_index("backend"), x86, arm


def test_every_runtime_has_a_row_from_aarch64(runs: tuple) -> None:
    """onnxruntime, LiteRT and ncnn load and match the reference; OpenVINO either does too
    or is `failed` with its crash named (its CPU plugin's JIT crashes under QEMU 7.2); torch
    is not in the device extra: skipped. No row is missing."""
    arm, _, _ = runs
    assert set(arm.index) == {"torch", "onnxruntime", "tflite", "openvino", "ncnn"}
    for backend in MUST_RUN:
        assert arm.loc[backend, "status"] == "ok", arm.loc[backend, "reason"]
        assert arm.loc[backend, "max_abs_err"] <= 1e-4
    openvino = arm.loc["openvino"]
    assert openvino["status"] == "ok" or (openvino["status"] == "failed"
                                          and "crashed" in openvino["reason"]), openvino["reason"]
    assert arm.loc["torch", "status"] == "skipped"


def test_rows_say_they_were_emulated(runs: tuple) -> None:
    arm, _, _ = runs
    measured = arm[arm["status"] == "ok"]
    assert set(measured["device"]) == {"qemu-aarch64 (emulated)"}
    assert all(kernel for kernel in measured["kernel"])


def test_accuracy_on_arm_equals_x86(runs: tuple) -> None:
    """The same test split through the same artifact gives the same RMSE on ARM code paths
    (to 1e-4 relative), per runtime."""
    arm, x86_csv, _ = runs
    x86 = read_results(x86_csv).set_index("backend")
    for backend in arm.index[arm["status"] == "ok"]:
        assert arm.loc[backend, "rmse"] == pytest.approx(x86.loc[backend, "rmse"], rel=1e-4)


def test_gate_refuses_an_emulated_row_against_x86(runs: tuple) -> None:
    _, x86, arm = runs
    gate = run_cli("gate", str(x86), str(arm), "--allow-mismatch")
    assert gate.returncode == 2
    assert "device mismatch" in gate.stdout + gate.stderr
