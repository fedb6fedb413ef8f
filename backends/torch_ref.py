"""The PyTorch reference backend ("torch"): the definition itself, run eagerly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ArtifactError, Backend, PreparedModel, RunOptions
from models.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec


class TorchPrepared(PreparedModel):
    """An eval-mode Forecaster run under `torch.inference_mode`."""

    def __init__(self, model: Any) -> None:
        import torch

        self._torch = torch
        self._model = model
        self.settings = {"threads": torch.get_num_threads(), "precision": "fp32",
                         "mode": "eager"}

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return self._torch.from_numpy(np.ascontiguousarray(inputs[INPUT_NAME]))

    def run(self, fed: object) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            return {OUTPUT_NAME: self._model(fed).numpy()}

    def close(self) -> None:
        self._model = None


class TorchBackend(Backend):
    """PyTorch eager execution of the saved definition: the reference every runtime is
    compared with. Artifact: a .pt file with the spec and the state dict."""

    name = "torch"
    fmt = "pt"
    runtime_module = "torch"
    runtime_dist = "torch"
    export_deps = ("torch",)
    description = "PyTorch eager (the reference)"

    @classmethod
    def export(cls, model: Any, spec: ModelSpec, variant: str, out_dir: Path,
               calib: Any = None) -> Path:
        import dataclasses

        import torch

        path = out_dir / "model.pt"
        torch.save({"spec": dataclasses.asdict(spec), "state_dict": model.state_dict()}, path)
        return path

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import torch

        from models.forecaster import Forecaster

        torch.set_num_threads(options.threads)
        try:
            saved = torch.load(artifact, map_location="cpu", weights_only=True)
            model = Forecaster(ModelSpec.from_dict(saved["spec"]))
            model.load_state_dict(saved["state_dict"])
        except Exception as error:  # torch raises many types for a bad file
            raise ArtifactError(f"cannot load {artifact}: {error}") from error
        return TorchPrepared(model.eval())
