"""Named models: a spec plus where its weights come from.

To swap in trained weights, set `weights=` on the entry to a file under models/weights/
(a `torch.save`d state dict); until then the model is a seeded initialisation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.spec import ModelSpec

if TYPE_CHECKING:
    from models.forecaster import Forecaster

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, architecture, weights file (or None: seeded init)."""

    name: str
    spec: ModelSpec
    description: str
    weights: str | None = None
    seed: int = 0

    def weights_path(self) -> Path | None:
        """Absolute path of the weights file, or None for a seeded initialisation."""
        return WEIGHTS_DIR / self.weights if self.weights else None

    def identity(self) -> str:
        """Hash of everything that defines the network's numbers (spec and weights).

        Computed without importing torch: the weights file's bytes, or the seed.
        """
        digest = hashlib.sha256(self.spec.to_json().encode())
        path = self.weights_path()
        if path is None:
            digest.update(f"seed:{self.seed}".encode())
        else:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def load(self) -> "Forecaster":
        """Build the PyTorch module with its weights, in eval mode (imports torch)."""
        import torch

        from models.forecaster import build

        model = build(self.spec, seed=self.seed)
        path = self.weights_path()
        if path is not None:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("lstm", ModelSpec(cell="lstm", hidden_size=64),
                   "default: 1-layer LSTM, hidden 64, 24 hourly values in, 1 out"),
        ModelEntry("gru", ModelSpec(cell="gru", hidden_size=64),
                   "1-layer GRU, hidden 64"),
        ModelEntry("rnn", ModelSpec(cell="rnn", hidden_size=64),
                   "1-layer vanilla (tanh) RNN, hidden 64"),
        ModelEntry("tiny", ModelSpec(cell="lstm", hidden_size=8),
                   "smoke-test LSTM, hidden 8 (used by the test suite)"),
    )
}

DEFAULT_MODEL = "lstm"


def model_names() -> list[str]:
    """Registered model names, in registry order."""
    return list(MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registered model `name`; ValueError naming the valid ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose from: {', '.join(MODELS)}"
        ) from None
