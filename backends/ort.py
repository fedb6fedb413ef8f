"""ONNX Runtime backend ("onnxruntime"): legacy TorchScript ONNX export, CPU provider."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_rnn_harness.backends.base import ArtifactError, PreparedModel, RunOptions, Signature
from edge_rnn_harness.backends.onnx_export import (
    ONNX_EXPORT_DEPS,
    OnnxFedBackend,
    self_contained_copy,
)


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


class OrtBackend(OnnxFedBackend):
    """ONNX Runtime on CPU. Tuning: `graph_level` = disable|basic|extended|all (default all)."""

    name = "onnxruntime"
    fmt = "onnx"
    runtime_module = "onnxruntime"
    runtime_dist = "onnxruntime"
    export_deps = ONNX_EXPORT_DEPS
    description = "ONNX Runtime, CPU execution provider"
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"graph_level": ("all", "extended", "basic", "disable")}

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path) -> Path:
        return self_contained_copy(onnx_path, out_dir / "model.onnx")

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import onnxruntime as ort

        level_name = cls.tuning_value(options, "graph_level")
        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
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
        effective = session.get_session_options()
        settings = {"threads": effective.intra_op_num_threads, "precision": "fp32",
                    "provider": "CPUExecutionProvider", "graph_level": level_name}
        return OrtPrepared(session, settings)
