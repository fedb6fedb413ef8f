"""ncnn backend ("ncnn"): ONNX -> pnnx (fp16=0 for fp32) -> ncnn param/bin, ncnn.Net.

fp16 is pnnx's fp16=1 (weights stored as float16) run with ncnn's fp16 storage and packing,
and fp16 arithmetic where the CPU has it (ARMv8.2 asimdhp); the row records which. int8 is
unsupported: it needs ncnn2table and ncnn2int8, which no pip package ships.

ncnn has no batch axis: each (1, ...) input is fed as a Mat without its batch axis and
the batch axis is put back on each output. ncnn numbers its blobs (in0, in1, ...; out0,
...); they are matched to the model's tensor names by position.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
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
    settings_record,
    write_notes,
)
from edge_rnn_harness.backends.onnx_export import ONNX_EXPORT_DEPS, OnnxFedBackend
from edge_rnn_harness.core.variants import get_variant

PNNX_TIMEOUT_S = 300
#: the onnxruntime inside pnnx 20261020 reads ONNX IR versions up to 13
PNNX_MAX_IR_VERSION = 13
#: numpy element type -> pnnx's name for it in inputshape= (pnnx's ir.cpp type_to_string)
PNNX_TYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "int32": "i32",
              "int64": "i64", "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool",
              "complex64": "c64", "complex128": "c128"}


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (ncnn reports load errors such
    as "layer Det not exists or registered" there); the yielded list holds the text
    once the block has ended."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text.append(captured.read())


def _copy_for_pnnx(onnx_path: Path, path: Path) -> None:
    """Copy the ONNX file for pnnx: initializers no longer listed among the graph inputs
    (pnnx matches its input shapes to every graph input in order, so an old model that
    lists its weights as inputs, IR < 4, got its shapes on the weights), and IR version
    13 where it declares a newer one (pnnx's embedded onnxruntime refuses IR 14; the
    operators and opset are unchanged)."""
    import onnx

    model = onnx.load(str(onnx_path))
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.ir_version = max(4, min(model.ir_version, PNNX_MAX_IR_VERSION))
    onnx.save(model, str(path))


def pnnx_input_shapes(inputs: Mapping[str, np.ndarray]) -> str:
    """pnnx's inputshape argument: each input's shape and element type in order, e.g.
    "[1,24,1]f32,[2]i32" (without the type pnnx assumes f32 and refuses other inputs).
    ValueError for an element type pnnx has no name for."""
    parts = []
    for name, array in inputs.items():
        kind = PNNX_TYPES.get(np.dtype(array.dtype).name)
        if kind is None:
            raise ValueError(f"input {name!r} is {array.dtype}, which pnnx cannot take")
        parts.append("[" + ",".join(str(n) for n in array.shape) + "]" + kind)
    return ",".join(parts)


def pnnx_order(blobs: list[str], prefix: str) -> list[str]:
    """ncnn blob names in the model's tensor order: pnnx names the i-th input in<i> and the
    i-th output out<i>, but ncnn lists blobs in layer order (an LSTM's state outputs before
    the head's); other names keep ncnn's order."""
    numbered = [name[len(prefix):] for name in blobs]
    if all(name.startswith(prefix) and n.isdigit() for name, n in zip(blobs, numbered)):
        return sorted(blobs, key=lambda name: int(name[len(prefix):]))
    return list(blobs)


class NcnnPrepared(PreparedModel):
    """A loaded ncnn.Net; each run makes an extractor, as ncnn's API intends."""

    def __init__(self, net: Any, options: RunOptions, settings: dict[str, Any]) -> None:
        import ncnn

        self._ncnn = ncnn
        self._net = net
        self._inputs = list(zip(options.input_names, pnnx_order(net.input_names(), "in")))
        self._outputs = list(zip(options.output_names, pnnx_order(net.output_names(), "out")))
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        """ncnn-owned copies of the inputs. A Mat wrapping numpy memory has no reference
        count, and ncnn in light mode dereferences it before an in-place first layer
        (e.g. a scalar BinaryOp): a segfault. An owned Mat held here has two references
        during `run`, so ncnn copies it before working in place and the fed input stays
        the same for every timed call."""
        return [self._ncnn.Mat(np.ascontiguousarray(inputs[name][0], dtype=np.float32)).clone()
                for name, _ in self._inputs]

    def run(self, fed: object) -> dict[str, np.ndarray]:
        extractor = self._net.create_extractor()
        for (_, blob), mat in zip(self._inputs, fed):  # type: ignore[call-overload]
            extractor.input(blob, mat)
        outputs = {}
        for name, blob in self._outputs:
            status, output = extractor.extract(blob)
            if status != 0:
                raise RuntimeError(f"ncnn extract of {blob} returned {status}")
            outputs[name] = np.array(output)[None, ...]
        return outputs

    def close(self) -> None:
        if self._net is not None:
            self._net.clear()
        self._net = None


class NcnnBackend(OnnxFedBackend):
    """ncnn CPU. Tuning: `lightmode` = on|off (default on: free intermediates early)."""

    name = "ncnn"
    fmt = "ncnn"
    runtime_module = "ncnn"
    runtime_dist = "ncnn"
    export_deps = (*ONNX_EXPORT_DEPS, "pnnx")
    variants = ("fp32", "fp16")
    unsupported_why: ClassVar[Mapping[str, str]] = dict.fromkeys(
        ("int8-dynamic", "int8-static"),
        "ncnn int8 needs its ncnn2table calibration and ncnn2int8 conversion tools, which "
        "neither the ncnn nor the pnnx pip package ships")
    description = "ncnn CPU, fp32 storage and arithmetic for fp32"
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"lightmode": ("on", "off")}

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path, calibration: Calibration | None = None) -> Path:
        """ONNX -> ncnn param/bin with pnnx's own binary (no torch needed): fp16=0, or
        fp16=1 (float16 weights) for the fp16 variant."""
        import pnnx

        batched = [name for name, array in signature.inputs.items()
                   if array.ndim > 1 and array.shape[0] > 1]
        if batched:
            shape = signature.inputs[batched[0]].shape
            raise UnsupportedModel(f"ncnn has no batch axis: each input is fed without its "
                                   f"first axis, so input {batched[0]!r} of shape "
                                   f"{tuple(shape)} would lose {shape[0] - 1} of its "
                                   f"{shape[0]} slices; only a first axis of 1 can run")
        shapes = pnnx_input_shapes(signature.inputs)
        with tempfile.TemporaryDirectory() as tmp:
            _copy_for_pnnx(onnx_path, Path(tmp) / "model.onnx")
            fp16 = int(get_variant(variant).float_precision == "fp16")
            done = subprocess.run([pnnx.EXEC_PATH, "model.onnx", f"inputshape={shapes}",
                                   f"fp16={fp16}"], cwd=tmp, capture_output=True, text=True,
                                  timeout=PNNX_TIMEOUT_S, check=False)
            param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
            if done.returncode != 0 or not param.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"pnnx failed (exit {done.returncode}): {tail[0]}")
            shutil.copy(weights, out_dir / "model.bin")
            shutil.copy(param, out_dir / "model.param")
        if fp16:
            write_notes(out_dir, {"tool": "pnnx fp16=1 (float16 weights)"})
        return out_dir / "model.param"

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import ncnn

        lightmode = cls.tuning_value(options, "lightmode")
        net = ncnn.Net()
        net.opt.num_threads = options.threads
        net.opt.lightmode = lightmode == "on"
        fp16 = get_variant(options.variant).float_precision == "fp16"
        fp16_arithmetic = fp16 and bool(ncnn.cpu_support_arm_asimdhp())
        for flag in ("use_fp16_packed", "use_fp16_storage"):
            setattr(net.opt, flag, fp16)  # fp32 means fp32 storage and arithmetic
        net.opt.use_fp16_arithmetic = fp16_arithmetic
        net.opt.use_bf16_storage = False
        net.opt.use_int8_inference = False
        weights = artifact.with_suffix(".bin")
        if not artifact.is_file() or not weights.is_file():
            raise ArtifactError(f"ncnn cannot load {artifact}: missing {artifact.name} or "
                                f"{weights.name}")
        with _native_stderr() as said:
            loaded = net.load_param(str(artifact)) == 0 and net.load_model(str(weights)) == 0
        if not loaded or not net.input_names() or not net.output_names():
            detail = " ".join("".join(said).split()) or "not a valid ncnn param/bin pair"
            raise ArtifactError(f"ncnn cannot load {artifact}: {detail}")
        # read back from the net's own options after loading (ncnn turns off what the CPU
        # cannot do): the arithmetic precision follows use_fp16_arithmetic
        settings = settings_record({
            "threads": net.opt.num_threads, "lightmode": "on" if net.opt.lightmode else "off",
            "precision": "fp16" if net.opt.use_fp16_arithmetic else "fp32",
            "fp16_storage": net.opt.use_fp16_storage,
            "fp16_arithmetic": net.opt.use_fp16_arithmetic})
        if len(net.input_names()) != len(options.input_names) or \
                len(net.output_names()) != len(options.output_names):
            raise ArtifactError(f"ncnn model {artifact} has {len(net.input_names())} inputs and "
                                f"{len(net.output_names())} outputs; the model has "
                                f"{len(options.input_names)} and {len(options.output_names)}")
        return NcnnPrepared(net, options, settings)
