"""ncnn backend ("ncnn"): ONNX -> pnnx (fp16=0 for fp32) -> ncnn param/bin, ncnn.Net.

ncnn has no batch axis: a (1, seq_len, features) window is fed as a (seq_len, features)
Mat and the batch axis is put back on the output.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ArtifactError, Backend, PreparedModel, RunOptions
from backends.onnx_export import ONNX_EXPORT_DEPS, export_onnx
from models.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec

PNNX_TIMEOUT_S = 300


class NcnnPrepared(PreparedModel):
    """A loaded ncnn.Net; each run makes an extractor, as ncnn's API intends."""

    def __init__(self, net: Any, settings: dict[str, Any]) -> None:
        import ncnn

        self._ncnn = ncnn
        self._net = net
        self._input_name = net.input_names()[0]
        self._output_name = net.output_names()[0]
        self.settings = settings

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        window = np.ascontiguousarray(inputs[INPUT_NAME][0], dtype=np.float32)
        return window, self._ncnn.Mat(window)  # keep the array alive with its Mat

    def run(self, fed: object) -> dict[str, np.ndarray]:
        extractor = self._net.create_extractor()
        extractor.input(self._input_name, fed[1])  # type: ignore[index]
        status, output = extractor.extract(self._output_name)
        if status != 0:
            raise RuntimeError(f"ncnn extract returned {status}")
        return {OUTPUT_NAME: np.array(output)[None, ...]}

    def close(self) -> None:
        if self._net is not None:
            self._net.clear()
        self._net = None


class NcnnBackend(Backend):
    """ncnn CPU. Tuning: `lightmode` = on|off (default on: free intermediates early)."""

    name = "ncnn"
    fmt = "ncnn"
    runtime_module = "ncnn"
    runtime_dist = "ncnn"
    export_deps = (*ONNX_EXPORT_DEPS, "pnnx")
    description = "ncnn CPU, fp32 storage and arithmetic"
    tuning_choices = {"lightmode": ("on", "off")}

    @classmethod
    def export(cls, model: Any, spec: ModelSpec, variant: str, out_dir: Path,
               calib: Any = None) -> Path:
        import pnnx

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, spec, Path(tmp) / "model.onnx")
            shape = ",".join(str(n) for n in spec.input_shape(1))
            done = subprocess.run([pnnx.EXEC_PATH, onnx_path.name, f"inputshape=[{shape}]",
                                   "fp16=0"], cwd=tmp, capture_output=True, text=True,
                                  timeout=PNNX_TIMEOUT_S)
            param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
            if done.returncode != 0 or not param.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"pnnx failed (exit {done.returncode}): {tail[0]}")
            shutil.copy(weights, out_dir / "model.bin")
            shutil.copy(param, out_dir / "model.param")
        return out_dir / "model.param"

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import ncnn

        lightmode = cls.tuning_value(options, "lightmode")
        net = ncnn.Net()
        net.opt.num_threads = options.threads
        net.opt.lightmode = lightmode == "on"
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_int8_inference"):
            setattr(net.opt, flag, False)  # fp32 means fp32 storage and arithmetic
        weights = artifact.with_suffix(".bin")
        if not artifact.is_file() or not weights.is_file():
            raise ArtifactError(f"ncnn cannot load {artifact}: missing {artifact.name} or "
                                f"{weights.name}")
        if net.load_param(str(artifact)) != 0 or net.load_model(str(weights)) != 0 \
                or not net.input_names() or not net.output_names():
            raise ArtifactError(f"ncnn cannot load {artifact}: not a valid ncnn param/bin pair")
        settings = {"threads": net.opt.num_threads, "precision": "fp32",
                    "lightmode": lightmode}
        return NcnnPrepared(net, settings)
