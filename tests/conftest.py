"""Shared fixtures: a bundle folder exported once per session, and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backends.registry import BACKENDS
from harness import bundle
from models.registry import get_entry

ROOT = Path(__file__).resolve().parents[1]
TINY = "tiny"


@pytest.fixture(scope="session")
def session_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle root in which the tiny model is exported for every available backend."""
    root = tmp_path_factory.mktemp("bundle")
    for backend in BACKENDS.values():
        if backend.available() is None:
            bundle.export(root, get_entry(TINY), backend, "fp32")
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
    """Run `python -m harness ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout)
