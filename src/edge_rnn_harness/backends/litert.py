"""TFLite/LiteRT backend ("tflite"): litert-torch export, LiteRT Interpreter.

Runs in ai-edge-litert's Interpreter, or tflite-runtime's where that is the one installed
(same API). XNNPACK is on by default; tuning `xnnpack=off` runs the builtin kernels only.

Variants are ai-edge-quantizer recipes applied to the litert-torch model: fp16 is float16
weights (float casting, float arithmetic), int8-dynamic `dynamic_wi8_afp32`, int8-static
`static_wi8_ai8` with calibration windows. A static model takes and returns int8 tensors:
`feed` quantizes inputs (untimed) and `run` dequantizes outputs (timed, as a deployment
would), with the scales stored in the model.
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
    Calibration,
    PreparedModel,
    RunOptions,
    Signature,
    UnsupportedModel,
    dist_version,
    dtype_counts,
    missing_module,
    require_calibration,
    settings_record,
    write_notes,
)
from edge_rnn_harness.core.status import not_installed

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


def _quantization(interpreter: Any, index: int) -> tuple[Any, float, int] | None:
    """(integer dtype, scale, zero point) of an integer input/output tensor, else None."""
    detail = next(d for d in interpreter.get_tensor_details() if d["index"] == index)
    if not np.issubdtype(detail["dtype"], np.integer):
        return None
    scale, zero_point = detail["quantization"]
    return detail["dtype"], float(scale), int(zero_point)


class LitertPrepared(PreparedModel):
    """An allocated Interpreter; `run` copies the inputs in, invokes, copies outputs out
    (dequantized where the model's outputs are integers)."""

    def __init__(self, interpreter: Any, options: RunOptions, settings: dict[str, Any]) -> None:
        self._interpreter = interpreter
        input_indices, output_indices = _tensor_indices(interpreter)
        self._inputs = [(name, index, _quantization(interpreter, index))
                        for name, index in zip(options.input_names, input_indices)]
        self._outputs = [(name, index, _quantization(interpreter, index))
                         for name, index in zip(options.output_names, output_indices)]
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        fed = []
        for name, index, quantized in self._inputs:
            array = np.asarray(inputs[name], dtype=np.float32)
            if quantized is not None:
                dtype, scale, zero_point = quantized
                info = np.iinfo(dtype)
                array = np.clip(np.round(array / scale) + zero_point, info.min, info.max)
            fed.append((index, np.ascontiguousarray(array, dtype=quantized[0] if quantized
                                                    else np.float32)))
        return fed

    def run(self, fed: object) -> dict[str, np.ndarray]:
        for index, array in fed:  # type: ignore[attr-defined]
            self._interpreter.set_tensor(index, array)
        self._interpreter.invoke()
        outputs = {}
        for name, index, quantized in self._outputs:
            value = self._interpreter.get_tensor(index)
            if quantized is not None:
                value = (value.astype(np.float32) - quantized[2]) * np.float32(quantized[1])
            outputs[name] = value
        return outputs

    def close(self) -> None:
        self._interpreter = None


class LitertBackend(Backend):
    """LiteRT (TFLite) interpreter. Tuning: `xnnpack` = on|off (default on)."""

    name = "tflite"
    fmt = "tflite"
    runtime_module = "ai_edge_litert.interpreter"
    runtime_dist = "ai-edge-litert"
    export_deps = ("torch", "litert-torch", "ai-edge-quantizer")
    variants = ("fp32", "fp16", "int8-dynamic", "int8-static")
    description = "LiteRT (TFLite) interpreter, XNNPACK delegate"
    unreportable_settings = frozenset({"threads", "xnnpack", "precision"})
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"xnnpack": ("on", "off")}

    @classmethod
    def available(cls) -> str | None:
        try:
            _interpreter_module()
        except ImportError as error:
            return not_installed("a TFLite interpreter", str(error))
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
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path,
               calibration: Calibration | None = None) -> Path:
        import litert_torch
        import torch

        examples = tuple(torch.from_numpy(np.ascontiguousarray(a))
                         for a in signature.inputs.values())
        path = out_dir / "model.tflite"
        float_path = path if variant == "fp32" else \
            out_dir.parent / f".{out_dir.name}-float.tflite"  # the quantizer's input
        litert_torch.convert(model, examples).export(str(float_path))
        if variant == "fp32":
            return path
        try:
            notes = quantize_tflite(float_path, variant, path, list(signature.inputs),
                                    calibration)
        finally:
            float_path.unlink(missing_ok=True)
        write_notes(out_dir, notes)
        return path

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path, calibration: Calibration | None = None) -> Path:
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
        return LitertPrepared(interpreter, options, _read_settings(
            interpreter, dist, {"threads": options.threads, "xnnpack": xnnpack,
                                "precision": options.variant}))


