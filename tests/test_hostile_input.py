"""Hostile or nonsensical input through the real CLI: one line on stderr, exit 2, before
any work, never a traceback (a part of issue 15's classes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("make_args, message", [
    (lambda t: ("show", str(t)), "not a readable file (Is a directory)"),
    (lambda t: ("report", str(t), "--out", str(t / "rep")), "not a readable file"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset", str(t), "--column", "x"),
     "not a regular file (a folder or device)"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset", "/dev/zero", "--column", "x"),
     "--dataset /dev/zero: not a regular file"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "big.csv", "load\n1\n1e308\n")), "--column", "load"),
     "has '1e+308' at data row 2: not a finite float32 number"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "inf.csv", "load\n1\n-inf\n")), "--column", "load"),
     "has '-inf' at data row 2: not a finite float32 number"),
    (lambda t: ("run", "--model", "lstm-uni", "--dataset",
                str(_write(t, "dup.csv", "t,load\n2020-01-01 00:00,1\n2020-01-01 00:00,2\n")),
                "--column", "load", "--time-column", "t"),
     "'t' repeats the time '2020-01-01 00:00' at data row 2"),
    (lambda t: ("train", "--model", "lstm", "--out", str(_write(t, "file", ""))),
     "harness train: cannot write --out"),
    (lambda t: ("run", "--weights-dir", str(t / "nowhere")), "weights"),
    # the user's callable runs in a probe child: its failures are one line, exit 2
    (lambda t: ("run", "--model", "tests.byo_models:make_raising"),
     ("--model tests.byo_models:make_raising: calling it raised RuntimeError: no weights in "
     "this folder")),
    (lambda t: ("run", "--model", "tests.byo_models:make_exiting"),
     "--model tests.byo_models:make_exiting: it called sys.exit(7)"),
    (lambda t: ("run", "--model", "tests.byo_models:make_sleepy", "--case-timeout", "5"),
     ("--model tests.byo_models:make_sleepy: timeout after 5 s while importing and calling it "
     "(--case-timeout)")),
    (lambda t: ("export", "--model", "tests.byo_models:make_sleepy", "--case-timeout", "5",
                "--out", str(t / "b")), "timeout after 5 s while importing and calling it"),
])
def test_bad_input_is_refused_in_one_line(tmp_path: Path, make_args: object,
                                          message: str) -> None:
    out = tmp_path / "r.csv"
    args = make_args(tmp_path)  # type: ignore[operator]
    result = run_cli(*args, *(("--out", str(out)) if args[0] == "run" else ()), timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()
