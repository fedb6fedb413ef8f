"""tools/emulated_pi.py refuses in one line, exit 2, where this machine cannot emulate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _tool() -> object:
    spec = importlib.util.spec_from_file_location("emulated_pi", ROOT / "tools/emulated_pi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_binfmt_handler_is_one_line_and_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    tool = _tool()
    tool.BINFMT = tmp_path / "binfmt_misc"  # a machine without the handler
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle/manifest.json").write_text("{}")
    code = tool.main(["--bundle", str(tmp_path / "bundle"), "--out", str(tmp_path / "r.csv"),
                      "--cache", str(tmp_path / "cache")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert ("no aarch64 handler in binfmt_misc" in lines[0]
            or "must run as root" in lines[0]), lines
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "cache").exists()


def test_a_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        _tool().main(["--bundle", str(tmp_path), "--out", str(tmp_path / "r.csv")])
    assert exited.value.code == 2


def test_the_wheel_is_built_from_every_package_of_the_checkout() -> None:
    """The copy the harness wheel is built from leaves out the checkout's own bundle/,
    build/ and results/ folders, never the package's subpackages of those names."""
    tool = _tool()
    top = tool.copy_ignored(str(ROOT), ["bundle", "build", "results", "src", ".git"])
    assert top == {"bundle", "build", "results", ".git"}
    package = ROOT / "src" / "edge_rnn_harness"
    assert tool.copy_ignored(str(package), sorted(p.name for p in package.iterdir())) <= \
        {"__pycache__"}
