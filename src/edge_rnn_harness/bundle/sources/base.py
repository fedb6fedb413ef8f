"""What every model source offers: the harness sees models only through this interface.

Reference windows are what parity is judged on: (inputs, expected outputs) pairs, every
output of the model included.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from edge_rnn_harness.backends.base import Backend, Calibration, Signature, UnsupportedModel
from edge_rnn_harness.bundle.reader import Window
from edge_rnn_harness.core.parity import SecondOpinion
from edge_rnn_harness.models.registry import ModelEntry

PARITY_WINDOWS = 8
INPUT_SEED = 1234

__all__ = ["INPUT_SEED", "PARITY_WINDOWS", "ModelSource", "Window"]


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

    def second_opinion(self, windows: list[Window]) -> SecondOpinion | None:
        """A second implementation's outputs where it disputes the reference windows'
        expected outputs (see parity.SecondOpinion); None for a reference that is the
        model's own definition or its shipped outputs."""
        return None

    @abstractmethod
    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path, calibration: Calibration | None = None) -> Path:
        """Write `backend`'s artifact for `variant` under `out_dir`, calibrating on
        `calibration` where the variant needs it (may raise UnsupportedModel)."""

    def form_reference(self, form: str) -> tuple[Signature, list[Window] | None]:
        """Another form of the model (plan.artifact_form: "step" or "s<seq_len>-b<batch>"):
        its signature and its own reference windows (None for the step graph, whose parity
        steps through the model's windows). UnsupportedModel for a model with fixed shapes."""
        raise UnsupportedModel(f"{self.name} was brought with fixed shapes (an ONNX file or "
                               f"a callable): other window lengths, batches and the "
                               f"streaming step graph need a registered model")

    def form_export(self, backend: type[Backend], signature: Signature, variant: str,
                    out_dir: Path, form: str) -> tuple[Path, dict[str, Any]]:
        """Write `backend`'s artifact of `form` under `out_dir`: (the file the runtime
        opens, notes for the manifest). UnsupportedModel as form_reference."""
        self.form_reference(form)
        raise AssertionError("unreachable")

    def calibration(self) -> Calibration | None:
        """Calibration windows the model brought itself (real inputs a user supplied), or
        None; a registered model's come from its dataset's training split instead."""
        return None

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


