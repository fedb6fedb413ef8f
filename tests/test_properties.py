"""Property-based tests (hypothesis) for what a user hands in: results CSVs, bundle
manifests, datasets, --inputs npz files and CLI option values (issue 15).

The property, for every generated input: the exit code is 0, 1 or 2; an exit 2 says what
was wrong in one line on stderr; no traceback, ever; and nothing is written outside
--out's stem (and the export cache named with --bundle-dir). The CLI runs in this process
(`cli.main`, as the console script calls it) so that a hundred inputs take seconds; an
exception escaping `main` is the traceback a user would see.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_rnn_harness.cli.main import main
from tests.conftest import relu_onnx, run_cli, write_run


def examples(count: int) -> settings:
    """hypothesis settings: `count` examples, the same ones every run (derandomized, no
    example database), no deadline (each example runs the CLI)."""
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _files(root: Path) -> dict[str, int]:
    """Every file under root with its modification time (ns)."""
    return {str(path.relative_to(root)): path.stat().st_mtime_ns
            for path in root.rglob("*") if path.is_file()}


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    """A fresh temporary folder as the current directory (where the defaults write)."""
    with tempfile.TemporaryDirectory(prefix="harness-prop-") as tmp, contextlib.chdir(tmp):
        yield Path(tmp)


def invoke(*argv: str) -> tuple[int, str]:
    """`harness ARGV` in this process: (exit code, what it wrote to stderr, or for a gate
    verdict (it goes to stdout) "GATE VERDICT"). The signal handlers main installs are put
    back afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    stderr, stdout = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                code = main(list(argv))
            except SystemExit as stop:  # argparse's --help, or a bug
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    if argv[0] == "gate" and not stderr.getvalue() and \
            stdout.getvalue().startswith("harness gate: "):
        return code, "GATE VERDICT"  # exit 2 here is "cannot judge", with the reasons
    return code, stderr.getvalue()


def check_property(workspace: Path, code: int, stderr: str, out_stem: Path | None,
                   before: dict[str, int], also_allowed: tuple[str, ...] = ()) -> None:
    """Exit 0, 1 or 2; one line for 2 (or a gate verdict); no traceback; written files only under --out's stem
    (or the folders in `also_allowed`)."""
    event(f"exit {code}")  # pytest --hypothesis-show-statistics shows how deep inputs went
    assert code in (0, 1, 2), (code, stderr)
    assert "Traceback" not in stderr, stderr
    if code == 2:
        assert len(stderr.strip().splitlines()) == 1, stderr
    prefix = str(out_stem.relative_to(workspace)) if out_stem else None
    changed = [name for name, mtime in _files(workspace).items() if before.get(name) != mtime]
    stray = [name for name in changed
             if not (prefix and name.startswith(prefix))
             and not name.startswith(also_allowed or ("\0",))]
    assert not stray, f"written outside --out's stem: {stray}"


# --- results CSVs: show, compare, gate, report ---

_CELLS = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", "nan", "inf", "-1", "0", "1e308", "ok", "failed", "True", "lstm", "99", "NA"]))


@pytest.mark.slow
@examples(40)
@given(row=st.integers(0, 2), column=st.integers(0, 60), cell=_CELLS,
       cut=st.one_of(st.none(), st.integers(0, 4000)),
       command=st.sampled_from(["show", "compare", "gate", "report"]))
def test_results_csvs(row: int, column: int, cell: str, cut: int | None, command: str) -> None:
    with _workspace() as root:
        base = write_run(root / "a.csv", seed=1)
        cand = write_run(root / "b.csv", seed=2)
        lines = cand.read_text().splitlines()
        header = lines[0].split(",")
        if row < len(lines) - 1:
            # a CSV writer's quoting keeps the file parseable as CSV with the new cell
            rows = list(csv.reader(io.StringIO(cand.read_text())))
            rows[row + 1][column % len(header)] = cell
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(rows)
            cand.write_text(buffer.getvalue())
        if cut is not None:
            cand.write_bytes(cand.read_bytes()[:cut])
        before = _files(root)
        args = {"show": ("show", str(cand)), "compare": ("compare", str(base), str(cand)),
                "gate": ("gate", str(base), str(cand)),
                "report": ("report", str(cand), "--out", str(root / "rep"))}[command]
        code, stderr = invoke(*args)
        check_property(root, code, stderr, root / "rep" if command == "report" else None,
                       before)


# --- datasets given to run ---

