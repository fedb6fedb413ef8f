"""The PyTorch forecaster: one class for the vanilla RNN, LSTM and GRU cells."""

from __future__ import annotations

import torch
from torch import nn

from models.spec import ModelSpec

_CELL_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Forecaster(nn.Module):
    """Stacked recurrent layers over the window, then a linear head on the last step.

    forward(x): x is (batch, seq_len, input_features) float32; returns (batch, horizon).
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        cell = _CELL_CLASSES[spec.cell]
        self.rnn = cell(
            input_size=spec.input_features,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            batch_first=True,
        )
        self.head = nn.Linear(spec.hidden_size, spec.horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forecast the next `horizon` values from the window `x`."""
        sequence, _ = self.rnn(x)
        return self.head(sequence[:, -1, :])


def build(spec: ModelSpec, seed: int = 0) -> Forecaster:
    """A forecaster with a deterministic, seeded initialisation, in eval mode."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Forecaster(spec)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
