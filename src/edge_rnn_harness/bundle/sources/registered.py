"""A registered model (models/registry.py) with its committed or given weights; the eager
PyTorch definition is its reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.backends.base import Backend, Calibration, Signature
from edge_rnn_harness.bundle.sources.base import INPUT_SEED, PARITY_WINDOWS, ModelSource, Window
from edge_rnn_harness.core.plan import STEP_FORM
from edge_rnn_harness.models.registry import ModelEntry
from edge_rnn_harness.models.spec import INPUT_NAME, OUTPUT_NAME, step_names


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
        spec = self.model_entry.spec
        return self._windows(1, spec.seq_len)

    def _windows(self, batch: int, seq_len: int) -> tuple[Signature, list[Window]]:
        """PARITY_WINDOWS seeded random inputs of (batch, seq_len, features) in the range
        of the training data, and the eager definition's forecasts for them."""
        import torch

        model = self._loaded()
        rng = np.random.default_rng(INPUT_SEED)
        shape = (PARITY_WINDOWS, batch, seq_len, self.model_entry.spec.input_features)
        mean, std = model.input_mean.numpy(), model.input_std.numpy()
        xs = (rng.standard_normal(shape) * std + mean).astype(np.float32)
        with torch.inference_mode():
            windows = [({INPUT_NAME: x}, {OUTPUT_NAME: model(torch.from_numpy(x)).numpy()})
                       for x in xs]
        return Signature({INPUT_NAME: np.zeros_like(xs[0])}, (OUTPUT_NAME,)), windows

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path, calibration: Calibration | None = None) -> Path:
        return backend.export(self._loaded(), signature, variant, out_dir, calibration)

    def form_reference(self, form: str) -> tuple[Signature, list[Window] | None]:
        """The step graph's signature (zero state), or random windows of another length
        and batch run through the eager definition."""
        spec = self.model_entry.spec
        if form == STEP_FORM:
            inputs, outputs = step_names(spec.cell)
            state = np.zeros((spec.num_layers, 1, spec.hidden_size), np.float32)
            examples = {inputs[0]: np.zeros((1, 1, spec.input_features), np.float32),
                        **{name: state for name in inputs[1:]}}
            return Signature(examples, outputs), None
        seq_len, batch = (int(part[1:]) for part in form.split("-"))
        return self._windows(batch, seq_len)

    def form_export(self, backend: type[Backend], signature: Signature, variant: str,
                    out_dir: Path, form: str) -> tuple[Path, dict[str, Any]]:
        """The window model traced at the form's shape, or the step graph (notes: its state
        names and shape, what the device needs to carry it)."""
        from edge_rnn_harness.models.forecaster import step_of

        if form != STEP_FORM:
            return backend.export(self._loaded(), signature, variant, out_dir), {}
        spec = self.model_entry.spec
        inputs, outputs = step_names(spec.cell)
        notes = {"step_inputs": ",".join(inputs), "step_outputs": ",".join(outputs),
                 "state_shape": f"{spec.num_layers},1,{spec.hidden_size}"}
        return backend.export(step_of(self._loaded()), signature, variant, out_dir), notes

    def seq_len(self) -> int:
        return self.model_entry.spec.seq_len

    def params(self) -> int | None:
        return self.model_entry.spec.parameter_count()

    def entry(self) -> ModelEntry | None:
        return self.model_entry


