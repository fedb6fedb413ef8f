"""A user's ONNX file as a model source: inputs, shapes and the independent reference.

Inputs come from, in this order: `--inputs data.npz` (arrays by input name), the ONNX
test-data layout beside the model (test_data_set_N/input_K.pb, as in ONNX's own backend
tests and onnxruntime's test runner), or seeded random arrays of the input shapes (a
dynamic dimension needs `--shape name=1x24x1`). Expected outputs come from the test-data
layout's output_K.pb when shipped, else from onnx.reference.ReferenceEvaluator.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.backends.base import Backend, Calibration, Signature
from edge_rnn_harness.bundle.reader import load_npz
from edge_rnn_harness.bundle.sources.base import INPUT_SEED, ModelSource, Window
from edge_rnn_harness.core.parity import SecondOpinion, compare_outputs
from edge_rnn_harness.core.variants import FP32, get_variant

TEST_DATA_PREFIX = "test_data_set_"


#: largest input a --shape may ask for (elements; 400 MB of float32)
MAX_INPUT_ELEMENTS = 100_000_000


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """"name=1x24x1" -> ("name", (1, 24, 1)); ValueError for anything else."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not (sep and name and shape and all(d > 0 for d in shape)):
        raise ValueError(f"--shape {text!r} is not NAME=DxDxD with positive dimensions "
                         f"(e.g. x=1x24x1)")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ValueError(f"--shape {text!r} has {math.prod(shape):,} elements; at most "
                         f"{MAX_INPUT_ELEMENTS:,} are allowed")
    return name, shape


