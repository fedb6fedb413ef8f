"""A backend from another package, registered through the entry-point group and found
without touching src/: it runs through `harness run` and the conformance suite."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

PLUGIN_NAME = "ort-plugin"
#: a third party's module: a backend that reuses ONNX Runtime under its own name
PLUGIN_MODULE = '''"""A third party's backend for edge-rnn-harness (test plugin)."""

from edge_rnn_harness.backends import ort


class PluginBackend(ort.OrtBackend):
    """ONNX Runtime, registered by another package."""

    name = "ort-plugin"
    description = "ONNX Runtime through a plugin"
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose sys.path holds a plugin package with its entry point (a
    dist-info folder, as pip would install it)."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "harness_plugin_demo.py").write_text(PLUGIN_MODULE)
    info = folder / "harness_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-plugin-demo\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[edge_rnn_harness.backends]\n{PLUGIN_NAME} = harness_plugin_demo:PluginBackend\n")
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_a_plugin_backend_is_listed(plugin_env: dict[str, str]) -> None:
    result = run_cli("backends", env=plugin_env)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if PLUGIN_NAME in line)
    assert "available" in line


@pytest.mark.slow
def test_a_plugin_backend_runs_a_case(plugin_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "plugin.csv"
    result = run_cli("run", "--model", "tiny", "--backends", PLUGIN_NAME, "--profile", "quick",
                     "--out", str(out), "--bundle-dir", str(tmp_path / "bundle"),
                     "--no-accuracy", env=plugin_env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [(row["backend"], row["status"]) for row in rows] == [(PLUGIN_NAME, "ok")]
    assert float(row_value(rows[0], "latency_median_ms")) > 0
    assert float(row_value(rows[0], "max_abs_err")) <= 1e-5


def row_value(row: dict[str, str], column: str) -> str:
    """A column of a results row, failing with the columns there are if it is missing."""
    assert column in row, sorted(row)
    return row[column]


@pytest.mark.slow
def test_the_conformance_suite_runs_the_plugin(plugin_env: dict[str, str]) -> None:
    env = {**plugin_env, "HARNESS_TEST_BACKENDS": PLUGIN_NAME}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_conformance.py", "-k", PLUGIN_NAME],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and "failed" not in summary and "error" not in summary, summary
    assert int(passed.group(1)) >= 8, summary  # every per-backend conformance test ran


def test_a_broken_plugin_is_left_out_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    info = folder / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[edge_rnn_harness.backends]\nbroken = no_such_module:Backend\n")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    result = run_cli("backends", env=env)
    assert result.returncode == 0, result.stderr
    assert "backend plugin 'broken' (no_such_module:Backend) did not load" in result.stderr
    assert "onnxruntime" in result.stdout
