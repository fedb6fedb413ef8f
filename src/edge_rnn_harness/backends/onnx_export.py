"""The one ONNX export of the PyTorch definition, shared by every ONNX-fed backend."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.backends.base import Backend, Calibration, Signature

ONNX_OPSET = 17
#: distributions that shape the ONNX file
ONNX_EXPORT_DEPS = ("torch", "onnx")


def export_onnx(model: Any, signature: Signature, path: Path) -> Path:
    """Export `model` to one self-contained ONNX file with the native recurrent op.

    Uses the legacy exporter (dynamo=False): it writes the weights inline and emits the
    ONNX LSTM/GRU/RNN op in time-major layout (layout=0), the layout every runtime here
    computes correctly. Tensors are named as in the signature.
    """
    import torch

    examples = tuple(torch.from_numpy(np.ascontiguousarray(a))
                     for a in signature.inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, examples, str(path), dynamo=False,
                          opset_version=ONNX_OPSET, input_names=list(signature.inputs),
                          output_names=list(signature.outputs))
    return path


#: ops that carry weights: what a quantizer is expected to touch
_WEIGHTED_OPS = frozenset({"LSTM", "GRU", "RNN", "Gemm", "MatMul", "Conv"})
#: onnxruntime's integer kernels, by the float op they replace
_INTEGER_OPS = {"DynamicQuantizeLSTM": "LSTM", "MatMulInteger": "MatMul",
                "ConvInteger": "Conv", "QLinearMatMul": "MatMul", "QLinearConv": "Conv",
                "QGemm": "Gemm", "MatMulIntegerToFloat": "MatMul"}
#: QDQ-format ops onnxruntime fuses into an integer kernel when their weight is dequantized
_QDQ_FUSED = frozenset({"Gemm", "MatMul", "Conv"})


def quantization_summary(path: Path) -> dict[str, str]:
    """Which weighted ops of a quantized ONNX file run in int8 and which stay float:
    {"int8_ops": "LSTM,MatMul", "float_ops": "LSTM"} ("none" where empty). An op counts as
    int8 when it is an integer kernel, or a Gemm/MatMul/Conv whose weight comes through a
    DequantizeLinear; recurrent ops are int8 only as DynamicQuantizeLSTM."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear"
                   for out in node.output}
    int8, floating = set(), set()
    for node in graph.node:
        if node.op_type in _INTEGER_OPS:
            int8.add(_INTEGER_OPS[node.op_type])
        elif node.op_type in _QDQ_FUSED and len(node.input) > 1 \
                and node.input[1] in dequantized:
            int8.add(node.op_type)
        elif node.op_type in _WEIGHTED_OPS:
            floating.add(node.op_type)
    return {"int8_ops": ",".join(sorted(int8)) or "none",
            "float_ops": ",".join(sorted(floating)) or "none"}


class OnnxFedBackend(Backend):
    """A backend whose artifact is made from ONNX: exporting the PyTorch definition is the
    one ONNX export followed by the backend's own `import_onnx`, so a user's ONNX file and
    the built-in models take the same conversion path."""

    export_deps = ONNX_EXPORT_DEPS

    @classmethod
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path,
               calibration: Calibration | None = None) -> Path:
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, signature, Path(tmp) / "model.onnx")
            return cls.import_onnx(onnx_path, signature, variant, out_dir, calibration)


def self_contained_copy(onnx_path: Path, path: Path) -> Path:
    """Copy a user's ONNX file to `path` with any external weight data folded in."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=True)
    if model.ByteSize() < 2_000_000_000:
        onnx.save(model, str(path))
    else:
        shutil.copy(onnx_path, path)
    return path
