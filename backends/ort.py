"""ONNX Runtime backend ("onnxruntime"): legacy TorchScript ONNX export, CPU provider."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ArtifactError, Backend, PreparedModel, RunOptions
from models.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec

ONNX_OPSET = 17
_GRAPH_LEVELS = ("disable", "basic", "extended", "all")


def export_onnx(model: Any, spec: ModelSpec, path: Path, batch: int = 1) -> Path:
    """Export `model` to one self-contained ONNX file with the native recurrent op.

    Uses the legacy exporter (dynamo=False): it writes the weights inline and emits the
    ONNX LSTM/GRU/RNN op in time-major layout (what every runtime here reads correctly).
    """
    import warnings

    import torch

    example = torch.zeros(spec.input_shape(batch), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False,
                          opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    return path


class OrtPrepared(PreparedModel):
    """An InferenceSession with one CPU provider, called with `session.run`."""

    def __init__(self, session: Any, settings: dict[str, Any]) -> None:
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return {name: np.ascontiguousarray(value) for name, value in inputs.items()}

    def run(self, fed: object) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self._session.run(None, fed)))

    def close(self) -> None:
        self._session = None


class OrtBackend(Backend):
    """ONNX Runtime on CPU. Tuning: `graph_level` = disable|basic|extended|all (default all)."""

    name = "onnxruntime"
    fmt = "onnx"
    runtime_module = "onnxruntime"
    runtime_dist = "onnxruntime"
    export_deps = ("torch", "onnx")
    description = "ONNX Runtime, CPU execution provider"

    @classmethod
    def export(cls, model: Any, spec: ModelSpec, variant: str, out_dir: Path,
               calib: Any = None) -> Path:
        return export_onnx(model, spec, out_dir / "model.onnx")

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import onnxruntime as ort

        level_name = options.tuning.get("graph_level", "all")
        if level_name not in _GRAPH_LEVELS:
            raise ValueError(f"graph_level {level_name!r} is not one of {_GRAPH_LEVELS}")
        levels = dict(zip(_GRAPH_LEVELS, (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        )))
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = levels[level_name]
        session_options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(artifact), session_options,
                                           providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own Fail/InvalidProtobuf types
            raise ArtifactError(f"onnxruntime cannot load {artifact}: {error}") from error
        settings = {"threads": options.threads, "precision": "fp32",
                    "provider": "CPUExecutionProvider", "graph_level": level_name}
        return OrtPrepared(session, settings)
