"""The PyTorch reference backend ("torch"): the definition itself, run eagerly.

The artifact is data only: `weights.npz` (every tensor of the state dict, loaded without
unpickling) and `architecture.json`, from which `prepare` rebuilds the module from its
source: a registered forecaster from its ModelSpec, a module brought as
`package.module:callable` from that callable, which the user names on the command line
(RunOptions.module_callable): a name read from a bundle is never imported.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import zipfile
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
)
from edge_rnn_harness.models.spec import ModelSpec

WEIGHTS_FILE = "weights.npz"
ARCHITECTURE_FILE = "architecture.json"
#: an architecture file larger than this is refused unread
MAX_ARCHITECTURE_BYTES = 64 << 10


def as_tuple(value: Any) -> tuple:
    """`value` as a tuple (a module's single output or example input becomes a 1-tuple)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def module_from_callable(target: str) -> tuple[Any, tuple]:
    """Import `package.module:callable` (from the current folder too, as `python -m` does)
    and call it: (module in eval mode, example tensors). ValueError naming what is wrong."""
    import torch

    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--model {target}: cannot import it ({error})") from None
    made = factory()
    if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module)):
        raise ValueError(f"--model {target}: the callable must return "
                         f"(torch.nn.Module, example input)")
    examples = as_tuple(made[1])
    if not all(isinstance(t, torch.Tensor) for t in examples):
        raise ValueError(f"--model {target}: the example input must be a tensor or a tuple "
                         f"of tensors")
    return made[0].eval(), examples


class TorchPrepared(PreparedModel):
    """An eval-mode module called eagerly under `torch.inference_mode`."""

    def __init__(self, model: Any, options: RunOptions) -> None:
        import torch

        self._torch = torch
        self._model = model
        self._input_names = options.input_names
        self._output_names = options.output_names
        self.settings = {"threads": torch.get_num_threads(),
                         "precision": _precision(model), "mode": "eager"}

    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        return [self._torch.from_numpy(np.ascontiguousarray(inputs[name]))
                for name in self._input_names]

    def run(self, fed: object) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            result = self._model(*fed)  # type: ignore[misc]
        return {name: tensor.numpy()
                for name, tensor in zip(self._output_names, as_tuple(result))}

    def close(self) -> None:
        self._model = None


def _precision(model: Any) -> str:
    """The parameters' dtype as read from the module (e.g. fp32)."""
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters()}
    names = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}
    return ",".join(sorted(names.get(d, d) for d in dtypes)) or "none"


def _architecture(model: Any) -> dict[str, Any]:
    from edge_rnn_harness.models.forecaster import Forecaster, StepForecaster

    if isinstance(model, Forecaster):
        return {"forecaster": json.loads(model.spec.to_json()),
                **({"step": True} if isinstance(model, StepForecaster) else {})}
    return {"callable": True}


class TorchBackend(Backend):
    """PyTorch eager execution of the definition: the reference every runtime is compared
    with. Artifact: weights.npz + architecture.json (no pickle)."""

    name = "torch"
    fmt = "pt-weights"
    runtime_module = "torch"
    runtime_dist = "torch"
    export_deps = ("torch",)
    unsupported_why: ClassVar[Mapping[str, str]] = dict.fromkeys(
        ("fp16", "int8-dynamic", "int8-static"),
        "the PyTorch reference runs the fp32 definition only (it is what the variants are "
        "compared with, not a deployment target)")
    description = "PyTorch eager (the reference)"

    @classmethod
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path,
               calibration: Calibration | None = None) -> Path:
        arrays = {key: tensor.detach().cpu().contiguous().numpy()
                  for key, tensor in model.state_dict().items()}
        np.savez(out_dir / WEIGHTS_FILE, **arrays)
        path = out_dir / ARCHITECTURE_FILE
        path.write_text(json.dumps(_architecture(model), sort_keys=True))
        return path

    @classmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        import torch

        torch.set_num_threads(options.threads)
        model = _rebuild(artifact, options)
        try:
            with np.load(artifact.parent / WEIGHTS_FILE, allow_pickle=False) as data:
                state = {key: torch.from_numpy(data[key].copy()) for key in data.files}
            model.load_state_dict(state, strict=True)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise ArtifactError(f"cannot load {artifact.parent / WEIGHTS_FILE}: "
                                f"{' '.join(str(error).split())[:200]}") from error
        return TorchPrepared(model.eval(), options)


def weight_elements(path: Path) -> int:
    """How many numbers the arrays of an npz file hold, from each array's header only (no
    data read). ValueError for a file that is not an npz of plain arrays."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as member:
                major, _ = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 \
                    else np.lib.format.read_array_header_2_0
                shape, _, _ = read_header(member)
            total += math.prod(shape)
    return total


def _check_weights_hold(spec: ModelSpec, weights: Path) -> None:
    """ValueError when architecture.json describes more parameters than weights.npz holds
    (checked from the file's array headers before the module is built, so a doctored
    architecture cannot make the device allocate gigabytes first)."""
    try:
        held = weight_elements(weights)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{weights.name} is not readable as weights ({error})") from None
    if spec.parameter_count() > held:
        raise ValueError(f"architecture.json describes {spec.parameter_count():,} parameters "
                         f"but {weights.name} holds {held:,} numbers: the two files do not "
                         f"belong together")


def _rebuild(artifact: Path, options: RunOptions) -> Any:
    """The module with fresh parameters, from architecture.json."""
    from edge_rnn_harness.models.forecaster import build, step_of

    try:
        if artifact.stat().st_size > MAX_ARCHITECTURE_BYTES:
            raise ValueError("file too large")
        architecture = json.loads(artifact.read_text())
        if "forecaster" in architecture:
            spec = ModelSpec(**architecture["forecaster"])
            _check_weights_hold(spec, artifact.parent / WEIGHTS_FILE)  # before allocating
            model = build(spec)
            return step_of(model) if architecture.get("step") is True else model
    except (OSError, ValueError, TypeError) as error:
        raise ArtifactError(f"cannot load {artifact}: {error}") from error
    if architecture.get("callable") and options.module_callable:
        return module_from_callable(options.module_callable)[0]
    raise ArtifactError(f"{artifact}: the module was brought as package.module:callable; "
                        f"it is rebuilt only from a callable named on the command line "
                        f"(--model package.module:callable on the host)")
