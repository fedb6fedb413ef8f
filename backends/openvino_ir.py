"""OpenVINO backend ("openvino"): ONNX -> IR (fp32 weights), CPU plugin, one infer request.

For the fp32 variant the CPU plugin is told INFERENCE_PRECISION_HINT=f32: by default it
runs bf16 on CPUs that have it, which is not fp32.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_rnn_harness.backends.base import ArtifactError, PreparedModel, RunOptions, Signature
from edge_rnn_harness.backends.onnx_export import ONNX_EXPORT_DEPS, OnnxFedBackend

_PRECISION_HINT = {"fp32": "f32"}


class OpenvinoPrepared(PreparedModel):
    """A compiled CPU model and its reused infer request."""

    def __init__(self, compiled: Any, settings: dict[str, Any]) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._output_names = [output.get_any_name() for output in compiled.outputs]
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return {name: np.ascontiguousarray(value) for name, value in inputs.items()}

    def run(self, fed: object) -> dict[str, np.ndarray]:
        results = self._request.infer(fed, share_inputs=True, share_outputs=False)
        return {name: results[index] for index, name in enumerate(self._output_names)}

    def close(self) -> None:
        self._request = None
        self._compiled = None


class OpenvinoBackend(OnnxFedBackend):
    """OpenVINO CPU plugin. Tuning: `hint` = LATENCY|THROUGHPUT (default LATENCY)."""

    name = "openvino"
    fmt = "openvino-ir"
    runtime_module = "openvino"
    runtime_dist = "openvino"
    export_deps = (*ONNX_EXPORT_DEPS, "openvino")
    description = "OpenVINO CPU plugin, f32 inference precision"
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"hint": ("LATENCY", "THROUGHPUT")}

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path) -> Path:
        """ONNX -> IR with fp32 weights (save_model compresses to fp16 unless told not to)."""
        import openvino as ov

        path = out_dir / "model.xml"
        ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
        return path

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import openvino as ov

        hint = cls.tuning_value(options, "hint")
        config = {"INFERENCE_NUM_THREADS": options.threads, "PERFORMANCE_HINT": hint,
                  "NUM_STREAMS": 1,
                  "INFERENCE_PRECISION_HINT": _PRECISION_HINT[options.variant]}
        core = ov.Core()
        try:
            compiled = core.compile_model(core.read_model(str(artifact)), "CPU", config)
        except RuntimeError as error:
            message = " ".join(str(error).split())
            raise ArtifactError(f"OpenVINO cannot load {artifact}: {message}") from error
        settings = {
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "precision": _fp_name(str(compiled.get_property("INFERENCE_PRECISION_HINT"))),
            "hint": hint, "streams": int(compiled.get_property("NUM_STREAMS")),
        }
        return OpenvinoPrepared(compiled, settings)


def _fp_name(ov_type: str) -> str:
    """OpenVINO's element type text ("<Type: 'float32'>", "f32", "bf16") as fp32/bf16/..."""
    for token, name in (("float32", "fp32"), ("f32", "fp32"), ("bf16", "bf16"),
                        ("f16", "fp16"), ("float16", "fp16")):
        if token in ov_type:
            return name
    return ov_type
