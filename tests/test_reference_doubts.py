"""Issue 15, classes 3 and 11: a reference computed by an evaluator can be wrong (onnx's
ReferenceEvaluator computes Softmax at opset 9 over the wrong axes), a reference may hold
NaN, and pnnx needs each input's element type and only the real inputs. Real runtimes on
tiny onnx.helper models; the CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from edge_rnn_harness.backends.base import Signature
from edge_rnn_harness.bundle.export import write_reference
from edge_rnn_harness.bundle.reader import load_second_opinion
from edge_rnn_harness.core.parity import (
    SecondOpinion,
    Tolerance,
    compare_outputs,
    non_finite_count,
    reference_dispute,
)
from edge_rnn_harness.core.results import read_results
from tests.conftest import run_cli

TOLERANCE = Tolerance(1e-5, 1e-5)


def _save(tmp_path: Path, name: str, nodes: list, inputs: list, outputs: list, opset: int,
          initializers: list | None = None, ir_version: int = 8) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _value(name: str, shape: list[int], kind: int = TensorProto.FLOAT) -> object:
    return helper.make_tensor_value_info(name, kind, shape)


def softmax_opset9(tmp_path: Path) -> Path:
    """Softmax(axis=1) at opset 9 on [1, 3, 4]: the input is flattened to [1, 12] first.
    onnx 1.23's ReferenceEvaluator normalises over axis 1 alone (0.79 off);
    onnxruntime and OpenVINO agree with each other."""
    return _save(tmp_path, "softmax9", [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
                 [_value("x", [1, 3, 4])], [_value("y", [1, 3, 4])], opset=9)


def sqrt_of_normal(tmp_path: Path) -> Path:
    """Sqrt of the seeded normal inputs: NaN in the reference where an input is negative."""
    return _save(tmp_path, "sqrtnan", [helper.make_node("Sqrt", ["x"], ["y"])],
                 [_value("x", [1, 2, 4])], [_value("y", [1, 2, 4])], opset=13)


def _run(tmp_path: Path, model: Path, backends: str) -> tuple[int, pd.DataFrame, str]:
    out = tmp_path / f"{model.stem}.csv"
    result = run_cli("run", "--model", str(model), "--backends", backends, "--profile",
                     "quick", "--out", str(out), "--bundle-dir", str(tmp_path / "bundle"))
    assert out.is_file(), result.stderr
    return result.returncode, read_results(out).set_index("backend"), result.stderr


@pytest.mark.slow
def test_runtimes_that_agree_against_a_wrong_evaluator_blame_the_reference(
        tmp_path: Path) -> None:
    code, frame, stderr = _run(tmp_path, softmax_opset9(tmp_path), "onnxruntime,openvino")
    assert code == 1  # nothing is ok: the row is invalid, not passed
    for backend in ("onnxruntime", "openvino"):
        row = frame.loc[backend]
        assert row["status"] == "invalid", row["reason"]
        assert row["reason"].startswith("reference disagrees: output 'y': the reference "
                                        "(onnx.reference.ReferenceEvaluator ")
        assert "onnxruntime" in row["reason"] and "differ by max_abs_err 0.789" in row["reason"]
        assert row["max_abs_err"] == pytest.approx(0.789, abs=1e-3)  # the error stays shown
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_runtime_that_misses_both_is_still_failed(tmp_path: Path) -> None:
    """ncnn does opset-9 Softmax over axis 1 alone too, and not as the evaluator does:
    it matches neither, so it is a runtime failure."""
    _, frame, _ = _run(tmp_path, softmax_opset9(tmp_path), "ncnn")
    row = frame.loc["ncnn"]
    assert row["status"] == "failed" and row["reason"].startswith("parity: output 'y'")


@pytest.mark.slow
def test_a_nan_reference_matched_by_the_runtimes_is_ok_and_said(tmp_path: Path) -> None:
    code, frame, _ = _run(tmp_path, sqrt_of_normal(tmp_path), "onnxruntime,openvino")
    assert code == 0
    for backend in ("onnxruntime", "openvino"):
        row = frame.loc[backend]
        assert row["status"] == "ok" and row["max_abs_err"] == 0.0
        assert row["reason"] == ("the reference's output 'y' has 2 NaN/inf element(s), each "
                                 "matched as an equal value")


def test_the_second_opinion_is_stored_only_when_it_disputes(tmp_path: Path) -> None:
    from edge_rnn_harness.bundle.sources.onnx_file import OnnxSource

    disputed = OnnxSource(softmax_opset9(tmp_path))
    _, windows = disputed.reference()
    opinion = disputed.second_opinion(windows)
    assert opinion is not None and list(opinion.outputs) == ["y"]
    assert opinion.by.startswith("onnxruntime ") and "optimizations off" in opinion.by
    write_reference(tmp_path / "reference.npz", windows, opinion)
    loaded = load_second_opinion(tmp_path / "reference.npz")
    assert loaded is not None and loaded.by == opinion.by
    assert loaded.reference_by == opinion.reference_by
    np.testing.assert_array_equal(loaded.outputs["y"], opinion.outputs["y"])
    agreed = OnnxSource(sqrt_of_normal(tmp_path))
    assert agreed.second_opinion(agreed.reference()[1]) is None
    write_reference(tmp_path / "plain.npz", agreed.reference()[1])
    assert load_second_opinion(tmp_path / "plain.npz") is None


def test_a_second_opinion_without_its_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reference.npz"
    np.savez(path, **{"in:x": np.zeros((1, 2)), "out:y": np.zeros((1, 2)),
                      "second:y": np.ones((1, 2)), "reference_by": np.zeros(1)})
    with pytest.raises(ValueError, match="needs the strings reference_by and second_by"):
        load_second_opinion(path)


@pytest.mark.parametrize("out, ref, within, abs_err", [
    ([np.nan, 1.0], [np.nan, 1.0], True, 0.0),          # NaN where the reference has NaN
    ([np.inf, -np.inf], [np.inf, -np.inf], True, 0.0),  # the same infinities
    ([np.nan, 1.0], [0.5, 1.0], False, np.inf),         # NaN for a number
    ([0.5, 1.0], [np.nan, 1.0], False, np.inf),         # a number for NaN
    ([-np.inf, 1.0], [np.inf, 1.0], False, np.inf),     # the other infinity
    ([np.nan, 1.0], [np.inf, 1.0], False, np.inf),      # NaN for an infinity
    ([np.nan, 1.5], [np.nan, 1.0], False, 0.5),         # matched NaN, a finite miss beside
    ([0.5, 1.0], [-np.inf, 1.0], False, np.inf),        # a number for minus infinity
])
def test_non_finite_elements_match_only_their_equal(out: list, ref: list, within: bool,
                                                    abs_err: float) -> None:
    result = compare_outputs({"y": np.array(out)}, {"y": np.array(ref)}, TOLERANCE)
    assert result.within is within
    assert result.max_abs_err == abs_err


def test_a_matched_nan_passes_a_purely_relative_tolerance() -> None:
    result = compare_outputs({"y": np.array([np.nan, 1.0])}, {"y": np.array([np.nan, 1.0])},
                             Tolerance(0.0, 0.1))
    assert result.within and result.max_abs_err == 0.0 and result.max_rel_err == 0.0


def test_non_finite_count_names_only_outputs_that_have_them() -> None:
    assert non_finite_count({"a": np.array([np.nan, np.inf, 1.0]),
                             "b": np.array([1.0, 2.0])}) == {"a": 2}


def _opinion(second: float) -> SecondOpinion:
    return SecondOpinion("evaluator 1", "runtime 2", {"y": np.array([second])})


@pytest.mark.parametrize("out, second, expected", [
    (2.0, 2.0, "matches"),   # misses the reference, matches the second opinion
    (3.0, 2.0, None),        # misses both: a runtime failure
    (1.0, 1.0, None),        # a "dispute" that does not differ from the reference
])
def test_reference_dispute_only_when_the_runtime_matches_the_second_opinion(
        out: float, second: float, expected: str | None) -> None:
    reason = reference_dispute({"y": np.array([out]), "z": np.array([0.0])},
                               {"y": np.array([1.0]), "z": np.array([0.0])},
                               _opinion(second), TOLERANCE)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(
            "reference disagrees: output 'y': the reference (evaluator 1) and runtime 2 "
            "differ by max_abs_err 1, and this runtime matches runtime 2 (max_abs_err 0)")


def test_reference_dispute_names_the_first_disputed_output() -> None:
    opinion = SecondOpinion("evaluator 1", "runtime 2", {"y": np.array([2.0]),
                                                         "z": np.array([5.0])})
    reason = reference_dispute({"y": np.array([2.0]), "z": np.array([5.0])},
                               {"y": np.array([1.0]), "z": np.array([0.0])}, opinion, TOLERANCE)
    assert reason is not None and reason.startswith("reference disagrees: output 'y':")


def test_a_second_opinion_cannot_be_changed_once_made() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        _opinion(2.0).by = "someone else"  # type: ignore[misc]


def test_reference_dispute_still_needs_the_undisputed_outputs_right() -> None:
    assert reference_dispute({"y": np.array([2.0]), "z": np.array([5.0])},
                             {"y": np.array([1.0]), "z": np.array([0.0])},
                             _opinion(2.0), TOLERANCE) is None


# class 11: what pnnx needs

def int_input_model(tmp_path: Path) -> Path:
    """y = x + float(n): a float32 and an int32 input."""
    return _save(tmp_path, "intin", [helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
                                     helper.make_node("Add", ["x", "nf"], ["y"])],
                 [_value("x", [1, 2, 3]), _value("n", [1, 2, 1], TensorProto.INT32)],
                 [_value("y", [1, 2, 3])], opset=13)


def weights_listed_as_inputs(tmp_path: Path) -> Path:
    """IR 3, as old model-zoo files: the weight is a graph input, listed before the data
    input (pnnx used to match the data's shape to the weight)."""
    weight = onnx.numpy_helper.from_array(
        np.arange(12, dtype=np.float32).reshape(3, 4) / 12, "W")
    return _save(tmp_path, "oldzoo", [helper.make_node("MatMul", ["x", "W"], ["y"])],
                 [_value("W", [3, 4]), _value("x", [1, 3])], [_value("y", [1, 4])], opset=8,
                 initializers=[weight], ir_version=3)


def test_pnnx_is_told_each_inputs_element_type(tmp_path: Path) -> None:
    from edge_rnn_harness.backends.ncnn_net import NcnnBackend, pnnx_input_shapes

    inputs = {"x": np.zeros((1, 2, 3), np.float32), "n": np.zeros((1, 2, 1), np.int32)}
    assert pnnx_input_shapes(inputs) == "[1,2,3]f32,[1,2,1]i32"
    out = tmp_path / "ncnn"
    out.mkdir()
    param = NcnnBackend.import_onnx(int_input_model(tmp_path), Signature(inputs, ("y",)),
                                    "fp32", out)
    assert param.is_file() and "Input" in param.read_text()  # pnnx converted it


def test_pnnx_refuses_an_element_type_it_cannot_name() -> None:
    from edge_rnn_harness.backends.ncnn_net import pnnx_input_shapes

    with pytest.raises(ValueError, match="input 's' is <U3, which pnnx cannot take"):
        pnnx_input_shapes({"s": np.array(["abc"])})


@pytest.mark.slow
def test_a_model_listing_its_weights_as_inputs_runs_on_ncnn(tmp_path: Path) -> None:
    code, frame, stderr = _run(tmp_path, weights_listed_as_inputs(tmp_path), "onnxruntime,ncnn")
    assert code == 0, stderr
    assert list(frame["status"]) == ["ok", "ok"]
    assert frame.loc["ncnn", "max_abs_err"] <= 1e-5