def _read_settings(interpreter: Any, dist: str, requested: dict[str, Any]) -> dict[str, Any]:
    """What the interpreter reports: the element types of its tensors (weights included)
    and of its inputs, and which package it came from. It has no call that says how many
    threads it uses, whether the XNNPACK delegate took the graph, or in what precision
    kernels compute: those stand as requested."""
    return settings_record(
        {"interpreter": dist,
         "tensor_types": dtype_counts([np.dtype(d["dtype"]).name
                                       for d in interpreter.get_tensor_details()]),
         "input_types": ",".join(sorted({np.dtype(d["dtype"]).name
                                         for d in interpreter.get_input_details()}))},
        requested)


def quantize_tflite(float_path: Path, variant: str, path: Path, input_names: list[str],
                    calibration: Calibration | None) -> dict[str, Any]:
    """Write `variant` of the float model with ai-edge-quantizer; returns the notes: the
    recipe and which ops hold integer or float16 tensors. Host side."""
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # calibration draws a progress bar per op
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    recipes = {"int8-dynamic": "dynamic_wi8_afp32", "int8-static": "static_wi8_ai8"}
    if variant == "fp16":
        quant = quantizer.Quantizer(str(float_path))
        quant.add_weight_only_config(".*", TFLOperationName.ALL_SUPPORTED, 16,
                                     algorithm_key=AlgorithmName.FLOAT_CASTING)
        notes: dict[str, Any] = {"tool": "ai-edge-quantizer float16 weight casting"}
    else:
        quant = quantizer.Quantizer(str(float_path), getattr(recipe, recipes[variant])())
        notes = {"tool": f"ai-edge-quantizer {recipes[variant]}"}
    result = None
    if quant.need_calibration:
        windows = require_calibration("tflite", variant, calibration)
        signature_key, tensor_names = _signature_inputs(float_path)
        result = quant.calibrate({signature_key: [
            {tensor: np.asarray(w[name], np.float32)
             for tensor, name in zip(tensor_names, input_names)} for w in windows]})
        notes["calibration_windows"] = len(windows)
    quant.quantize(result, enable_progress_report=False).export_model(str(path),
                                                                     overwrite=True)
    return {**notes, **_op_precisions(path)}


#: tensor types a quantized op takes (int32 is shapes and indices, not quantization)
_LOW_PRECISION = (np.int8, np.uint8, np.int16, np.float16)


def _signature_inputs(path: Path) -> tuple[str, list[str]]:
    """The model's default signature key and its input names in call order (litert-torch
    names them args_0, args_1, ...)."""
    module, _ = _interpreter_module()
    signatures = module.Interpreter(model_path=str(path)).get_signature_list()
    key = next(iter(signatures))
    return key, sorted(signatures[key]["inputs"], key=_trailing_number)


def _op_precisions(path: Path) -> dict[str, str]:
    """Which ops of a .tflite file take integer or float16 tensors, and which only float32:
    {"quantized_ops": "FULLY_CONNECTED x25", "float_ops": "..."}."""
    module, _ = _interpreter_module()
    interpreter = module.Interpreter(model_path=str(path))
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    quantized: dict[str, int] = {}
    floating: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        kinds = {dtypes.get(i) for i in op["inputs"] if i >= 0}
        low = any(k in _LOW_PRECISION for k in kinds)
        target = quantized if low else floating
        target[op["op_name"]] = target.get(op["op_name"], 0) + 1

    def text(counts: dict[str, int]) -> str:
        return ",".join(f"{name} x{n}" for name, n in sorted(counts.items())) or "none"
    return {"quantized_ops": text(quantized), "float_ops": text(floating)}
