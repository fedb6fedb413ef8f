"""The package's public face: what scripts and plugins use, documented, imported lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edge_rnn_harness
from tests.conftest import write_run


def test_every_public_name_is_there_and_documented() -> None:
    for name in edge_rnn_harness.__all__:
        value = getattr(edge_rnn_harness, name)
        assert name == "__version__" or (getattr(value, "__doc__", None) or name.isupper()), name
    assert sorted(dir(edge_rnn_harness)) == sorted(edge_rnn_harness.__all__)
    assert set(edge_rnn_harness.__all__) == {"__version__", *edge_rnn_harness._PUBLIC}


def test_importing_the_package_imports_nothing_heavy() -> None:
    code = ("import sys, edge_rnn_harness; "
            "print(sorted(m for m in ('pandas', 'rich', 'numpy', 'onnxruntime') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_a_script_reads_results_through_the_public_face(tmp_path: Path) -> None:
    from edge_rnn_harness import SCHEMA_VERSION, read_results, results_columns

    frame = read_results(write_run(tmp_path / "r.csv", seed=1))
    assert list(frame.columns) == list(results_columns())
    assert list(frame["schema_version"]) == [SCHEMA_VERSION] * 2
    assert list(frame["backend"]) == ["onnxruntime", "openvino"]
    assert list(frame["rmse"]) == [0.0596, 0.0596]
