"""PyTorch models a user might bring: `harness run --model tests.byo_models:make_model`."""

from __future__ import annotations

import torch
from torch import nn


class TwoHeadGru(nn.Module):
    """A GRU over 12 steps of 3 features with two outputs: a 2-step forecast and the last
    hidden state (so every output of a model must be checked, not just the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size=3, hidden_size=16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sequence, _ = self.gru(x)
        last = sequence[:, -1, :]
        return self.head(last), torch.tanh(last)


def make_model() -> tuple[nn.Module, torch.Tensor]:
    """The module (seeded weights) and an example input of batch 1."""
    torch.manual_seed(7)
    return TwoHeadGru().eval(), torch.randn(1, 12, 3)


def not_a_model() -> str:
    """A callable that returns the wrong thing (for the error test)."""
    return "nope"


class MisbehavesInWorker(nn.Module):
    """A linear map that misbehaves when it runs inside a pyperf worker process (`crash`:
    dereferences a null pointer, a real SIGSEGV; `hang`: sleeps for an hour, a runtime
    stuck in measurement), and computes normally anywhere else (tracing, the reference)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import ctypes
        import sys
        import time
        from pathlib import Path

        if "--worker" in sys.argv:
            if self.how == "crash":
                ctypes.string_at(0)
            for arg in sys.argv:  # the worker's job file: say beside it that the hang began
                if arg.endswith(".json") and Path(arg).is_file():
                    Path(arg).with_suffix(".hanging").touch()
            time.sleep(3600)
        return self.linear(x)


def make_worker_crash() -> tuple[nn.Module, torch.Tensor]:
    """A module that segfaults the measuring worker (for the crash test)."""
    torch.manual_seed(0)
    return MisbehavesInWorker("crash").eval(), torch.randn(1, 4)


def make_worker_hang() -> tuple[nn.Module, torch.Tensor]:
    """A module that hangs the measuring worker (for the timeout and Ctrl-C tests)."""
    torch.manual_seed(0)
    return MisbehavesInWorker("hang").eval(), torch.randn(1, 4)


def make_sleepy() -> None:
    """A callable that never returns (for the probe timeout test)."""
    import time

    time.sleep(3600)


def make_raising() -> None:
    """A callable that raises (for the one-line error test)."""
    raise RuntimeError("no weights in this folder")


def make_exiting() -> None:
    """A callable that exits the process (for the one-line error test)."""
    raise SystemExit(7)
