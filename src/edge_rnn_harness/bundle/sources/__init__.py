"""Where a model comes from: a registered model, a user's ONNX file, or a PyTorch module
from `package.module:callable` (host side: exporting needs the definition and converters).
The exporter, runner and CLI see only the ModelSource interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_rnn_harness.bundle.sources.base import INPUT_SEED, PARITY_WINDOWS, ModelSource, Window
from edge_rnn_harness.bundle.sources.onnx_file import OnnxSource, parse_shape
from edge_rnn_harness.bundle.sources.registered import RegisteredSource
from edge_rnn_harness.bundle.sources.torch_callable import TorchCallableSource
from edge_rnn_harness.models.registry import get_entry

__all__ = ["INPUT_SEED", "PARITY_WINDOWS", "ModelSource", "OnnxSource", "RegisteredSource",
           "TorchCallableSource", "Window", "parse_shape", "resolve_source",
           "source_from_description"]


def source_from_description(description: dict[str, Any]) -> ModelSource:
    """Rebuild a source from `ModelSource.describe()` output (in a child process)."""
    kind = description["kind"]
    if kind == "registered":
        return RegisteredSource(get_entry(description["name"],
                                          Path(description["weights_dir"])))
    if kind == "torch":
        return TorchCallableSource(description["target"], _probed=description.get("probed"))
    if kind == "onnx":
        return OnnxSource(Path(description["path"]),
                          Path(description["inputs"]) if description["inputs"] else None,
                          {k: tuple(v) for k, v in description["shapes"].items()})
    raise ValueError(f"unknown model source kind {kind!r}")


def resolve_source(spec: str, weights_dir: Path | None = None,
                   inputs: Path | None = None,
                   shapes: dict[str, tuple[int, ...]] | None = None,
                   timeout_s: float = 600.0) -> ModelSource:
    """A `--model` value: a registered name, a path to an .onnx file, or module:callable
    (imported and called in a child within `timeout_s` seconds).

    Raises ValueError naming what is wrong (unknown name, unreadable file, bad callable).
    """
    if spec.endswith(".onnx") or Path(spec).is_file():
        source: ModelSource = OnnxSource(Path(spec), inputs, shapes or {})
        source.identity()  # validates the file, the inputs and the shapes
        return source
    if ":" in spec:
        source = TorchCallableSource(spec, timeout_s=timeout_s)
        source.identity()  # in the probe child
        return source
    return RegisteredSource(get_entry(spec, weights_dir))


