"""Bring your own model: ONNX files written by another tool (onnx.helper) with expected
outputs from an independent numpy implementation, and a PyTorch module via
module:callable. Every backend that returns wrong numbers must be `failed`, never `ok`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from edge_rnn_harness.core.results import read_results
from tests.conftest import run_cli
from tests.onnx_recurrent import CASES, build

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5  # fp32: atol 1e-5 + rtol 1e-5 x |reference|; outputs here are below 1
ONNX_BACKENDS = "onnxruntime,openvino,ncnn,tflite"


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, pd.DataFrame]:
    """Every onnx.helper recurrent case through the ONNX-capable backends, in one run."""
    tmp = tmp_path_factory.mktemp("onnx")
    paths = [build(case, tmp / case.name) for case in CASES]
    out = tmp / "r.csv"
    result = run_cli("run", "--model", ",".join(map(str, paths)), "--backends", ONNX_BACKENDS,
                     "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp / "bundle"))
    assert out.is_file(), result.stderr
    return result.returncode, read_results(out).set_index(["model", "backend"])


def test_onnxruntime_matches_the_independent_reference(recurrent_run: tuple) -> None:
    _, frame = recurrent_run
    for case in CASES:
        row = frame.loc[(case.name, "onnxruntime")]
        if case.layout == 1:  # ORT refuses batch-major recurrent ops with an error
            assert row["status"] == "failed" and "layout" in row["reason"]
            continue
        assert row["status"] == "ok", (case.name, row["reason"])
        assert row["max_abs_err"] <= TOLERANCE


def test_no_wrong_answer_is_ok(recurrent_run: tuple) -> None:
    exit_code, frame = recurrent_run
    assert exit_code == 1  # some backends fail on some of these models
    for (model, backend), row in frame.iterrows():
        assert row["status"] in ("ok", "failed", "unsupported"), (model, backend)
        if row["status"] == "ok":
            assert row["max_abs_err"] <= TOLERANCE, (model, backend)
        else:
            assert isinstance(row["reason"], str) and row["reason"], (model, backend)


def test_openvino_peephole_bug_is_caught_on_the_cell_state(recurrent_run: tuple) -> None:
    """OpenVINO ignores LSTM peepholes (STACK.md): a silent wrong answer the check catches,
    naming the output and the errors."""
    row = recurrent_run[1].loc[("lstm_peepholes", "openvino")]
    assert row["status"] == "failed"
    assert row["reason"].startswith("parity: output 'Y")
    assert "max_abs_err" in row["reason"] and "max_rel_err" in row["reason"]
    assert row["max_abs_err"] > 1e-3


def test_batch_major_layout_is_never_ok(recurrent_run: tuple) -> None:
    frame = recurrent_run[1]
    assert all(frame.loc[("lstm_batch_major", b), "status"] != "ok"
               for b in ("onnxruntime", "openvino", "ncnn"))


def test_tflite_is_unsupported_for_onnx_files(recurrent_run: tuple) -> None:
    row = recurrent_run[1].loc[("lstm_forward", "tflite")]
    assert row["status"] == "unsupported" and "cannot take an ONNX file" in row["reason"]


def _model_without_test_data(tmp_path: Path) -> Path:
    source = build(CASES[0], tmp_path / "built")
    lone = tmp_path / "lone"
    lone.mkdir()
    return Path(shutil.copy(source, lone / "lstm_plain.onnx"))


def test_inputs_from_npz_use_the_reference_evaluator(tmp_path: Path) -> None:
    model = _model_without_test_data(tmp_path)
    npz = tmp_path / "inputs.npz"
    np.savez(npz, X=np.random.default_rng(3).standard_normal((6, 1, 3)).astype(np.float32))
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", str(model), "--inputs", str(npz), "--backends",
                     "onnxruntime", "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    row = read_results(out).iloc[0]
    assert row["status"] == "ok" and row["max_abs_err"] <= TOLERANCE
    assert row["params"] == 3 * 20 + 5 * 20 + 40  # W, R and B initializers


def _dynamic_model(tmp_path: Path) -> Path:
    """Identity + Relu on an input with a dynamic first dimension."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    return path


