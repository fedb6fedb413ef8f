"""The PyTorch reference backend ("torch"): the definition itself, run eagerly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ArtifactError, Backend, PreparedModel, RunOptions, Signature


class TorchPrepared(PreparedModel):
    """An eval-mode module called eagerly under `torch.inference_mode`."""

    def __init__(self, model: Any, options: RunOptions) -> None:
        import torch

        self._torch = torch
        self._model = model
        self._input_names = options.input_names
        self._output_names = options.output_names
        self.settings = {"threads": torch.get_num_threads(), "precision": "fp32",
                         "mode": "eager"}

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return [self._torch.from_numpy(np.ascontiguousarray(inputs[name]))
                for name in self._input_names]

    def run(self, fed: object) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            result = self._model(*fed)  # type: ignore[misc]
        tensors = result if isinstance(result, (tuple, list)) else (result,)
        return {name: tensor.numpy() for name, tensor in zip(self._output_names, tensors)}

    def close(self) -> None:
        self._model = None


class TorchBackend(Backend):
    """PyTorch eager execution of the saved definition: the reference every runtime is
    compared with. Artifact: the whole module saved with torch.save (loading it needs the
    module's class importable, as it is for the models here and a module:callable)."""

    name = "torch"
    fmt = "pt"
    runtime_module = "torch"
    runtime_dist = "torch"
    export_deps = ("torch",)
    description = "PyTorch eager (the reference)"

    @classmethod
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path,
               calib: Any = None) -> Path:
        import torch

        path = out_dir / "model.pt"
        torch.save(model, path)
        return path

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import torch

        torch.set_num_threads(options.threads)
        try:
            model = torch.load(artifact, map_location="cpu", weights_only=False)
        except Exception as error:  # torch raises many types for a bad file
            raise ArtifactError(f"cannot load {artifact}: {error}") from error
        if not isinstance(model, torch.nn.Module):
            raise ArtifactError(f"cannot load {artifact}: it holds no torch module")
        return TorchPrepared(model.eval(), options)
