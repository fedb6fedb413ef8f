"""A streaming case: the step graph run as a deployed stream runs it, one new value in per
call with the recurrent state carried from the previous call's outputs.

The timed value of a streaming case is one `Stream.run`: feeding the new value and the
carried state, the runtime's step, and keeping the next state. Feeding counts here (unlike
a window case, whose input is fed before timing) because a stream cannot feed its next
state before the previous step has produced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_rnn_harness.core.plan import SCENARIO_STREAMING


def is_streaming(case: Mapping[str, Any]) -> bool:
    """Whether a case (a Case's dict) is a streaming case."""
    return case.get("scenario") == SCENARIO_STREAMING


class Stream:
    """A prepared step graph with its state. notes: the artifact's step_inputs (x first,
    then the state), step_outputs (y first, then the next state, in the same order) and
    state_shape ("layers,1,hidden"). window: a (1, seq_len, features) window whose last
    value feeds the timed steps."""

    def __init__(self, model: Any, notes: Mapping[str, Any], window: np.ndarray) -> None:
        self._model = model
        inputs = str(notes["step_inputs"]).split(",")
        outputs = str(notes["step_outputs"]).split(",")
        self._x_name, self._y_name = inputs[0], outputs[0]
        self._carry = dict(zip(outputs[1:], inputs[1:]))  # h_out -> h
        self._shape = tuple(int(v) for v in str(notes["state_shape"]).split(","))
        self._x_t = np.ascontiguousarray(window[:, -1:, :], dtype=np.float32)
        self.settings = {**model.settings, "scenario": SCENARIO_STREAMING}
        self.reset()

    def reset(self) -> None:
        """Zero state: the start of a stream."""
        self._state = {name: np.zeros(self._shape, np.float32) for name in self._carry.values()}

    def step(self, x_t: np.ndarray) -> dict[str, np.ndarray]:
        """One step: feed x_t (1, 1, features) and the state, run, keep the next state."""
        out = self._model.run(self._model.feed({self._x_name: x_t, **self._state}))
        self._state = {state: np.array(out[name], np.float32)
                       for name, state in self._carry.items()}
        return out

    def run(self, fed: object = None) -> dict[str, np.ndarray]:
        """The timed call: one step with the carried state (fed is unused)."""
        return self.step(self._x_t)

    def forecast(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Step through a window (1, seq_len, features) from zero state: {y: forecast},
        what the window model gives for the same window."""
        window = next(iter(inputs.values()))
        self.reset()
        out: dict[str, np.ndarray] = {}
        for t in range(window.shape[1]):
            out = self.step(np.ascontiguousarray(window[:, t:t + 1, :], dtype=np.float32))
        return {self._y_name: out[self._y_name]}

    @property
    def runtime_latencies_ms(self) -> list[float] | None:
        """The runtime's own latency per step, where it reports one (OpenVINO)."""
        return getattr(self._model, "runtime_latencies_ms", None)

    def close(self) -> None:
        """Release the runtime."""
        self._model.close()
