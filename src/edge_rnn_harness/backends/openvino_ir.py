"""OpenVINO backend ("openvino"): ONNX -> IR, CPU plugin, one infer request.

For fp32 the CPU plugin is told INFERENCE_PRECISION_HINT=f32: by default it runs bf16 on
CPUs that have it, which is not fp32. Variants: fp16 is the IR with fp16 weights run with
the f16 precision hint (unsupported on a CPU without FP16 capability); int8-dynamic is
`nncf.compress_weights` (int8 weights of the layers it compresses, activations float);
int8-static is `nncf.quantize` with calibration windows, its preset chosen by the error on
those windows. Every row records the precision each weighted layer really runs at, read
back from the compiled model.
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
    UnsupportedModel,
    require_calibration,
    settings_record,
    write_notes,
)
from edge_rnn_harness.backends.onnx_export import ONNX_EXPORT_DEPS, OnnxFedBackend
from edge_rnn_harness.core.variants import get_variant

#: the CPU plugin's precision hint for a variant's float precision
_PRECISION_HINT = {"fp32": "f32", "fp16": "f16"}
#: the CPU plugin's layer types that carry weights (read back from the runtime model)
_WEIGHTED_LAYERS = frozenset({"RNNSeq", "RNNCell", "FullyConnected", "MatMul",
                              "Convolution"})


class OpenvinoPrepared(PreparedModel):
    """A compiled CPU model and its reused infer request, called with `request.infer`, or
    (tuning call=bound) with input tensors set on the request when fed (untimed) and
    `request.infer()` without arguments, outputs copied inside the timed call. After each
    call it keeps the request's own latency (`InferRequest.latency`, ms): the runtime's
    figure, recorded beside the harness clock's, never instead of it (reading it costs
    about 0.45 us inside the timed call, under 1% of an lstm call; see README). (A bound request
    holds one input: running another fed input binds it first, so parity windows stay
    right; the timed loop runs one fed input and binds nothing.)"""

    def __init__(self, compiled: Any, settings: dict[str, Any], call: str = "infer") -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._output_names = [output.get_any_name() for output in compiled.outputs]
        self._bound = call == "bound"
        self.settings = settings
        self.runtime_latencies_ms: list[float] = []
        self._bound_to: object = None

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        arrays = {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        if self._bound:
            import openvino as ov

            return {name: ov.Tensor(array, shared_memory=True)
                    for name, array in arrays.items()}, arrays
        return arrays

    def _bind(self, fed: object) -> None:
        if fed is not self._bound_to:
            for name, tensor in fed[0].items():  # type: ignore[index]
                self._request.set_tensor(name, tensor)
            self._bound_to = fed

    def run(self, fed: object) -> dict[str, np.ndarray]:
        if self._bound:
            self._bind(fed)
            self._request.infer()
            outputs = {name: self._request.get_output_tensor(index).data.copy()
                       for index, name in enumerate(self._output_names)}
        else:
            results = self._request.infer(fed, share_inputs=True, share_outputs=False)
            outputs = {name: results[index] for index, name in enumerate(self._output_names)}
        self.runtime_latencies_ms.append(self._request.latency)
        return outputs

    def close(self) -> None:
        self._request = None
        self._compiled = None
        self._bound_to = None


#: model ops that carry weights, and the ops a compressed weight passes through to them
_WEIGHTED_OPS = frozenset({"MatMul", "LSTMSequence", "GRUSequence", "RNNSequence",
                           "Convolution"})
_DECOMPRESSION_OPS = frozenset({"Convert", "Subtract", "Multiply", "Reshape", "Transpose",
                                "FakeQuantize"})


def weight_storage(model: Any) -> dict[str, str]:
    """Which weighted ops of an ov.Model take integer-stored weights (a u8/i8/u4/i4
    Constant behind decompression ops) and which float ones:
    {"int8_weights": "MatMul", "float_weights": "LSTMSequence"} ("none" where empty)."""
    def integer_constant(node: Any, depth: int = 0) -> bool:
        kind = node.get_type_name()
        if kind == "Constant":
            return node.get_element_type().get_type_name() in ("u8", "i8", "u4", "i4")
        return depth < 5 and kind in _DECOMPRESSION_OPS and any(
            integer_constant(value.get_node(), depth + 1) for value in node.input_values())

    integer, floating = set(), set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in _WEIGHTED_OPS:
            weights = [v.get_node() for v in op.input_values()[1:]]
            (integer if any(integer_constant(w) for w in weights) else floating).add(kind)
    return {"int8_weights": ",".join(sorted(integer)) or "none",
            "float_weights": ",".join(sorted(floating)) or "none"}


def _max_error(reference: Any, candidate_xml: Path, windows: Calibration) -> float:
    """Largest |candidate - reference| over the calibration windows: the reference an
    in-memory ov.Model, the candidate read back from its saved IR (what a device runs;
    OpenVINO 2026.4 quantizes an nncf-quantized LSTM differently once it is saved and read
    back), both compiled in f32. Host side, untimed."""
    import openvino as ov

    core = ov.Core()
    compiled = [core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                for m in (reference, core.read_model(str(candidate_xml)))]
    worst = 0.0
    for window in windows:
        ref, out = (np.asarray(c(dict(window))[0]) for c in compiled)
        worst = max(worst, float(np.max(np.abs(out - ref))))
    return worst


#: the recurrent ops a static int8 recipe may keep in float (nncf's ignored scope)
RECURRENT_OPS = ["LSTMSequence", "GRUSequence", "RNNSequence"]


def _recipes(nncf: Any) -> dict[str, dict[str, Any]]:
    """The static int8 recipes tried, by name: each preset over the whole graph, and the
    performance preset with the recurrent layer kept in float (the recurrent state is what
    int8 ranges break; nncf's accuracy-control search fails on an LSTMSequence graph)."""
    return {"performance": {"preset": nncf.QuantizationPreset.PERFORMANCE},
            "mixed": {"preset": nncf.QuantizationPreset.MIXED},
            "recurrent-float": {"preset": nncf.QuantizationPreset.PERFORMANCE,
                                "ignored_scope": nncf.IgnoredScope(types=RECURRENT_OPS,
                                                                   validate=False)}}


def _quantize_static(onnx_path: Path, windows: Calibration, path: Path) -> dict[str, Any]:
    """nncf.quantize with each recipe, each saved as IR; keep at `path` the one whose
    outputs are closest to fp32's on the calibration windows (training split) and return
    notes naming it, with every recipe's error."""
    import shutil

    import nncf
    import openvino as ov

    reference = ov.convert_model(str(onnx_path))
    dataset = nncf.Dataset([dict(window) for window in windows])
    errors = {}
    for name, options in _recipes(nncf).items():
        model = nncf.quantize(ov.convert_model(str(onnx_path)), dataset,
                              subset_size=len(windows), **options)
        candidate = path.with_name(f"{name}.xml")
        ov.save_model(model, str(candidate), compress_to_fp16=False)
        errors[name] = _max_error(reference, candidate, windows)
    chosen = min(errors, key=errors.__getitem__)
    for suffix in (".xml", ".bin"):
        shutil.move(path.with_name(chosen + suffix), path.with_suffix(suffix))
        for other in errors:
            path.with_name(other + suffix).unlink(missing_ok=True)
    return {"tool": f"nncf.quantize recipe={chosen}", "calibration_windows": len(windows),
            **weight_storage(ov.Core().read_model(str(path))),
            "preset_choice": "; ".join(f"{name}: max error {error:.3g}" for name, error
                                       in errors.items()) + " on the calibration windows"}


class OpenvinoBackend(OnnxFedBackend):
    """OpenVINO CPU plugin. Tuning: `hint` = LATENCY|THROUGHPUT (default LATENCY)."""

    name = "openvino"
    fmt = "openvino-ir"
    runtime_module = "openvino"
    runtime_dist = "openvino"
    export_deps = (*ONNX_EXPORT_DEPS, "openvino", "nncf")
    variants = ("fp32", "fp16", "int8-dynamic", "int8-static")
    description = "OpenVINO CPU plugin, f32 inference precision for fp32"
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "hint": ("LATENCY", "THROUGHPUT"), "call": ("infer", "bound")}

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path, calibration: Calibration | None = None) -> Path:
        """ONNX -> IR for `variant` (fp32 weights unless the variant compresses them)."""
        import openvino as ov

        path = out_dir / "model.xml"
        if variant == "int8-static":
            write_notes(out_dir, _quantize_static(
                onnx_path, require_calibration(cls.name, variant, calibration), path))
            return path
        model = ov.convert_model(str(onnx_path))
        if variant == "fp16":
            write_notes(out_dir, {"tool": "openvino.save_model compress_to_fp16=True"})
        elif variant == "int8-dynamic":
            import nncf

            model = nncf.compress_weights(model)
            write_notes(out_dir, {"tool": "nncf.compress_weights (int8 weights, float "
                                          "activations)", **weight_storage(model)})
        ov.save_model(model, str(path), compress_to_fp16=variant == "fp16")
        return path

    @classmethod
    def runs_here(cls, variant: str) -> str | None:
        """fp16 needs the CPU plugin's FP16 capability (else an f16 hint runs fp32)."""
        import openvino as ov

        if get_variant(variant).float_precision == "fp16" and \
                "FP16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return ("OpenVINO's CPU plugin reports no FP16 capability on this CPU: an f16 "
                    "precision hint would run fp32")
        return None

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import openvino as ov

        hint = cls.tuning_value(options, "hint")
        core = ov.Core()
        why_not = cls.runs_here(options.variant)
        if why_not:
            raise UnsupportedModel(why_not)
        config = {"INFERENCE_NUM_THREADS": options.threads, "PERFORMANCE_HINT": hint,
                  "NUM_STREAMS": 1,
                  "INFERENCE_PRECISION_HINT":
                      _PRECISION_HINT[get_variant(options.variant).float_precision]}
        try:
            compiled = core.compile_model(core.read_model(str(artifact)), "CPU", config)
        except RuntimeError as error:
            message = " ".join(str(error).split())
            raise ArtifactError(f"OpenVINO cannot load {artifact}: {message}") from error
        call = cls.tuning_value(options, "call")
        return OpenvinoPrepared(compiled, {**_read_settings(compiled), "call": call}, call)


