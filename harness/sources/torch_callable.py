"""A PyTorch module brought as `package.module:callable`; the eager module is its reference."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.backends.base import Backend, Calibration, Signature
from edge_rnn_harness.backends.torch_ref import as_tuple, module_from_callable
from edge_rnn_harness.sources.base import INPUT_SEED, PARITY_WINDOWS, ModelSource, Window


@dataclass
class TorchCallableSource(ModelSource):
    """`package.module:callable`: the callable returns (torch module, example input), the
    example a tensor or a tuple of tensors with batch 1. Exported like the built-in models."""

    target: str
    name: str = ""
    _loaded: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.target

    def load(self) -> tuple[Any, tuple]:
        """(module in eval mode, example tensors); ValueError naming what is wrong."""
        if self._loaded is None:
            self._loaded = module_from_callable(self.target)
        return self._loaded

    def compute_identity(self) -> str:
        module, examples = self.load()
        digest = hashlib.sha256(self.target.encode())
        for key, tensor in module.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digest.update(json.dumps([list(t.shape) for t in examples]).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": "torch", "target": self.target}

    def reference(self) -> tuple[Signature, list[Window]]:
        """The example input plus seeded random windows of its shapes, run eagerly."""
        import torch

        module, examples = self.load()
        rng = np.random.default_rng(INPUT_SEED)
        names = [f"input_{i}" for i in range(len(examples))]
        inputs = [[t.numpy() for t in examples]] + [
            [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in examples]
            for _ in range(PARITY_WINDOWS - 1)]
        windows = []
        for arrays in inputs:
            with torch.inference_mode():
                outputs = as_tuple(module(*[torch.from_numpy(a) for a in arrays]))
            windows.append((dict(zip(names, arrays)),
                            {f"output_{i}": o.numpy() for i, o in enumerate(outputs)}))
        signature = Signature(dict(zip(names, inputs[0])), tuple(windows[0][1]))
        return signature, windows

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path, calibration: Calibration | None = None) -> Path:
        return backend.export(self.load()[0], signature, variant, out_dir, calibration)

    def params(self) -> int | None:
        return int(sum(p.numel() for p in self.load()[0].parameters()))


