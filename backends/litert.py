"""TFLite/LiteRT backend ("tflite"): litert-torch export, LiteRT Interpreter.

Runs in ai-edge-litert's Interpreter, or tflite-runtime's where that is the one installed
(same API). XNNPACK is on by default; tuning `xnnpack=off` runs the builtin kernels only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_rnn_harness.backends.base import (
    ArtifactError,
    Backend,
    PreparedModel,
    RunOptions,
    Signature,
    UnsupportedModel,
    dist_version,
    missing_module,
)

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


def _tensor_indices(interpreter: Any) -> tuple[list[int], list[int]]:
    """Input and output tensor indices in call order: from the default signature (litert
    names them args_0.., output_0..), else the interpreter's detail order."""
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()

        def ordered(details: dict) -> list[int]:
            return [details[k]["index"] for k in sorted(details, key=_trailing_number)]
        return ordered(inputs), ordered(outputs)
    return ([d["index"] for d in interpreter.get_input_details()],
            [d["index"] for d in interpreter.get_output_details()])


def _trailing_number(name: str) -> tuple[int, str]:
    digits = name[len(name.rstrip("0123456789")):]
    return (int(digits) if digits else 0, name)


class LitertPrepared(PreparedModel):
    """An allocated Interpreter; `run` copies the inputs in, invokes, copies outputs out."""

    def __init__(self, interpreter: Any, options: RunOptions, settings: dict[str, Any]) -> None:
        self._interpreter = interpreter
        input_indices, output_indices = _tensor_indices(interpreter)
        self._inputs = list(zip(options.input_names, input_indices))
        self._outputs = list(zip(options.output_names, output_indices))
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return [(index, np.ascontiguousarray(inputs[name], dtype=np.float32))
                for name, index in self._inputs]

    def run(self, fed: object) -> dict[str, np.ndarray]:
        for index, array in fed:  # type: ignore[attr-defined]
            self._interpreter.set_tensor(index, array)
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(index) for name, index in self._outputs}

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
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"xnnpack": ("on", "off")}

    @classmethod
    def available(cls) -> str | None:
        try:
            _interpreter_module()
        except ImportError as error:
            return f"no TFLite interpreter is installed ({error})"
        return None

    @classmethod
    def installed(cls) -> str | None:
        reasons = [missing_module(name) for name, _ in _INTERPRETERS]
        return None if None in reasons else "; ".join(r for r in reasons if r)

    @classmethod
    def version(cls) -> str:
        versions = (dist_version(dist) for _, dist in _INTERPRETERS)
        return next((version for version in versions if version), "")

    @classmethod
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path) -> Path:
        import litert_torch
        import torch

        examples = tuple(torch.from_numpy(np.ascontiguousarray(a))
                         for a in signature.inputs.values())
        path = out_dir / "model.tflite"
        litert_torch.convert(model, examples).export(str(path))
        return path

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path) -> Path:
        raise UnsupportedModel("tflite cannot take an ONNX file: no ONNX-to-TFLite converter "
                               "works here (onnx2tf fails on recurrent ops); export from "
                               "PyTorch with --model module:callable instead")

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
        return LitertPrepared(interpreter, options, settings)
