"""The package layers and the host/device line hold (import-linter), and the check fails
when a device-side module imports a host-side one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports over the package under `tree`/src with `tree`/pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run([str(LINT_IMPORTS), str(tree / "pyproject.toml"),
                           "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_layer_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "weights"))
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _plant(module: Path, line: str) -> None:
    text = module.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in text, module
    module.write_text(text.replace(anchor, anchor + line + "\n", 1))


@pytest.mark.parametrize("module, line, broken", [
    ("measure/worker.py", "import edge_rnn_harness.analysis.compare  # noqa",
     "The device side never imports the host side of the harness BROKEN"),
    ("board/thermal.py", "import torch  # noqa",
     "The device side never imports PyTorch, the converters, SSH or plotting BROKEN"),
    ("core/plan.py", "from edge_rnn_harness.cli import main  # noqa",
     "Layers: cli on top; each package imports only the packages below it BROKEN"),
    ("cli/options.py", "from edge_rnn_harness.cli import run  # noqa",
     "Commands: one module each, none imports another; shared options at the bottom BROKEN"),
], ids=["host-in-device", "torch-in-device", "cli-below", "command-in-options"])
def test_a_planted_import_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                              broken: str) -> None:
    tree = _copy(tmp_path)
    _plant(tree / "src/edge_rnn_harness" / module, line)
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert broken in result.stdout


def test_every_child_program_is_marked_and_started_by_the_launcher() -> None:
    """Each module of CHILD_PROGRAMS says so in its docstring; no module starts a child
    program except through the launcher (`child_argv`/`child_program_args`)."""
    import ast

    from edge_rnn_harness.core.launcher import CHILD_PROGRAMS, child_argv

    for module in CHILD_PROGRAMS:
        path = ROOT / "src" / Path(*module.split("."))
        path = path / "__main__.py" if path.is_dir() else path.with_suffix(".py")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "child program" in doc.lower(), module
        assert child_argv(module, "x", python="py") == ["py", "-P", "-m", module, "x"]
    started_by_hand = [
        path.relative_to(ROOT) for path in (ROOT / "src").rglob("*.py")
        if '"-m", "edge_rnn_harness' in path.read_text()]
    assert started_by_hand == []
