"""Recurrent ONNX models written directly with onnx.helper (not exported from our PyTorch
code), with expected outputs from an independent numpy implementation of the ONNX
operator definitions, saved in the ONNX test-data layout (test_data_set_0/input_K.pb,
output_K.pb beside the model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEQ, BATCH, INPUT, HIDDEN = 6, 1, 3, 5
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class RecurrentCase:
    """One ONNX recurrent node configuration."""

    name: str
    op: str
    direction: str = "forward"
    layout: int = 0
    peepholes: bool = False
    linear_before_reset: int = 0
    initial_h: bool = False
    attrs: dict = field(default_factory=dict)

    @property
    def num_dir(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


def _weights(case: RecurrentCase, rng: np.random.Generator) -> dict[str, np.ndarray]:
    g, d = GATES[case.op], case.num_dir
    arrays = {"W": rng.uniform(-0.6, 0.6, (d, g * HIDDEN, INPUT)),
              "R": rng.uniform(-0.6, 0.6, (d, g * HIDDEN, HIDDEN)),
              "B": rng.uniform(-0.3, 0.3, (d, 2 * g * HIDDEN))}
    if case.peepholes:
        arrays["P"] = rng.uniform(-0.5, 0.5, (d, 3 * HIDDEN))
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def _cell(case: RecurrentCase, x: np.ndarray, h: np.ndarray, c: np.ndarray, w: dict,
          d: int) -> tuple[np.ndarray, np.ndarray]:
    """One time step of direction d, in float64, per the ONNX operator definitions."""
    W, R = w["W"][d].astype(np.float64), w["R"][d].astype(np.float64)
    g = GATES[case.op]
    wb, rb = np.split(w["B"][d].astype(np.float64), 2)
    if case.op == "RNN":
        return np.tanh(x @ W.T + h @ R.T + wb + rb), c
    if case.op == "GRU":
        Wz, Wr, Wh = np.split(W, 3)
        Rz, Rr, Rh = np.split(R, 3)
        wbz, wbr, wbh = np.split(wb, 3)
        rbz, rbr, rbh = np.split(rb, 3)
        z = sigmoid(x @ Wz.T + h @ Rz.T + wbz + rbz)
        r = sigmoid(x @ Wr.T + h @ Rr.T + wbr + rbr)
        if case.linear_before_reset:
            hh = np.tanh(x @ Wh.T + r * (h @ Rh.T + rbh) + wbh)
        else:
            hh = np.tanh(x @ Wh.T + (r * h) @ Rh.T + rbh + wbh)
        return (1 - z) * hh + z * h, c
    Wi, Wo, Wf, Wc = np.split(W, g)
    Ri, Ro, Rf, Rc = np.split(R, g)
    wbi, wbo, wbf, wbc = np.split(wb, g)
    rbi, rbo, rbf, rbc = np.split(rb, g)
    pi, po, pf = (np.split(w["P"][d].astype(np.float64), 3) if case.peepholes
                  else (0.0, 0.0, 0.0))
    i = sigmoid(x @ Wi.T + h @ Ri.T + pi * c + wbi + rbi)
    f = sigmoid(x @ Wf.T + h @ Rf.T + pf * c + wbf + rbf)
    cc = np.tanh(x @ Wc.T + h @ Rc.T + wbc + rbc)
    c_new = f * c + i * cc
    o = sigmoid(x @ Wo.T + h @ Ro.T + po * c_new + wbo + rbo)
    return o * np.tanh(c_new), c_new


def reference(case: RecurrentCase, x: np.ndarray, w: dict,
              h0: np.ndarray | None) -> dict[str, np.ndarray]:
    """Y and Y_h (and Y_c for LSTM) for time-major x [seq, batch, input], then laid out as
    the node's `layout` says."""
    xs = x.astype(np.float64)
    y = np.zeros((SEQ, case.num_dir, BATCH, HIDDEN))
    y_h = np.zeros((case.num_dir, BATCH, HIDDEN))
    y_c = np.zeros((case.num_dir, BATCH, HIDDEN))
    for d in range(case.num_dir):
        reverse = case.direction == "reverse" or d == 1
        h = np.zeros((BATCH, HIDDEN)) if h0 is None else h0[d].astype(np.float64)
        c = np.zeros((BATCH, HIDDEN))
        for t in (reversed(range(SEQ)) if reverse else range(SEQ)):
            h, c = _cell(case, xs[t], h, c, w, d)
            y[t, d] = h
        y_h[d], y_c[d] = h, c
    if case.layout == 1:
        y, y_h, y_c = y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
    outputs = {"Y": y, "Y_h": y_h}
    if case.op == "LSTM":
        outputs["Y_c"] = y_c
    return {k: v.astype(np.float32) for k, v in outputs.items()}


def build(case: RecurrentCase, folder: Path, seed: int = 0) -> Path:
    """Write <folder>/<name>.onnx and <folder>/test_data_set_0 with inputs and expected
    outputs; returns the model path."""
    rng = np.random.default_rng(seed)
    w = _weights(case, rng)
    x_tm = rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    h0 = rng.standard_normal((case.num_dir, BATCH, HIDDEN)).astype(np.float32) \
        if case.initial_h else None
    x = x_tm.transpose(1, 0, 2).copy() if case.layout == 1 else x_tm
    inputs = {"X": x}
    node_inputs = ["X", "W", "R", "B"]
    if case.initial_h:
        inputs["initial_h"] = h0.transpose(1, 0, 2).copy() if case.layout == 1 else h0
        node_inputs += ["", "initial_h"]
    if case.peepholes:
        node_inputs += [""] * (7 - len(node_inputs)) + ["P"]
    expected = reference(case, x_tm, w, h0)
    attrs = dict(hidden_size=HIDDEN, direction=case.direction, **case.attrs)
    if case.layout:
        attrs["layout"] = case.layout
    if case.op == "GRU":
        attrs["linear_before_reset"] = case.linear_before_reset
    node = helper.make_node(case.op, node_inputs, list(expected), **attrs)
    graph = helper.make_graph(
        [node], case.name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
         for n, a in expected.items()],
        initializer=[numpy_helper.from_array(a, n) for n, a in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="onnx.helper (test)")
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.name}.onnx"
    onnx.save(model, str(path))
    data = folder / "test_data_set_0"
    data.mkdir(exist_ok=True)
    for k, (n, a) in enumerate(inputs.items()):
        (data / f"input_{k}.pb").write_bytes(numpy_helper.from_array(a, n).SerializeToString())
    for k, (n, a) in enumerate(expected.items()):
        (data / f"output_{k}.pb").write_bytes(numpy_helper.from_array(a, n).SerializeToString())
    return path


CASES = [
    RecurrentCase("lstm_forward", "LSTM"),
    RecurrentCase("lstm_reverse", "LSTM", direction="reverse"),
    RecurrentCase("lstm_bidirectional_h0", "LSTM", direction="bidirectional", initial_h=True),
    RecurrentCase("lstm_peepholes", "LSTM", peepholes=True),
    RecurrentCase("gru_forward", "GRU"),
    RecurrentCase("gru_linear_before_reset", "GRU", linear_before_reset=1),
    RecurrentCase("gru_bidirectional", "GRU", direction="bidirectional"),
    RecurrentCase("rnn_forward_h0", "RNN", initial_h=True),
    RecurrentCase("rnn_reverse", "RNN", direction="reverse"),
    RecurrentCase("lstm_batch_major", "LSTM", layout=1),
]
