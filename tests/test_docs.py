"""The docs site builds with every link resolved (mkdocs --strict), and the README stays
the front door: its two Quick start commands are the ones CI runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"


def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "development" / "layout" / "index.html").is_file()


def test_the_readme_quick_start_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in readme.splitlines()
                if line.startswith("    python3 -m venv .venv")]
    assert len(commands) == 2, commands
    assert commands[0].endswith('pip install -e ".[all]" && harness run --backends all')
    assert commands[1] in ci.splitlines()
    assert len(readme.splitlines()) <= 250
