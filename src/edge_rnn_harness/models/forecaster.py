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


class StepForecaster(Forecaster):
    """The same network as one streaming step with its recurrent state explicit: one new
    value in, the state carried between calls (the same parameters and state_dict keys as
    Forecaster, so one set of weights serves both).

    forward(x, h[, c]): x is (1, 1, input_features), h (and c for an LSTM) is
    (num_layers, 1, hidden_size), zeros at the start of a stream; returns (y, h_out[,
    c_out]), y (1, horizon) the forecast after this step. Stepping through a window from
    zero state gives the window model's forecast.
    """

    def forward(self, x: torch.Tensor, h: torch.Tensor,  # type: ignore[override]
                c: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        z = (x - self.input_mean) / self.input_std
        if self.spec.cell == "lstm":
            sequence, (h_out, c_out) = self.rnn(z, (h, c))
            states: tuple[torch.Tensor, ...] = (h_out, c_out)
        else:
            sequence, h_out = self.rnn(z, h)
            states = (h_out,)
        y = self.head(sequence[:, -1, :]) * self.output_std + self.output_mean
        return (y, *states)


def step_of(model: Forecaster) -> StepForecaster:
    """A StepForecaster sharing `model`'s spec and weights, in eval mode."""
    step = StepForecaster(model.spec)
    step.load_state_dict(model.state_dict())
    return step.eval()


def build(spec: ModelSpec, seed: int = 0) -> Forecaster:
    """A forecaster with a deterministic, seeded initialisation, in eval mode."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Forecaster(spec)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