_DATA_LINES = st.one_of(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.integers(-10**6, 10**6).map(str), st.text(max_size=8), st.just("")),
             max_size=60),
    # long enough series of plain numbers, so that part of the examples run
    st.lists(st.floats(-1e3, 1e3, allow_nan=False).map(repr), min_size=180, max_size=400))


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One --bundle-dir for every example (the model exports once)."""
    return tmp_path_factory.mktemp("cache") / "bundle"


@pytest.mark.slow
@examples(30)
@given(header=st.sampled_from(["load", "load", "load", "t,load", "x", ""]), lines=_DATA_LINES,
       binary=st.sampled_from([None, None, None, b"", b"\x00\xff", b"load\n\xff\xfe\n"]))
def test_datasets(export_cache: Path, header: str, lines: list[str],
                  binary: bytes | None) -> None:
    with _workspace() as root:
        data = root / "data.csv"
        if binary is not None:
            data.write_bytes(binary)
        else:
            data.write_text("\n".join([header, *lines]) + "\n")
        out = root / "out" / "r.csv"
        before = _files(root)
        code, stderr = invoke("run", "--model", "lstm-uni", "--backends", "onnxruntime",
                              "--profile", "quick", "--dataset", str(data), "--column",
                              "load", "--out", str(out), "--bundle-dir", str(export_cache))
        check_property(root, code, stderr, out.parent / out.stem, before)


# --- --inputs npz files ---

_ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64,
                           np.dtype("U3")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))


@pytest.mark.slow
@examples(25)
@given(arrays=st.one_of(
           st.dictionaries(st.sampled_from(["x", "y", "X", "x "]), _ARRAYS, max_size=3),
           # the input the model takes, any float32 values: part of the examples run
           st.fixed_dictionaries({"x": hnp.arrays(np.float32, (1, 3))})),
       raw=st.sampled_from([None, None, None, b"", b"PK\x03\x04", b"\x93NUMPY"]))
def test_inputs_npz(arrays: dict[str, np.ndarray], raw: bytes | None) -> None:
    with _workspace() as root:
        model = relu_onnx(root / "relu.onnx")
        npz = root / "inputs.npz"
        if raw is not None:
            npz.write_bytes(raw)
        else:
            np.savez(npz, **arrays)
        out = root / "out" / "r.csv"
        before = _files(root)
        code, stderr = invoke("run", "--model", str(model), "--inputs", str(npz),
                              "--backends", "onnxruntime", "--profile", "quick",
                              "--out", str(out), "--bundle-dir", str(root / "cache"))
        check_property(root, code, stderr, out.parent / out.stem, before, ("cache",))


# --- CLI option values ---

_OPTIONS = ["--threads", "--case-timeout", "--atol", "--rtol", "--variants", "--backends",
            "--profile", "--shape", "--tune", "--calibration-windows", "--energy-seconds",
            "--idle-seconds", "--cooldown", "--max-start-temp", "--power", "--model"]
_VALUES = st.one_of(st.text(max_size=10), st.sampled_from(
    ["0", "-1", "nan", "inf", "-inf", "1e308", "1e-320", "99999999999", "1,0", ",", "x=1x2",
     "x=99999999999x4", "all", "fp16", "ncnn.lightmode=on", "a.b=c", "../x", "/dev/zero"]),
    # values some option takes, so that part of the examples run
    st.sampled_from(["1", "2", "1,2", "0.5", "30", "fp32", "fp16,fp32", "quick",
                     "onnxruntime", "x=1x3", "onnxruntime.graph_level=all", "none"]))


@pytest.mark.slow
@examples(50)
@given(option=st.sampled_from(_OPTIONS), value=_VALUES)
def test_run_option_values(option: str, value: str) -> None:
    with _workspace() as root:
        model = relu_onnx(root / "relu.onnx")
        out = root / "out" / "r.csv"
        before = _files(root)
        args = ["run", "--model", str(model), "--backends", "onnxruntime", "--profile",
                "quick", "--out", str(out), "--bundle-dir", str(root / "cache")]
        code, stderr = invoke(*args, f"{option}={value}")
        check_property(root, code, stderr, out.parent / out.stem, before, ("cache",))


@examples(30)
@given(option=st.sampled_from(["--max-slowdown", "--max-slowdown-p", "--max-memory-growth",
                               "--max-rmse-growth", "--max-energy-growth", "--max-size-growth",
                               "--alpha", "--min-effect", "--history", "--min-history",
                               "--history-runs", "--rename-model", "--summary"]),
       value=_VALUES)
def test_gate_option_values(option: str, value: str) -> None:
    with _workspace() as root:
        base, cand = write_run(root / "a.csv", seed=1), write_run(root / "b.csv", seed=1)
        before = _files(root)
        if option == "--summary":  # gate's one output: keep it inside the workspace
            value = f"{root}/summary/{value}"
        code, stderr = invoke("gate", str(base), str(cand), f"{option}={value}")
        check_property(root, code, stderr, None, before, ("summary",))


# --- bundle manifests ---

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _replace_at(document: object, steps: list[int], value: object) -> object:
    """The document with the value at the path chosen by `steps` replaced."""
    if not steps or not isinstance(document, (dict, list)) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[steps[0] % len(keys)]
    document[key] = _replace_at(document[key], steps[1:], value)  # type: ignore[index]
    return document


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness export` of the ReLU model for onnxruntime: a small valid bundle."""
    root = tmp_path_factory.mktemp("prop")
    bundle = root / "bundle"
    result = run_cli("export", "--model", str(relu_onnx(root / "relu.onnx")), "--backends",
                     "onnxruntime", "--out", str(bundle))
    assert result.returncode == 0, result.stderr
    return bundle


@pytest.mark.slow
@examples(40)
@given(steps=st.lists(st.integers(0, 50), max_size=6), value=_JSON,
       raw=st.one_of(st.none(), st.binary(max_size=100)))
def test_bundle_manifests(small_bundle: Path, steps: list[int], value: object,
                          raw: bytes | None) -> None:
    with _workspace() as root:
        bundle = root / "bundle"
        shutil.copytree(small_bundle, bundle)
        manifest = bundle / "manifest.json"
        if raw is not None:
            manifest.write_bytes(raw)
        else:
            document = _replace_at(json.loads(manifest.read_text()), steps, value)
            manifest.write_text(json.dumps(document))
        out = root / "out" / "r.csv"
        before = _files(root)
        code, stderr = invoke("run", "--bundle", str(bundle), "--backends", "onnxruntime",
                              "--profile", "quick", "--out", str(out))
        check_property(root, code, stderr, out.parent / out.stem, before)