def _read_tensor(path: Path) -> tuple[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
        return tensor.name, numpy_helper.to_array(tensor)
    except Exception as error:  # noqa: BLE001 -- protobuf raises DecodeError, numpy_helper others
        raise ValueError(f"{path}: not an ONNX TensorProto ({error})") from None


@dataclass
class OnnxSource(ModelSource):
    """An .onnx file, run by every backend that can take ONNX directly."""

    path: Path
    inputs_npz: Path | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    name: str = ""
    _proto: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # model zoo layout: <name>/model.onnx beside <name>/test_data_set_0
        self.name = self.path.parent.name if self.path.stem == "model" else self.path.stem

    def model(self) -> Any:
        """The parsed and checked ModelProto; ValueError for a file that is not ONNX."""
        if self._proto is None:
            import onnx

            if not self.path.is_file():
                raise ValueError(f"--model {self.path}: no such file")
            try:
                proto = onnx.load(str(self.path))
                onnx.checker.check_model(proto)
            except Exception as error:  # noqa: BLE001 -- onnx raises DecodeError, ValidationError, ...
                detail = " ".join(str(error).split())[:200]
                raise ValueError(f"--model {self.path}: not a valid ONNX model ({detail})"
                                 ) from None
            if not self._graph_inputs_of(proto) or not proto.graph.output:
                raise ValueError(f"--model {self.path}: the graph has no "
                                 f"{'outputs' if self._graph_inputs_of(proto) else 'inputs'} "
                                 f"(its inputs are all initializers or absent); the harness "
                                 f"feeds at least one input and checks at least one output")
            self._proto = proto
        return self._proto

    @staticmethod
    def _graph_inputs_of(proto: Any) -> list[Any]:
        initializers = {init.name for init in proto.graph.initializer}
        return [value for value in proto.graph.input if value.name not in initializers]

    def _graph_inputs(self) -> list[Any]:
        return self._graph_inputs_of(self.model())

    def output_names(self) -> tuple[str, ...]:
        """Every graph output, in order."""
        return tuple(output.name for output in self.model().graph.output)

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each input's shape, dynamic dimensions filled from --shape; ValueError otherwise."""
        inputs = {value.name: value for value in self._graph_inputs()}
        unknown = set(self.shapes) - set(inputs)
        if unknown:
            raise ValueError(f"--shape names no input {min(unknown)!r} of "
                             f"{self.path.name} (inputs: {', '.join(inputs)})")
        shapes = {}
        for name, value in inputs.items():
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                    for d in value.type.tensor_type.shape.dim]
            given = self.shapes.get(name)
            if given is not None:
                fixed_ok = len(given) == len(dims) and all(
                    not isinstance(d, int) or d == g for d, g in zip(dims, given))
                if not fixed_ok:
                    raise ValueError(f"--shape {name}={'x'.join(map(str, given))} does not fit "
                                     f"input {name!r} of shape {dims}")
                shapes[name] = given
            elif all(isinstance(d, int) and d > 0 for d in dims):
                shapes[name] = tuple(dims)
            else:
                raise ValueError(f"input {name!r} of {self.path.name} has dynamic dimensions "
                                 f"{dims}; give them with --shape {name}="
                                 + "x".join(str(d) if isinstance(d, int) and d > 0 else "N"
                                            for d in dims))
        return shapes

    def _dtypes(self) -> dict[str, np.dtype]:
        from onnx.helper import tensor_dtype_to_np_dtype

        return {value.name: tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
                for value in self._graph_inputs()}

    def test_data_sets(self) -> list[Path]:
        """test_data_set_N folders beside the model, in N order."""
        folders = [p for p in self.path.parent.glob(f"{TEST_DATA_PREFIX}*") if p.is_dir()]
        return sorted(folders, key=lambda p: int(p.name[len(TEST_DATA_PREFIX):] or 0)
                      if p.name[len(TEST_DATA_PREFIX):].isdigit() else 0)

    def _npz_inputs(self) -> dict[str, np.ndarray]:
        shapes, dtypes = self.input_shapes(), self._dtypes()
        try:
            arrays = load_npz(self.inputs_npz)
        except ValueError as error:
            raise ValueError(f"--inputs {error}") from None
        for name, shape in shapes.items():
            if name not in arrays:
                raise ValueError(f"--inputs {self.inputs_npz} has no array for input "
                                 f"{name!r} (it has: {', '.join(arrays) or 'none'})")
            if tuple(arrays[name].shape) != shape:
                raise ValueError(f"--inputs {self.inputs_npz}: array {name!r} has shape "
                                 f"{tuple(arrays[name].shape)}; the model takes {shape}")
            if not np.can_cast(arrays[name].dtype, dtypes[name], casting="same_kind"):
                raise ValueError(f"--inputs {self.inputs_npz}: array {name!r} is "
                                 f"{arrays[name].dtype}; the model takes {dtypes[name]} and "
                                 f"converting would lose information")
        return {name: arrays[name].astype(dtypes[name]) for name in shapes}

    def _input_sets(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]]:
        """(inputs, shipped expected outputs or None) per window."""
        if self.inputs_npz is not None:
            return [(self._npz_inputs(), None)]
        folders = self.test_data_sets()
        if folders:
            return [self._read_test_data(folder) for folder in folders]
        rng = np.random.default_rng(INPUT_SEED)
        dtypes = self._dtypes()
        generated = {}
        for name, shape in self.input_shapes().items():
            if np.issubdtype(dtypes[name], np.floating):
                generated[name] = rng.standard_normal(shape).astype(dtypes[name])
            else:
                generated[name] = np.zeros(shape, dtype=dtypes[name])
        return [(generated, None)]

    def _read_test_data(self, folder: Path) -> tuple[dict, dict | None]:
        def numbered(prefix: str) -> list[Path]:
            files = folder.glob(f"{prefix}_*.pb")
            return sorted(files, key=lambda p: int(p.stem.split("_")[-1]))

        input_names = [value.name for value in self._graph_inputs()]
        inputs = {}
        for position, path in enumerate(numbered("input")):
            name, array = _read_tensor(path)
            if position >= len(input_names):
                raise ValueError(f"{path}: the model has only {len(input_names)} inputs")
            inputs[name if name in input_names else input_names[position]] = array
        missing = [name for name in input_names if name not in inputs]
        if missing:
            raise ValueError(f"{folder}: no input_K.pb for input(s) {', '.join(missing)}")
        outputs = {}
        for position, path in enumerate(numbered("output")):
            name, array = _read_tensor(path)
            outputs[name if name in self.output_names() else self.output_names()[position]] = \
                array
        return inputs, (outputs or None)

    def external_data_files(self) -> list[Path]:
        """The files the model's external tensors are read from (ONNX external data), in
        order; ValueError for a location outside the model's folder."""
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

        proto = onnx.load(str(self.path), load_external_data=False)
        folder = self.path.parent.resolve()
        files: dict[Path, None] = {}
        for tensor in _get_all_tensors(proto):
            if uses_external_data(tensor):
                path = (folder / ExternalDataInfo(tensor).location).resolve()
                if not path.is_relative_to(folder):
                    raise ValueError(f"--model {self.path}: external data "
                                     f"{ExternalDataInfo(tensor).location!r} lies outside "
                                     f"the model's folder")
                files[path] = None
        return list(files)

    def compute_identity(self) -> str:
        """Hash of the model file and every external data file it reads, its test data or
        --inputs, and --shape (validates all)."""
        digest = hashlib.sha256(self.path.read_bytes() if self.path.is_file() else b"")
        self.model()
        self._input_sets()  # validates inputs, shapes and test data
        for extra in self.external_data_files() + \
                ([self.inputs_npz] if self.inputs_npz else []) + \
                [f for folder in self.test_data_sets() for f in sorted(folder.glob("*.pb"))]:
            digest.update(extra.read_bytes())
        digest.update(json.dumps(sorted(self.shapes.items())).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": "onnx", "path": str(self.path.resolve()),
                "inputs": str(self.inputs_npz.resolve()) if self.inputs_npz else None,
                "shapes": {k: list(v) for k, v in self.shapes.items()}}

    def reference(self) -> tuple[Signature, list[Window]]:
        """Shipped expected outputs, else onnx.reference.ReferenceEvaluator's."""
        from onnx.reference import ReferenceEvaluator

        evaluator = None
        windows = []
        for inputs, expected in self._input_sets():
            if expected is None:
                evaluator = evaluator or ReferenceEvaluator(self.model())
                expected = dict(zip(self.output_names(), evaluator.run(None, inputs)))
            missing = [n for n in self.output_names() if n not in expected]
            if missing:
                raise ValueError(f"no expected value for output(s) {', '.join(missing)}")
            windows.append((inputs, {name: np.asarray(expected[name])
                                     for name in self.output_names()}))
        return Signature(windows[0][0], self.output_names()), windows

    def second_opinion(self, windows: list[Window]) -> SecondOpinion | None:
        """Where every expected output came from onnx's ReferenceEvaluator (nothing
        shipped): onnxruntime's outputs on the same inputs (graph optimizations off), for
        each output the two compute differently beyond fp32 parity tolerance. None when they
        agree, the outputs were shipped, or onnxruntime is missing or cannot run the model
        (the evaluator's reference then stands alone). Computed once per source (the
        windows are the same for every export)."""
        if "_second_opinion" not in self.__dict__:
            self.__dict__["_second_opinion"] = self._compute_second_opinion(windows)
        return self.__dict__["_second_opinion"]

    def _compute_second_opinion(self, windows: list[Window]) -> SecondOpinion | None:
        if any(expected is not None for _, expected in self._input_sets()):
            return None
        try:
            import onnx
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(str(self.path), options,
                                           providers=["CPUExecutionProvider"])
            runs = [dict(zip(self.output_names(), session.run(None, inputs)))
                    for inputs, _ in windows]
        except Exception:  # noqa: BLE001 -- ImportError or any onnxruntime refusal
            return None
        stacked = {name: np.stack([run[name] for run in runs]) for name in self.output_names()}
        reference = {name: np.stack([w[1][name] for w in windows]) for name in stacked}
        tolerance = get_variant(FP32).parity
        disputed = {name: stacked[name] for name in stacked
                    if stacked[name].size == reference[name].size and not compare_outputs(
                        {name: stacked[name]}, {name: reference[name]}, tolerance).within}
        if not disputed:
            return None
        return SecondOpinion(f"onnx.reference.ReferenceEvaluator {onnx.__version__}",
                             f"onnxruntime {ort.__version__} (graph optimizations off)",
                             disputed)

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path, calibration: Calibration | None = None) -> Path:
        return backend.import_onnx(self.path, signature, variant, out_dir, calibration)

    def calibration(self) -> Calibration | None:
        """The inputs of --inputs or of the test_data_set_N folders; None for random ones."""
        if self.inputs_npz is None and not self.test_data_sets():
            return None
        return [inputs for inputs, _ in self._input_sets()]

    def params(self) -> int | None:
        return int(sum(np.prod(init.dims) for init in self.model().graph.initializer))