def test_dynamic_dimension_needs_shape(tmp_path: Path) -> None:
    model = _dynamic_model(tmp_path)
    refused = run_cli("run", "--model", str(model), "--backends", "onnxruntime")
    assert refused.returncode == 2
    assert "input 'x' of dyn.onnx has dynamic dimensions ['n', 4]; give them with " \
           "--shape x=Nx4" in refused.stderr
    out = tmp_path / "r.csv"
    ran = run_cli("run", "--model", str(model), "--shape", "x=2x4", "--backends",
                  "onnxruntime", "--profile", "quick", "--out", str(out), "--bundle-dir",
                  str(tmp_path / "bundle"))
    assert ran.returncode == 0, ran.stderr
    assert read_results(out).iloc[0]["status"] == "ok"


def test_op_a_backend_lacks_is_a_failed_row_naming_it(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Det", ["a"], ["d"])], "det",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 3])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", str(path), "--backends", "onnxruntime,openvino,ncnn",
                     "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp_path / "bundle"))
    assert result.returncode == 1
    frame = read_results(out).set_index("backend")
    assert frame.loc["onnxruntime", "status"] == "ok"
    assert frame.loc["openvino", "status"] == "failed"
    assert "Det" in frame.loc["openvino", "reason"]
    assert frame.loc["ncnn", "status"] == "failed"
    assert "layer Det not exists" in frame.loc["ncnn", "reason"]


def test_tolerance_can_be_widened(tmp_path: Path) -> None:
    model = build(CASES[3], tmp_path / CASES[3].name)  # peepholes: OpenVINO is ~0.08 off
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", str(model), "--backends", "openvino", "--atol", "1",
                     "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    assert read_results(out).iloc[0]["status"] == "ok"


@pytest.mark.parametrize("make_args, message", [
    (lambda t: ("--model", str(t / "absent.onnx")), "no such file"),
    (lambda t: ("--model", str(_write(t / "bad.onnx", b"not a protobuf at all"))),
     "not a valid ONNX model"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--inputs",
                str(_npz(t / "i.npz", Y=np.zeros((6, 1, 3), np.float32)))),
     "has no array for input 'X' (it has: Y)"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--inputs",
                str(_npz(t / "i.npz", X=np.zeros((6, 1, 4), np.float32)))),
     "array 'X' has shape (6, 1, 4); the model takes (6, 1, 3)"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--shape", "Q=1x2"),
     "--shape names no input 'Q'"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--shape", "X=banana"),
     "is not NAME=DxDxD"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--shape", "X=99999999999x4"),
     "has 399,999,999,996 elements; at most 100,000,000 are allowed"),
    (lambda t: ("--model", str(_model_without_test_data(t)), "--inputs",
                str(_npz(t / "i.npz", X=np.zeros((6, 1, 3), np.complex64) + 1j))),
     "array 'X' is complex64; the model takes float32 and converting would lose"),
    (lambda t: ("--model", "tests.byo_models:not_a_model"),
     "must return (torch.nn.Module, example input)"),
    (lambda t: ("--model", "tests.no_such_module:make"), "cannot import it"),
    (lambda t: ("--model", "lstm", "--inputs", str(_npz(t / "i.npz", X=np.zeros(1)))),
     "--inputs and --shape apply to .onnx models only"),
])
def test_bad_model_input_is_one_line_and_exit_2(tmp_path: Path, make_args, message: str
                                                ) -> None:
    result = run_cli("run", *make_args(tmp_path), "--backends", "onnxruntime")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_pytorch_module_runs_through_every_backend(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", "tests.byo_models:make_model", "--backends", "all",
                     "--profile", "quick", "--out", str(out), "--bundle-dir",
                     str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    frame = read_results(out)
    assert list(frame["backend"]) == ["torch", "onnxruntime", "tflite", "openvino", "ncnn"]
    assert (frame["status"] == "ok").all(), frame[["backend", "reason"]]
    assert (frame["max_abs_err"] <= TOLERANCE).all()
    assert (frame["model"] == "tests.byo_models:make_model").all()
    assert (frame["params"] == 2674).all()
    assert frame["rmse"].isna().all()  # no dataset for a model brought as-is


def test_external_weights_are_part_of_the_identity(tmp_path: Path) -> None:
    """Changing an ONNX model's external weights file changes its identity, so a cached
    export is not reused with stale weights."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_rnn_harness.bundle.sources import OnnxSource

    weights = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [weights])
    path = tmp_path / "m.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    str(path), save_as_external_data=True, location="m.weights",
                    size_threshold=0)
    first = OnnxSource(path)
    assert first.external_data_files() == [(tmp_path / "m.weights").resolve()]
    before = first.identity()
    data = bytearray((tmp_path / "m.weights").read_bytes())
    data[0] ^= 0x01
    (tmp_path / "m.weights").write_bytes(bytes(data))
    assert OnnxSource(path).identity() != before
