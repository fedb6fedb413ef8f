"""The PyTorch forecaster: one class for the vanilla RNN, LSTM and GRU cells.

Standardisation lives inside the network as buffers (fitted on the training split and
saved with the weights), so every exported artifact takes raw inputs in the data's units
and returns forecasts in the target's units: nothing to re-implement on the device.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_rnn_harness.models.spec import ModelSpec

_CELL_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Forecaster(nn.Module):
    """Standardise, stacked recurrent layers over the window, a linear head on the last
    step, de-standardise.

    forward(x): x is (batch, seq_len, input_features) float32 in data units; returns
    (batch, horizon) in the target's units.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        cell = _CELL_CLASSES[spec.cell]
        self.rnn = cell(input_size=spec.input_features, hidden_size=spec.hidden_size,
                        num_layers=spec.num_layers, batch_first=True)
        self.head = nn.Linear(spec.hidden_size, spec.horizon)
        self.register_buffer("input_mean", torch.zeros(spec.input_features))
        self.register_buffer("input_std", torch.ones(spec.input_features))
        self.register_buffer("output_mean", torch.zeros(spec.horizon))
        self.register_buffer("output_std", torch.ones(spec.horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forecast the next `horizon` values from the window `x`."""
        return self.standardised_forward((x - self.input_mean) / self.input_std) \
            * self.output_std + self.output_mean

    def standardised_forward(self, z: torch.Tensor) -> torch.Tensor:
        """The network on standardised inputs, returning standardised forecasts (training
        works in this space)."""
        sequence, _ = self.rnn(z)
        return self.head(sequence[:, -1, :])

    def set_standardisation(self, input_mean: torch.Tensor, input_std: torch.Tensor,
                            output_mean: torch.Tensor, output_std: torch.Tensor) -> None:
        """Store the training split's per-feature and per-target mean and std."""
        for name, value in (("input_mean", input_mean), ("input_std", input_std),
                            ("output_mean", output_mean), ("output_std", output_std)):
            getattr(self, name).copy_(value)


def build(spec: ModelSpec, seed: int = 0) -> Forecaster:
    """A forecaster with a deterministic, seeded initialisation, in eval mode."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Forecaster(spec)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
