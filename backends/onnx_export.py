"""The one ONNX export of the PyTorch definition, shared by every ONNX-fed backend."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from models.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec

ONNX_OPSET = 17
#: distributions that shape the ONNX file
ONNX_EXPORT_DEPS = ("torch", "onnx")


def export_onnx(model: Any, spec: ModelSpec, path: Path, batch: int = 1) -> Path:
    """Export `model` to one self-contained ONNX file with the native recurrent op.

    Uses the legacy exporter (dynamo=False): it writes the weights inline and emits the
    ONNX LSTM/GRU/RNN op in time-major layout (layout=0), the layout every runtime here
    computes correctly. Input "x" (batch, seq_len, features), output "y" (batch, horizon).
    """
    import torch

    example = torch.zeros(spec.input_shape(batch), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False,
                          opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    return path
