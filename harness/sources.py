"""Where a model comes from: a registered model, a user's ONNX file, or a PyTorch module
from `package.module:callable`. The bundle, runner and CLI see only this interface.

Reference windows are what parity is judged on: (inputs, expected outputs) pairs, every
output of the model included. A registered model or a PyTorch module is its own reference
(eager PyTorch); an ONNX file's reference is the expected outputs shipped beside it in the
ONNX test-data layout, else onnx.reference.ReferenceEvaluator, which is independent of
every backend under test.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend, Signature
from models.registry import ModelEntry, get_entry
from models.spec import INPUT_NAME, OUTPUT_NAME

PARITY_WINDOWS = 8
INPUT_SEED = 1234
Window = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


class ModelSource(ABC):
    """A model the harness can export, run and check."""

    name: str

    def identity(self) -> str:
        """Hash of everything that defines the model's numbers (part of the cache key);
        computed once per source."""
        cached = self.__dict__.get("_identity")
        if cached is None:
            cached = self.__dict__["_identity"] = self.compute_identity()
        return cached

    @abstractmethod
    def compute_identity(self) -> str:
        """Compute `identity()` (validating the model where that is possible)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-able description; `source_from_description` rebuilds the source from it."""

    @abstractmethod
    def reference(self) -> tuple[Signature, list[Window]]:
        """The signature and the reference windows (may import torch or onnx)."""

    @abstractmethod
    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path) -> Path:
        """Write `backend`'s artifact under `out_dir` (may raise UnsupportedModel)."""

    def seq_len(self) -> int:
        """Window length of a registered forecaster; 0 for a model brought as-is."""
        return 0

    def params(self) -> int | None:
        """Number of parameters, where known."""
        return None

    def entry(self) -> ModelEntry | None:
        """The registry entry (for accuracy on a dataset), for registered models only."""
        return None

    def folder_name(self) -> str:
        """A file-system-safe folder name, unique per identity."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("_") or "model"
        return f"{safe[:60]}-{self.identity()[:12]}"


@dataclass
class RegisteredSource(ModelSource):
    """A model from models/registry.py, with its committed (or given) weights."""

    model_entry: ModelEntry
    name: str = ""
    _module: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.model_entry.name

    def compute_identity(self) -> str:
        return self.model_entry.identity()

    def describe(self) -> dict[str, Any]:
        return {"kind": "registered", "name": self.name,
                "weights_dir": str(self.model_entry.weights_dir)}

    def _loaded(self) -> Any:
        if self._module is None:
            self._module = self.model_entry.load()
        return self._module

    def reference(self) -> tuple[Signature, list[Window]]:
        """Random windows in the range of the training data (the model's own
        standardisation), run through the eager PyTorch definition."""
        import torch

        model = self._loaded()
        rng = np.random.default_rng(INPUT_SEED)
        shape = (PARITY_WINDOWS, *self.model_entry.spec.input_shape(1))
        mean, std = model.input_mean.numpy(), model.input_std.numpy()
        xs = (rng.standard_normal(shape) * std + mean).astype(np.float32)
        with torch.inference_mode():
            windows = [({INPUT_NAME: x}, {OUTPUT_NAME: model(torch.from_numpy(x)).numpy()})
                       for x in xs]
        return Signature({INPUT_NAME: np.zeros_like(xs[0])}, (OUTPUT_NAME,)), windows

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path) -> Path:
        return backend.export(self._loaded(), signature, variant, out_dir)

    def seq_len(self) -> int:
        return self.model_entry.spec.seq_len

    def params(self) -> int | None:
        return self.model_entry.spec.parameter_count()

    def entry(self) -> ModelEntry | None:
        return self.model_entry


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


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
            import torch

            module_name, _, attribute = self.target.partition(":")
            if os.getcwd() not in sys.path:  # as `python -m` does: modules beside the user
                sys.path.insert(0, os.getcwd())
            try:
                factory = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as error:
                raise ValueError(f"--model {self.target}: cannot import it ({error})") from None
            made = factory()
            if not (isinstance(made, tuple) and len(made) == 2
                    and isinstance(made[0], torch.nn.Module)):
                raise ValueError(f"--model {self.target}: the callable must return "
                                 f"(torch.nn.Module, example input)")
            examples = _as_tuple(made[1])
            if not all(isinstance(t, torch.Tensor) for t in examples):
                raise ValueError(f"--model {self.target}: the example input must be a tensor "
                                 f"or a tuple of tensors")
            self._loaded = (made[0].eval(), examples)
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
                outputs = _as_tuple(module(*[torch.from_numpy(a) for a in arrays]))
            windows.append((dict(zip(names, arrays)),
                            {f"output_{i}": o.numpy() for i, o in enumerate(outputs)}))
        signature = Signature(dict(zip(names, inputs[0])), tuple(windows[0][1]))
        return signature, windows

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path) -> Path:
        return backend.export(self.load()[0], signature, variant, out_dir)

    def params(self) -> int | None:
        return int(sum(p.numel() for p in self.load()[0].parameters()))


def source_from_description(description: dict[str, Any]) -> ModelSource:
    """Rebuild a source from `ModelSource.describe()` output (in a child process)."""
    from harness.onnx_source import OnnxSource

    kind = description["kind"]
    if kind == "registered":
        return RegisteredSource(get_entry(description["name"],
                                          Path(description["weights_dir"])))
    if kind == "torch":
        return TorchCallableSource(description["target"])
    if kind == "onnx":
        return OnnxSource(Path(description["path"]),
                          Path(description["inputs"]) if description["inputs"] else None,
                          {k: tuple(v) for k, v in description["shapes"].items()})
    raise ValueError(f"unknown model source kind {kind!r}")


def resolve_source(spec: str, weights_dir: Path | None = None,
                   inputs: Path | None = None,
                   shapes: dict[str, tuple[int, ...]] | None = None) -> ModelSource:
    """A `--model` value: a registered name, a path to an .onnx file, or module:callable.

    Raises ValueError naming what is wrong (unknown name, unreadable file, bad callable).
    """
    from harness.onnx_source import OnnxSource

    if spec.endswith(".onnx") or Path(spec).is_file():
        source: ModelSource = OnnxSource(Path(spec), inputs, shapes or {})
        source.identity()  # validates the file, the inputs and the shapes
        return source
    if ":" in spec:
        source = TorchCallableSource(spec)
        source.load()
        return source
    return RegisteredSource(get_entry(spec, weights_dir))


def write_reference(path: Path, windows: list[Window]) -> None:
    """Save reference windows: arrays "in:<name>" and "out:<name>" stacked over windows."""
    arrays = {f"in:{name}": np.stack([w[0][name] for w in windows]) for name in windows[0][0]}
    arrays.update({f"out:{name}": np.stack([w[1][name] for w in windows])
                   for name in windows[0][1]})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_reference(path: Path) -> list[Window]:
    """Reference windows written by `write_reference`, names in the model's order."""
    with np.load(path) as data:
        inputs = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
        outputs = {k[4:]: data[k] for k in data.files if k.startswith("out:")}
    count = len(next(iter(inputs.values())))
    return [({n: a[i] for n, a in inputs.items()}, {n: a[i] for n, a in outputs.items()})
            for i in range(count)]