def _read_settings(compiled: Any) -> dict[str, Any]:
    """Every setting read back from the compiled model's properties and runtime graph:
    threads, inference precision, performance hint, streams, each layer's precision."""
    return settings_record({
        "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
        "precision": _fp_name(str(compiled.get_property("INFERENCE_PRECISION_HINT"))),
        "hint": str(compiled.get_property("PERFORMANCE_HINT")).rsplit(".", 1)[-1],
        "streams": int(compiled.get_property("NUM_STREAMS")),
        "layer_precision": layer_precisions(compiled),
    })


def layer_precisions(compiled: Any) -> str:
    """The precision each weighted layer type runs at, read back from the compiled model's
    runtime graph: e.g. "FullyConnected:u8,RNNSeq:f32"."""
    seen: dict[str, set[str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in _WEIGHTED_LAYERS:
            seen.setdefault(layer, set()).add(info["runtimePrecision"].astype(str))
    return ",".join(f"{layer}:{'/'.join(sorted(p))}" for layer, p in sorted(seen.items()))


def _fp_name(ov_type: str) -> str:
    """OpenVINO's element type text ("<Type: 'float32'>", "f32", "bf16") as fp32/bf16/..."""
    for token, name in (("float32", "fp32"), ("f32", "fp32"), ("bf16", "bf16"),
                        ("f16", "fp16"), ("float16", "fp16")):
        if token in ov_type:
            return name
    return ov_type
