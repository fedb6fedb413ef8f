"""Hostile or nonsensical input through the real CLI: one line on stderr, exit 2, before
any work, never a traceback (a part of issue 15's classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pyperf
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_rnn_harness.analysis.compare import bench_name
from edge_rnn_harness.core.results import read_results
from tests.conftest import relu_onnx, run_cli


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _no_input_model(tmp_path: Path) -> Path:
    """An ONNX graph whose only input is an initializer: nothing to feed."""
    weight = numpy_helper.from_array(np.ones((1, 3), np.float32), "c")
    graph = helper.make_graph([helper.make_node("Relu", ["c"], ["y"])], "noinput", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "noinput.onnx"
    onnx.save(model, str(path))
    return path


def _relu_model(tmp_path: Path, name: str = "relu") -> Path:
    return relu_onnx(tmp_path / f"{name}.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("make_args, message", [
    (lambda t: ("show", str(t)), "not a readable file (Is a directory)"),
    (lambda t: ("report", str(t), "--out", str(t / "rep")), "not a readable file"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset", str(t), "--column", "x"),
     "not a regular file (a folder or device)"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset", "/dev/zero", "--column", "x"),
     "--dataset /dev/zero: not a regular file"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "big.csv", "load\n1\n1e308\n")), "--column", "load"),
     "has '1e+308' at data row 2: not a finite float32 number"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "inf.csv", "load\n1\n-inf\n")), "--column", "load"),
     "has '-inf' at data row 2: not a finite float32 number"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "dup.csv", "t,load\n2020-01-01 00:00,1\n2020-01-01 00:00,2\n")),
                "--column", "load", "--time-column", "t"),
     "'t' repeats the time '2020-01-01 00:00' at data row 2"),
    (lambda t: ("train", "--model", "lstm", "--out", str(_write(t, "file", ""))),
     "harness train: cannot write --out"),
    (lambda t: ("run", "--weights-dir", str(t / "nowhere")), "weights"),
    (lambda t: ("run", "--model", str(_no_input_model(t)), "--backends", "onnxruntime"),
     "noinput.onnx: the graph has no inputs (its inputs are all initializers or absent)"),
    (lambda t: ("run", "--model", str(_relu_model(t)), "--backends", "onnxruntime",
                "--bundle-dir", str(_write(t, "afile", "x") / "bundle")),
     "harness run: cannot write --bundle-dir"),
    (lambda t: ("gate", "a.csv", "b.csv", "--summary", ""), "'' is not a file path"),
    (lambda t: ("run", "--case-timeout", "1e300"),
     "--case-timeout: 1e300 must be a number of seconds above 0 and at most 604800"),
    (lambda t: ("run", "--model", "lstm", "--seq-len", "8760", "--batch", "4096"),
     "lstm at --seq-len 8760 with --batch 4096 needs about 39.6 GiB"),
    (lambda t: ("export", "--model", "lstm", "--seq-len", "8760", "--batch", "512", "--out",
                str(t / "b")), "over the 2 GiB limit; lower --seq-len or --batch"),
    (lambda t: ("run", "--model", str(_relu_model(t)), "--inputs", str(t / "absent.npz"),
                "--backends", "onnxruntime"),
     "absent.npz: not a readable numpy .npz (no such file)"),
    (lambda t: ("run", "--progress-file", str(t)), "is a folder; give a file path"),
    (lambda t: ("tune", "--backend", "onnxruntime", "--write", "/proc/absent/t.toml"),
     "harness tune: cannot write --write /proc/absent/t.toml (No such file or directory)"),
    (lambda t: ("tune", "--backend", "onnxruntime", "--out", str(_write(t, "f", "x"))),
     "harness tune: cannot write --out"),
    (lambda t: ("run", "--model", str(_relu_model(t)), "--inputs",
                str(_write(t, "zip.npz", "PK\x03\x04")), "--backends", "onnxruntime"),
     "not a readable numpy .npz"),
    # the user's callable runs in a probe child: its failures are one line, exit 2
    (lambda t: ("run", "--model", "tests.byo_models:make_raising"),
     ("--model tests.byo_models:make_raising: calling it raised RuntimeError: no weights in "
     "this folder")),
    (lambda t: ("run", "--model", "tests.byo_models:make_exiting"),
     "--model tests.byo_models:make_exiting: it called sys.exit(7)"),
    (lambda t: ("run", "--model", "tests.byo_models:make_sleepy", "--case-timeout", "5"),
     ("--model tests.byo_models:make_sleepy: timeout after 5 s while importing and calling it "
     "(--case-timeout)")),
    (lambda t: ("export", "--model", "tests.byo_models:make_sleepy", "--case-timeout", "5",
                "--out", str(t / "b")), "timeout after 5 s while importing and calling it"),
])
def test_bad_input_is_refused_in_one_line(tmp_path: Path, make_args: object,
                                          message: str) -> None:
    out = tmp_path / "r.csv"
    args = make_args(tmp_path)  # type: ignore[operator]
    result = run_cli(*args, *(("--out", str(out)) if args[0] == "run" else ()), timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("size_kib", [4, 12])
def test_a_full_disk_keeps_what_was_written_and_says_so(tmp_path: Path, small_disk: object,
                                                        size_kib: int) -> None:
    """4 KiB holds the CSV's header only; 12 KiB the first case's row and JSON, then the
    second case's writes fail. Either way: one line naming the error, exit 1, no
    traceback, no empty or temporary file left, and what is there is readable."""
    disk = small_disk(size_kib)  # type: ignore[operator]
    models = ",".join(str(_relu_model(tmp_path, name)) for name in ("relu", "relu2"))
    result = run_cli("run", "--model", models, "--backends", "onnxruntime", "--profile",
                     "quick", "--out", str(disk / "r.csv"), "--bundle-dir",
                     str(tmp_path / "cache"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    files = sorted(disk.iterdir())
    assert all(path.stat().st_size > 0 and not path.name.startswith(".") for path in files)
    rows = read_results(disk / "r.csv")  # whole rows only
    kept = f"the {len(rows)} row(s) measured so far are in {disk / 'r.csv'}" if len(rows) \
        else f"no row was written to {disk / 'r.csv'}"
    assert (f"harness run: writing the results failed (No space left on device); "
            f"{kept}") in " ".join(result.stderr.split())
    assert set(rows["status"]) <= {"ok"}
    if len(rows):  # every row's values are in the JSON (written first, atomically)
        suite = pyperf.BenchmarkSuite.load(str(disk / "r.json"))
        names = set(suite.get_benchmark_names())
        assert all(bench_name(row) in names for row in rows.to_dict("records"))


def test_a_failed_write_names_the_file_that_failed(tiny_bundle: Path, tmp_path: Path) -> None:
    """A progress file on a full disk: the message names it (not the results) and says
    whether any row reached the results file."""
    out = tmp_path / "r.csv"
    result = run_cli("run", "--bundle", str(tiny_bundle), "--backends", "onnxruntime",
                     "--profile", "quick", "--power", "none", "--progress-file", "/dev/full",
                     "--out", str(out))
    assert result.returncode == 1, result.stderr
    assert (f"writing the progress file /dev/full failed (No space left on device); no row "
            f"was written to {out}") in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
