"""ONNX Runtime backend ("onnxruntime"): legacy TorchScript ONNX export, CPU provider.

Variants come from onnxruntime's own quantization tools: int8-dynamic is
`quantize_dynamic` (int8 weights, activations quantized at run time) and int8-static is
`quantize_static` in QDQ format with calibration windows, both after `quant_pre_process`.
What each really quantized is recorded from the written graph (static leaves the LSTM in
float32: onnxruntime has no static int8 LSTM).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_rnn_harness.backends.base import (
    ArtifactError,
    Calibration,
    PreparedModel,
    RunOptions,
    Signature,
    require_calibration,
    settings_record,
    write_notes,
)
from edge_rnn_harness.backends.onnx_export import (
    ONNX_EXPORT_DEPS,
    OnnxFedBackend,
    quantization_summary,
    self_contained_copy,
)

#: why fp16 is not offered (tests/test_variants.py checks the cast insertion still happens)
ORT_FP16_WHY = ("onnxruntime's CPU provider has no float16 LSTM kernel: it casts a float16 "
                "model's LSTM back to float32 (InsertedPrecisionFreeCast; checked with "
                "onnxruntime 1.32 on x86_64), so an fp16 row would be fp32 in disguise")


class OrtPrepared(PreparedModel):
    """An InferenceSession with one CPU provider, called with `session.run`, or (tuning
    call=iobinding) through an I/O binding whose inputs are bound when fed (untimed) and
    whose outputs are copied to numpy inside the timed call."""

    def __init__(self, session: Any, settings: dict[str, Any], call: str = "run") -> None:
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        self._iobinding = call == "iobinding"
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        arrays = {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        if not self._iobinding:
            return arrays
        binding = self._session.io_binding()
        for name, array in arrays.items():
            binding.bind_cpu_input(name, array)
        for name in self._output_names:
            binding.bind_output(name)
        return binding, arrays  # the arrays stay alive while bound

    def run(self, fed: object) -> dict[str, np.ndarray]:
        if self._iobinding:
            binding = fed[0]  # type: ignore[index]
            self._session.run_with_iobinding(binding)
            return dict(zip(self._output_names, binding.copy_outputs_to_cpu()))
        return dict(zip(self._output_names, self._session.run(None, fed)))

    def close(self) -> None:
        self._session = None


def quantize_onnx(onnx_path: Path, variant: str, path: Path,
                  calibration: Calibration | None) -> dict[str, Any]:
    """Write `variant` of the ONNX file at `path` with onnxruntime.quantization (int8
    weights QInt8); returns the notes: tool and what was quantized. Host side."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = path.with_name("preprocessed.onnx")
    quant_pre_process(str(onnx_path), str(prepared))
    if variant == "int8-dynamic":
        quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8)
        notes: dict[str, Any] = {"tool": "onnxruntime.quantization.quantize_dynamic QInt8"}
    else:
        windows = require_calibration("onnxruntime", variant, calibration)

        class Reader(CalibrationDataReader):
            """The calibration windows, one input dict per call."""

            def __init__(self) -> None:
                self._windows = iter(windows)

            def get_next(self) -> dict[str, np.ndarray] | None:
                window = next(self._windows, None)
                return None if window is None else {
                    name: np.ascontiguousarray(array, dtype=np.float32)
                    for name, array in window.items()}

        reader = Reader()
        quantize_static(str(prepared), str(path), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        notes = {"tool": "onnxruntime.quantization.quantize_static QDQ QInt8",
                 "calibration_windows": len(windows)}
    prepared.unlink()
    return {**notes, **quantization_summary(path)}


class OrtBackend(OnnxFedBackend):
    """ONNX Runtime on CPU. Tuning: `graph_level` = disable|basic|extended|all (default all);
    `call` = run|iobinding (the Python call path: session.run, or a pre-bound I/O
    binding)."""

    name = "onnxruntime"
    fmt = "onnx"
    runtime_module = "onnxruntime"
    runtime_dist = "onnxruntime"
    export_deps = (*ONNX_EXPORT_DEPS, "onnxruntime")
    variants = ("fp32", "int8-dynamic", "int8-static")
    unsupported_why: ClassVar[Mapping[str, str]] = {"fp16": ORT_FP16_WHY}
    description = "ONNX Runtime, CPU execution provider"
    unreportable_settings = frozenset({"precision"})
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "graph_level": ("all", "extended", "basic", "disable"),
        "call": ("run", "iobinding")}

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path, calibration: Calibration | None = None) -> Path:
        path = out_dir / "model.onnx"
        if variant == "fp32":
            return self_contained_copy(onnx_path, path)
        write_notes(out_dir, quantize_onnx(onnx_path, variant, path, calibration))
        return path

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
        call = cls.tuning_value(options, "call")
        settings = _read_settings(session, levels, options.variant)
        return OrtPrepared(session, {**settings, "call": call}, call)


def _read_settings(session: Any, levels: dict[str, Any], variant: str) -> dict[str, Any]:
    """What the session reports: its options (threads, graph level), its providers and
    the element types of its inputs. It cannot say in what precision its kernels compute,
    so the precision stands as requested (the quantizer's notes say which ops are int8)."""
    effective = session.get_session_options()
    level = {value: name for name, value in levels.items()}[
        effective.graph_optimization_level]
    return settings_record(
        {"threads": effective.intra_op_num_threads, "graph_level": level,
         "providers": ",".join(session.get_providers()),
         "input_types": ",".join(sorted({i.type for i in session.get_inputs()}))},
        {"precision": variant})
