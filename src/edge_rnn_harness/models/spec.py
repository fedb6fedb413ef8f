"""The frozen description of a recurrent forecaster (shape and size, not weights)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

CELLS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one forecaster: `seq_len` past values of `input_features` in,
    `horizon` values out, through `num_layers` stacked `cell` layers of `hidden_size`.

    The input tensor is batch-major: (batch, seq_len, input_features); the output is
    (batch, horizon).
    """

    cell: str = "lstm"
    input_features: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    seq_len: int = 24
    horizon: int = 1

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r} is not one of {', '.join(CELLS)}")
        for field in ("input_features", "hidden_size", "num_layers", "seq_len", "horizon"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")

    def input_shape(self, batch: int) -> tuple[int, int, int]:
        """Shape of the input tensor for `batch` windows."""
        return (batch, self.seq_len, self.input_features)

    def parameter_count(self) -> int:
        """Trainable parameters of the Forecaster with this spec (recurrent layers, each
        with two bias vectors as in PyTorch, plus the linear head)."""
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[self.cell]
        total = 0
        for layer in range(self.num_layers):
            inputs = self.input_features if layer == 0 else self.hidden_size
            total += gates * self.hidden_size * (inputs + self.hidden_size + 2)
        return total + self.hidden_size * self.horizon + self.horizon

    def form_bytes(self, seq_len: int, batch: int, windows: int) -> int:
        """Estimated bytes the host holds to export and check this model at another window
        length and batch (float32): `windows` reference windows of inputs plus the
        recurrent activations of one forward pass (four gate vectors per step and layer).
        A lower bound of what the converters need, from the product of the shapes."""
        per_step = windows * self.input_features + 4 * self.hidden_size * self.num_layers
        return 4 * batch * seq_len * per_step

    def to_json(self) -> str:
        """Canonical JSON text of the spec (sorted keys): stable input for cache keys."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


INPUT_NAME = "x"
OUTPUT_NAME = "y"

#: the streaming step graph's tensors: state inputs and the outputs that carry them on
STATE_INPUTS = {"lstm": ("h", "c"), "gru": ("h",), "rnn": ("h",)}
STATE_OUTPUT_SUFFIX = "_out"


def step_names(cell: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of a cell's step graph: x and the state in, y and the
    next state out (e.g. lstm: (x, h, c) -> (y, h_out, c_out))."""
    states = STATE_INPUTS[cell]
    return (INPUT_NAME, *states), (OUTPUT_NAME, *(s + STATE_OUTPUT_SUFFIX for s in states))
