"""Shared fixtures: a bundle folder exported once per session, and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backends.registry import BACKENDS
from harness import bundle
from models.registry import ModelEntry, get_entry
from models.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
#: one small model per recurrent cell: the registered "tiny" LSTM, and GRU/RNN twins
TINY_MODELS = {
    "lstm": get_entry("tiny"),
    "gru": ModelEntry("tiny-gru", ModelSpec(cell="gru", hidden_size=8), "test GRU"),
    "rnn": ModelEntry("tiny-rnn", ModelSpec(cell="rnn", hidden_size=8), "test RNN"),
}


@pytest.fixture(scope="session")
def session_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle root with every tiny model exported for every available backend."""
    root = tmp_path_factory.mktemp("bundle")
    for backend in BACKENDS.values():
        if backend.available() is None:
            for entry in TINY_MODELS.values():
                bundle.export(root, entry, backend, "fp32")
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
    """Run `python -m harness ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout)
