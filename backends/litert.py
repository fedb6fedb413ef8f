"""TFLite/LiteRT backend ("tflite"): litert-torch export, LiteRT Interpreter.

Runs in ai-edge-litert's Interpreter, or tflite-runtime's where that is the one installed
(same API). XNNPACK is on by default; tuning `xnnpack=off` runs the builtin kernels only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ArtifactError, Backend, PreparedModel, RunOptions, _dist_version
from models.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec

#: (module with Interpreter, distribution), in order of preference
_INTERPRETERS = (("ai_edge_litert.interpreter", "ai-edge-litert"),
                 ("tflite_runtime.interpreter", "tflite-runtime"))


def _interpreter_module() -> tuple[Any, str]:
    errors = []
    for module_name, dist in _INTERPRETERS:
        try:
            return importlib.import_module(module_name), dist
        except ImportError as error:
            errors.append(f"{module_name}: {error}")
    raise ImportError("; ".join(errors))


class LitertPrepared(PreparedModel):
    """An allocated Interpreter; `run` copies the input in, invokes, copies the output out."""

    def __init__(self, interpreter: Any, settings: dict[str, Any]) -> None:
        self._interpreter = interpreter
        self._input_index = interpreter.get_input_details()[0]["index"]
        self._output_index = interpreter.get_output_details()[0]["index"]
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return np.ascontiguousarray(inputs[INPUT_NAME], dtype=np.float32)

    def run(self, fed: object) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input_index, fed)
        self._interpreter.invoke()
        return {OUTPUT_NAME: self._interpreter.get_tensor(self._output_index)}

    def close(self) -> None:
        self._interpreter = None


class LitertBackend(Backend):
    """LiteRT (TFLite) interpreter. Tuning: `xnnpack` = on|off (default on)."""

    name = "tflite"
    fmt = "tflite"
    runtime_module = "ai_edge_litert.interpreter"
    runtime_dist = "ai-edge-litert"
    export_deps = ("torch", "litert-torch")
    description = "LiteRT (TFLite) interpreter, XNNPACK delegate"
    tuning_choices = {"xnnpack": ("on", "off")}

    @classmethod
    def available(cls) -> str | None:
        try:
            _interpreter_module()
        except ImportError as error:
            return f"no TFLite interpreter is installed ({error})"
        return None

    @classmethod
    def version(cls) -> str:
        for _, dist in _INTERPRETERS:
            if _dist_version(dist):
                return _dist_version(dist)
        return ""

    @classmethod
    def export(cls, model: Any, spec: ModelSpec, variant: str, out_dir: Path,
               calib: Any = None) -> Path:
        import litert_torch
        import torch

        example = torch.zeros(spec.input_shape(1), dtype=torch.float32)
        path = out_dir / "model.tflite"
        litert_torch.convert(model, (example,)).export(str(path))
        return path

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        module, dist = _interpreter_module()
        xnnpack = cls.tuning_value(options, "xnnpack")
        kwargs: dict[str, Any] = {"model_path": str(artifact), "num_threads": options.threads}
        if xnnpack == "off":
            kwargs["experimental_op_resolver_type"] = \
                module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            interpreter = module.Interpreter(**kwargs)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ArtifactError(f"LiteRT cannot load {artifact}: {error}") from error
        settings = {"threads": options.threads, "precision": "fp32", "xnnpack": xnnpack,
                    "interpreter": dist}
        return LitertPrepared(interpreter, settings)
