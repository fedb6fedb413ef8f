"""A hostile corpus: about 220 bad inputs and faults, each run through the real
CLI in a subprocess as a new user or an attacker would, and judged on what a user is owed:

- the documented exit code (2 for bad input, with one line on stderr and before any work;
  1 for a case that failed; 0 for input that is odd but valid);
- no traceback, no hang (a case is killed after --timeout seconds);
- no code execution (planted pickles must never run: they would create a marker file);
- no silently wrong result (cases with a known right answer check the rows);
- nothing written outside --out's stem, the export cache or the summary file.

    python tools/hostile_corpus.py                 # all of it (about ten minutes here)
    python tools/hostile_corpus.py --only manifest # one family
    python tools/hostile_corpus.py --list          # the cases, without running them

Runs in a temporary folder; never touches this checkout. Exit 1 when a case breaks a rule
other than the exit code, or fewer than 97% get their documented exit code with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARKER = "PWNED"  # a planted pickle creates this file in its case folder when it runs
TARGET_SHARE = 0.97


@dataclass(frozen=True)
class Case:
    """One corpus entry: `make(folder, base)` writes what the case needs into its folder
    and returns the CLI arguments; `expect` is the documented exit code(s); `check` looks
    for a silently wrong result (returns the problem, or None)."""

    family: str
    name: str
    make: Callable[[Path, Path], list[str]]
    expect: frozenset[int]
    check: Callable[[Path, subprocess.CompletedProcess], str | None] | None = None


# --- shared valid inputs, built once in `base` ---

def _onnx(path: Path, op: str = "Relu", opset: int = 13, **kwargs: object) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **kwargs)], path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def build_base(base: Path) -> None:
    """Valid inputs every case starts from: results pair, models, dataset, bundle."""
    from tests.conftest import write_run

    write_run(base / "a.csv", seed=1)
    write_run(base / "b.csv", seed=2)
    _onnx(base / "relu.onnx")
    rng = np.random.default_rng(5)
    load = 1000 + 200 * np.sin(np.arange(400) * 2 * np.pi / 24) + rng.normal(0, 10, 400)
    (base / "data.csv").write_text("t,load\n" + "".join(
        f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00,{v:.3f}\n"
        for i, v in enumerate(load[:24 * 16])))
    done = subprocess.run([sys.executable, "-m", "edge_rnn_harness", "export", "--model",
                           str(base / "relu.onnx"), "--backends", "onnxruntime", "--out",
                           str(base / "bundle")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"building the corpus's bundle failed:\n{done.stderr}")
    done = subprocess.run([sys.executable, "-m", "edge_rnn_harness", "export", "--model",
                           "tiny", "--backends", "torch,onnxruntime", "--out",
                           str(base / "tiny")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"building the corpus's tiny bundle failed:\n{done.stderr}")


# --- families ---

def _copy(base: Path, folder: Path, name: str) -> Path:
    target = folder / name
    if (base / name).is_dir():
        shutil.copytree(base / name, target, symlinks=True)
    else:
        shutil.copy2(base / name, target)
        json_beside = (base / name).with_suffix(".json")
        if json_beside.exists() and name.endswith(".csv"):
            shutil.copy2(json_beside, target.with_suffix(".json"))
    return target


def _edit_csv(edit: Callable[[str], str | bytes]) -> Callable[[Path, Path], Path]:
    def make(folder: Path, base: Path) -> Path:
        path = _copy(base, folder, "b.csv")
        new = edit(path.read_text())
        if isinstance(new, bytes):
            path.write_bytes(new)
        else:
            path.write_text(new)
        return path
    return make


def _cell(column: str, value: str, row: int = 1) -> Callable[[str], str]:
    import csv
    import io

    def edit(text: str) -> str:
        rows = list(csv.reader(io.StringIO(text)))
        rows[row][rows[0].index(column)] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()
    return edit


def _drop_column(column: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = [line.split(",") for line in text.splitlines()]
        index = lines[0].index(column)
        return "\n".join(",".join(p[:index] + p[index + 1:]) for p in lines) + "\n"
    return edit


def _special(kind: str) -> Callable[[Path, Path], Path]:
    def make(folder: Path, base: Path) -> Path:
        if kind == "dir":
            (folder / "d.csv").mkdir()
            return folder / "d.csv"
        if kind == "missing":
            return folder / "nowhere.csv"
        if kind == "devzero":
            (folder / "z.csv").symlink_to("/dev/zero")
            return folder / "z.csv"
        path = _copy(base, folder, "b.csv")
        if kind == "json-garbage":
            path.with_suffix(".json").write_text("{not json")
        elif kind == "json-missing":
            path.with_suffix(".json").unlink()
        elif kind == "json-other-run":
            shutil.copy2(base / "a.json", path.with_suffix(".json"))
        return path
    return make


CSV_BAD: dict[str, Callable[[Path, Path], Path]] = {
    "empty": _edit_csv(lambda t: ""),
    "binary": _edit_csv(lambda t: b"\x00\xff" * 200),
    "truncated-mid-row": _edit_csv(lambda t: t[:-30]),
    "no-status-column": _edit_csv(_drop_column("status")),
    "unknown-status": _edit_csv(_cell("status", "fine")),
    "schema-99": _edit_csv(_cell("schema_version", "99")),
    "text-in-number": _edit_csv(_cell("peak_rss_mb", "lots")),
    "inf-in-int": _edit_csv(_cell("threads", "inf")),
    "latin1-bytes": _edit_csv(lambda t: t.encode().replace(b"lstm", b"l\xe9tm", 1)),
    "dir": _special("dir"),
    "missing": _special("missing"),
    "devzero": _special("devzero"),
    "json-garbage": _special("json-garbage"),
    "json-other-run": _special("json-other-run"),
    "negative-latency": _edit_csv(_cell("latency_median_ms", "-1")),
}
CSV_ODD: dict[str, Callable[[Path, Path], Path]] = {  # valid, if unusual
    "header-only": _edit_csv(lambda t: t.splitlines()[0] + "\n"),
    "crlf": _edit_csv(lambda t: t.replace("\n", "\r\n")),
    "bom": _edit_csv(lambda t: "\ufeff" + t),
    "extra-column": _edit_csv(lambda t: "\n".join(
        line + (",extra" if i == 0 else ",1") for i, line in enumerate(t.splitlines())) + "\n"),
    "json-missing": _special("json-missing"),
    "empty-metrics": _edit_csv(_cell("peak_rss_mb", "")),
    "nul-in-text-cell": _edit_csv(_cell("reason", "a\x00b")),
    "huge-text-cell": _edit_csv(_cell("reason", "x" * 5_000_000)),
}


def csv_cases() -> list[Case]:
    """Every corruption of a results CSV under show, compare, gate and report."""
    commands: dict[str, Callable[[Path, Path], list[str]]] = {
        "show": lambda cand, base: ["show", str(cand)],
        "compare": lambda cand, base: ["compare", str(base / "a.csv"), str(cand)],
        "gate": lambda cand, base: ["gate", str(base / "a.csv"), str(cand)],
        "report": lambda cand, base: ["report", str(cand), "--out",
                                      str(cand.parent / "out" / "report")],
    }
    cases = []
    for command, argv in commands.items():
        for label, make in {**CSV_BAD, **CSV_ODD}.items():
            bad = label in CSV_BAD
            expect = {2} if bad else ({0, 1, 2} if command == "gate" else {0})
            if command in ("show", "report", "compare") and label in (
                    "json-other-run", "negative-latency"):
                expect = {0}  # shown (compare: listed as cannot judge), not refused
            if command in ("show", "report") and label == "json-garbage":
                expect = {0}  # they read the CSV alone
            if command == "gate" and label in ("negative-latency", "json-other-run",
                                               "empty-metrics", "json-garbage"):
                expect = {2}  # "cannot judge", with the reason
            cases.append(Case("csv", f"{command}/{label}",
                              lambda f, b, m=make, a=argv: a(m(f, b), b),
                              frozenset(expect)))
    return cases


def _dataset(text: str | bytes, column: str = "load", time_column: str | None = None
             ) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        path = folder / "data.csv"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return ["run", "--model", "lstm-uni", "--backends", "onnxruntime", "--profile",
                "quick", "--dataset", str(path), "--column", column,
                *(["--time-column", time_column] if time_column else []),
                "--out", str(folder / "out" / "r.csv"), "--bundle-dir", str(folder / "cache")]
    return make


def _series(count: int, value: Callable[[int], str] = lambda i: f"{1000 + i % 24}") -> str:
    return "load\n" + "".join(f"{value(i)}\n" for i in range(count))


def dataset_cases() -> list[Case]:
    """Bad --dataset files for run."""
    bad = {
        "empty": "", "header-only": "load\n", "text-value": _series(400, lambda i: "x"
                                                                    if i == 7 else "1"),
        "inf": _series(400, lambda i: "inf" if i == 9 else "1"),
        "1e308": _series(400, lambda i: "1e308" if i == 9 else "1"),
        "nan": _series(400, lambda i: "nan" if i == 9 else "1"),
        "blank-cell": "load,other\n" + "".join(("" if i == 9 else f"{i % 24}") + ",0\n"
                                               for i in range(400)),
        "too-short": _series(50), "binary": b"\x00\xff\xfe" * 300,
        "missing-column": "other\n" + "1\n" * 400,
        "semicolons": "t;load\n" + "2020-01-01 00:00;1\n" * 400,
        "latin1": ("load\n" + "1\n" * 400).encode() + b"\xe9\n",
        "one-huge-line": "load\n" + "1" * 3_000_000 + "\n",
    }
    cases = [Case("dataset", label, _dataset(text), frozenset({2}))
             for label, text in bad.items()]
    repeated = "t,load\n" + "".join(f"2020-01-01 {i % 24:02d}:00,{i}\n" for i in range(400))
    cases.append(Case("dataset", "repeated-timestamps", _dataset(repeated, time_column="t"),
                      frozenset({2})))
    bad_time = "t,load\n" + "".join(f"day {i},{i}\n" for i in range(400))
    cases.append(Case("dataset", "unparseable-timestamps", _dataset(bad_time, time_column="t"),
                      frozenset({2})))

    def special(kind: str) -> Callable[[Path, Path], list[str]]:
        def make(folder: Path, base: Path) -> list[str]:
            target = {"dir": folder / "d", "devzero": Path("/dev/zero"),
                      "missing": folder / "none.csv"}[kind]
            if kind == "dir":
                target.mkdir()
            return ["run", "--model", "lstm-uni", "--dataset", str(target), "--column",
                    "load", "--out", str(folder / "out" / "r.csv")]
        return make
    cases += [Case("dataset", kind, special(kind), frozenset({2}))
              for kind in ("dir", "devzero", "missing")]
    valid = _series(400, lambda i: f"{1000 + 100 * np.sin(i / 3.8):.2f}")
    cases.append(Case("dataset", "valid-negative-free", _dataset(valid), frozenset({0})))
    return cases


def _planted_pickle(folder: Path) -> np.ndarray:
    """An object array whose unpickling creates the marker file."""
    class Planted:
        def __reduce__(self) -> tuple:
            return (open, (str(folder / MARKER), "w"))
    array = np.empty(1, dtype=object)
    array[0] = Planted()
    return array


def _npz(write: Callable[[Path, Path], None]) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        path = folder / "inputs.npz"
        write(folder, path)
        return ["run", "--model", str(_copy(base, folder, "relu.onnx")), "--inputs",
                str(path), "--backends", "onnxruntime", "--profile", "quick", "--out",
                str(folder / "out" / "r.csv"), "--bundle-dir", str(folder / "cache")]
    return make


def npz_cases() -> list[Case]:
    """Bad --inputs files."""
    x = np.ones((1, 3, 4), np.float32)

    def save(**arrays: object) -> Callable[[Path, Path], None]:
        return lambda folder, path: np.savez(path, **arrays)
    bad = {
        "empty": lambda f, p: p.write_bytes(b""),
        "text": lambda f, p: p.write_text("x=1"),
        "zip-header-only": lambda f, p: p.write_bytes(b"PK\x03\x04"),
        "npy-not-npz": lambda f, p: np.save(open(p, "wb"), x),  # noqa: SIM115
        "pickled-object": lambda f, p: np.savez(p, x=_planted_pickle(f)),
        "wrong-name": save(X=x),
        "wrong-shape": save(x=np.ones((2, 3), np.float32)),
        "complex": save(x=x.astype(np.complex64)),
        "strings": save(x=np.full((1, 3, 4), "a")),
        "bomb": lambda f, p: np.savez_compressed(p, x=np.zeros((600, 1024, 1024), np.uint8)),
        "dir": lambda f, p: p.mkdir(),
    }
    cases = [Case("npz", label, _npz(write), frozenset({2}), _no_marker)
             for label, write in bad.items()]
    cases += [Case("npz", "missing", lambda f, b: _npz(lambda f2, p: None)(f, b),
                   frozenset({2}))]
    odd = {"int-for-float": save(x=np.ones((1, 3, 4), np.int64)),
           "nan-values": save(x=np.full((1, 3, 4), np.nan, np.float32)),
           "extra-array": save(x=x, other=x)}
    cases += [Case("npz", label, _npz(write), frozenset({0})) for label, write in odd.items()]
    return cases


def _no_marker(folder: Path, result: subprocess.CompletedProcess) -> str | None:
    return "a planted pickle ran" if (folder / MARKER).exists() else None


def _bundle(edit: Callable[[Path, dict], dict | str | bytes | None]
            ) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        bundle = _copy(base, folder, "bundle")
        manifest_path = bundle / "manifest.json"
        changed = edit(bundle, json.loads(manifest_path.read_text()))
        if isinstance(changed, dict):
            manifest_path.write_text(json.dumps(changed))
        elif isinstance(changed, str):
            manifest_path.write_text(changed)
        elif isinstance(changed, bytes):
            manifest_path.write_bytes(changed)
        return ["run", "--bundle", str(bundle), "--backends", "onnxruntime", "--profile",
                "quick", "--out", str(folder / "out" / "r.csv")]
    return make


def _artifact(manifest: dict) -> dict:
    return manifest["artifacts"][0]


def _reference(bundle: Path, manifest: dict) -> Path:
    model = next(iter(manifest["models"].values()))
    return bundle / model["files"]["reference"]["path"]


def _rehash(bundle: Path, manifest: dict, path: Path) -> dict:
    """The manifest with `path`'s entry matching its new content (an attacker's edit)."""
    from edge_rnn_harness.bundle.reader import file_sha256

    relative = path.relative_to(bundle).as_posix()
    entries = [f for m in manifest["models"].values() for f in m["files"].values()] + \
        [f for a in manifest["artifacts"] for f in a["files"]]
    for entry in entries:
        if entry["path"] == relative:
            entry.update(sha256=file_sha256(path), bytes=path.stat().st_size)
    return manifest


def _set(path: list, value: object) -> Callable[[Path, dict], dict]:
    def edit(bundle: Path, manifest: dict) -> dict:
        target: object = manifest
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]
        return manifest
    return edit


def manifest_cases() -> list[Case]:
    """Bad bundles for `run --bundle`."""
    def planted_reference(bundle: Path, manifest: dict) -> dict:
        reference = _reference(bundle, manifest)
        np.savez(reference, **{"in:x": _planted_pickle(bundle.parent)})
        return _rehash(bundle, manifest, reference)

    def truncated_reference(bundle: Path, manifest: dict) -> dict:
        reference = _reference(bundle, manifest)
        reference.write_bytes(reference.read_bytes()[:40])
        return _rehash(bundle, manifest, reference)

    def changed_artifact_byte(bundle: Path, manifest: dict) -> None:
        artifact = bundle / _artifact(manifest)["artifact"]
        data = bytearray(artifact.read_bytes())
        data[-1] ^= 1
        artifact.write_bytes(bytes(data))

    def artifact_outside(bundle: Path, manifest: dict) -> dict:
        artifact = bundle / _artifact(manifest)["artifact"]
        outside = bundle.parent / "outside.onnx"
        shutil.move(artifact, outside)
        artifact.symlink_to(outside)
        return manifest

    def removed_artifact(bundle: Path, manifest: dict) -> None:
        (bundle / _artifact(manifest)["artifact"]).unlink()

    def first_file(field: str, value: object) -> Callable[[Path, dict], dict]:
        def edit(bundle: Path, manifest: dict) -> dict:
            _artifact(manifest)["files"][0][field] = value
            return manifest
        return edit

    bad: dict[str, Callable[[Path, dict], object]] = {
        "not-json": lambda b, m: "{nope",
        "binary": lambda b, m: b"\x00\xff" * 50,
        "a-list": lambda b, m: "[]",
        "empty-object": lambda b, m: "{}",
        "schema-99": _set(["bundle_schema"], 99),
        "schema-text": _set(["bundle_schema"], "two"),
        "models-a-list": _set(["models"], []),
        "artifacts-not-list": _set(["artifacts"], {"a": 1}),
        "path-traversal": first_file("path", "../../../etc/passwd"),
        "absolute-path": first_file("path", "/etc/passwd"),
        "nul-in-path": first_file("path", "a\u0000b"),
        "sha-not-hex": first_file("sha256", "zz"),
        "bytes-negative": first_file("bytes", -5),
        "artifact-escapes": lambda b, m: (_artifact(m).update(artifact="../../x.onnx"), m)[1],
        "unknown-backend": lambda b, m: (_artifact(m).update(backend="tensorrt"), m)[1],
        "unknown-variant": lambda b, m: (_artifact(m).update(variant="int3"), m)[1],
        "notes-not-object": lambda b, m: (_artifact(m).update(notes=[1, 2]), m)[1],
        "missing-manifest": lambda b, m: (b / "manifest.json").unlink(),
        "huge-manifest": lambda b, m: json.dumps({**m, "pad": "x" * 30_000_000}),
        "planted-pickle-reference": planted_reference,
    }
    cases = [Case("manifest", label, _bundle(edit), frozenset(
        {1, 2} if label == "planted-pickle-reference" else {2}), _no_marker)
             for label, edit in bad.items()]
    failed_rows = {  # the bundle loads; the damaged case is a failed row, the run goes on
        "changed-artifact-byte": changed_artifact_byte,
        "removed-artifact": removed_artifact,
        "artifact-symlink-outside": artifact_outside,
        "truncated-reference-rehashed": truncated_reference,
    }
    cases += [Case("manifest", label, _bundle(edit), frozenset({1, 2}), _failed_row_or_refused)
              for label, edit in failed_rows.items()]

    def not_a_folder(folder: Path, base: Path) -> list[str]:
        (folder / "bundle").write_text("x")
        return ["run", "--bundle", str(folder / "bundle"), "--out", str(folder / "out/r.csv")]
    cases.append(Case("manifest", "bundle-is-a-file", not_a_folder, frozenset({2})))
    cases.append(Case("manifest", "extra-keys", _bundle(_set(["extra"], {"a": 1})),
                      frozenset({0})))
    return cases


def _failed_row_or_refused(folder: Path, result: subprocess.CompletedProcess) -> str | None:
    """A damaged bundle must never give an ok row."""
    out = folder / "out" / "r.csv"
    if result.returncode == 1 and out.exists() and ",ok," in out.read_text():
        return "an ok row from a damaged bundle"
    return None


def _model(make_model: Callable[[Path], Path], *extra: str) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        return ["run", "--model", str(make_model(folder)), "--backends", "onnxruntime",
                "--profile", "quick", "--out", str(folder / "out" / "r.csv"), "--bundle-dir",
                str(folder / "cache"), *extra]
    return make


def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name
    return make


def _proto(edit: Callable[[object, Path], None], name: str = "m.onnx") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        import onnx

        path = _onnx(folder / name)
        model = onnx.load(str(path))
        edit(model, folder)
        onnx.save(model, str(path))
        return path
    return make


def _row_status(status: str, words: str) -> Callable[[Path, subprocess.CompletedProcess],
                                                      str | None]:
    def check(folder: Path, result: subprocess.CompletedProcess) -> str | None:
        out = (folder / "out" / "r.csv")
        text = out.read_text() if out.exists() else ""
        if f",{status}," not in text or words not in text:
            return f"expected a {status} row saying {words!r}"
        return None
    return check


def onnx_cases() -> list[Case]:
    """Bad or tricky ONNX files."""
    from onnx import TensorProto, helper

    def dynamic(model: object, folder: Path) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # type: ignore[attr-defined]

    def no_inputs(model: object, folder: Path) -> None:
        del model.graph.input[:]  # type: ignore[attr-defined]

    def opset_99(model: object, folder: Path) -> None:
        model.opset_import[0].version = 99  # type: ignore[attr-defined]

    def custom_op(model: object, folder: Path) -> None:
        model.graph.node[0].op_type = "Frobnicate"  # type: ignore[attr-defined]

    def external(location: str) -> Callable[[object, Path], None]:
        def edit(model: object, folder: Path) -> None:
            weight = np.ones((1, 3, 4), np.float32)
            tensor = helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel())
            tensor.data_location = TensorProto.EXTERNAL
            tensor.ClearField("float_data")
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", location
            model.graph.initializer.append(tensor)  # type: ignore[attr-defined]  # (a copy)
            model.graph.node[0].op_type = "Add"  # type: ignore[attr-defined]
            model.graph.node[0].input.append("w")  # type: ignore[attr-defined]
        return edit

    bad = {
        "text": _model(_write("t.onnx", b"not a model")),
        "empty": _model(_write("e.onnx", b"")),
        "truncated": _model(lambda f: _write("tr.onnx", _onnx(f / "full.onnx").read_bytes()[:30])(f)),
        "no-inputs": _model(_proto(no_inputs)),
        "dynamic-no-shape": _model(_proto(dynamic)),
        "dynamic-bad-shape": _model(_proto(dynamic), "--shape", "x=1x3"),
        "huge-shape": _model(_proto(dynamic), "--shape", "x=99999999999x3x4"),
        "external-outside": _model(_proto(external("../../etc/passwd"))),
        "external-missing": _model(_proto(external("weights.bin"))),
        "dir": _model(lambda f: (f / "d.onnx").mkdir() or f / "d.onnx"),
        "devzero": _model(lambda f: (f / "z.onnx").symlink_to("/dev/zero") or f / "z.onnx"),
        "missing": _model(lambda f: f / "none.onnx"),
    }
    cases = [Case("onnx", label, make, frozenset({2})) for label, make in bad.items()]
    cases.append(Case("onnx", "opset-99", _model(_proto(opset_99)), frozenset({1, 2}),
                      lambda f, r: None if r.returncode == 2 or ",failed," in
                      (f / "out" / "r.csv").read_text() else "no failed row"))
    cases.append(Case("onnx", "custom-op", _model(_proto(custom_op)), frozenset({1, 2}),
                      lambda f, r: None if r.returncode == 2 or ",failed," in
                      (f / "out" / "r.csv").read_text() else "no failed row"))
    cases.append(Case("onnx", "nan-reference", _model(lambda f: _onnx(f / "s.onnx", "Sqrt")),
                      frozenset({0}), _row_status("ok", "NaN/inf element")))
    cases.append(Case("onnx", "softmax-opset9-evaluator-wrong",
                      _model(lambda f: _onnx(f / "sm.onnx", "Softmax", opset=9, axis=1)),
                      frozenset({1}), _row_status("invalid", "reference disagrees")))
    return cases


def _option(*argv: str, model: bool = True) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        paths = {"{out}": str(folder / "out" / "r.csv"), "{folder}": str(folder),
                 "{base}": str(base)}
        args = list(argv)
        for key, value in paths.items():
            args = [a.replace(key, value) for a in args]
        if args[0] == "run" and model and "--model" not in args:
            args += ["--model", str(_copy(base, folder, "relu.onnx"))]
        if args[0] == "run" and "--out" not in args:
            args += ["--out", paths["{out}"], "--bundle-dir", str(folder / "cache")]
        return args
    return make


OPTION_CASES: dict[str, tuple[str, ...]] = {
    "threads-0": ("run", "--threads", "0"), "threads-huge": ("run", "--threads", "99999999999"),
    "threads-text": ("run", "--threads", "two"), "threads-empty-item": ("run", "--threads", "1,"),
    "timeout-0": ("run", "--case-timeout", "0"), "timeout-inf": ("run", "--case-timeout", "inf"),
    "timeout-nan": ("run", "--case-timeout", "nan"), "atol-nan": ("run", "--atol", "nan"),
    "atol-negative": ("run", "--atol", "-1"), "rtol-inf": ("run", "--rtol", "inf"),
    "variants-bogus": ("run", "--variants", "int3"), "backends-bogus": ("run", "--backends", "trt"),
    "backends-comma": ("run", "--backends", ","), "profile-bogus": ("run", "--profile", "slow"),
    "shape-bad": ("run", "--shape", "x=axb"), "shape-zero": ("run", "--shape", "x=0x3"),
    "shape-unknown-input": ("run", "--shape", "q=1x3x4"),
    "tune-form": ("run", "--tune", "graph_level"), "tune-unknown": ("run", "--tune", "onnxruntime.x=1"),
    "tune-value": ("run", "--tune", "onnxruntime.graph_level=max"),
    "cooldown-huge": ("run", "--cooldown", "1e9"), "idle-negative": ("run", "--idle-seconds", "-1"),
    "power-bogus": ("run", "--power", "volts"), "power-csv-missing": ("run", "--power", "csv:/no"),
    "max-temp-nan": ("run", "--max-start-temp", "nan"), "cpu-freq-text": ("run", "--cpu-freq", "fast"),
    "calibration-0": ("run", "--calibration-windows", "0"),
    "out-json": ("run", "--out", "r.json"), "out-dir": ("run", "--out", "{folder}"),
    "out-under-file": ("run", "--out", "{base}/relu.onnx/r.csv"),
    "out-over-model": ("run", "--model", "{base}/relu.onnx", "--out", "{base}/relu.onnx"),
    "out-control-chars": ("run", "--out", "a\x01b/\x7f.json"),
    "model-empty": ("run", "--model", ""), "model-bad-callable": ("run", "--model", "os:nope"),
    "model-unknown": ("run", "--model", "transformer"),
    "weights-dir-missing": ("run", "--model", "lstm", "--weights-dir", "{folder}/none"),
    "bundle-missing": ("run", "--bundle", "{folder}/none"),
    "gate-threshold-text": ("gate", "{base}/a.csv", "{base}/b.csv", "--max-slowdown", "lots"),
    "gate-alpha-2": ("gate", "{base}/a.csv", "{base}/b.csv", "--alpha", "2"),
    "gate-one-file": ("gate", "{base}/a.csv"),
    "gate-history-empty": ("gate", "--history", "{folder}/*.csv", "{base}/b.csv"),
    "compare-same-missing": ("compare", "{folder}/x.csv", "{folder}/y.csv"),
    "unknown-command": ("frobnicate",),
    "unknown-option": ("run", "--frobnicate"),
    "train-out-file": ("train", "--model", "lstm", "--out", "{base}/relu.onnx"),
    "export-out-file": ("export", "--model", "tiny", "--out", "{base}/relu.onnx"),
}


def option_cases() -> list[Case]:
    """Bad option values."""
    return [Case("option", label, _option(*argv), frozenset({2}))
            for label, argv in OPTION_CASES.items()]


def _rows_of(folder: Path) -> list[dict[str, str]]:
    import csv

    out = folder / "out" / "r.csv"
    if not out.exists():
        return []
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _energy_emptied(folder: Path, result: subprocess.CompletedProcess) -> str | None:
    """A meter's bad readings: the row ok with its latency, no energy, a power: reason."""
    rows = _rows_of(folder)
    if len(rows) != 1 or rows[0]["status"] != "ok" or not rows[0]["latency_median_ms"]:
        return "expected an ok row with its latency"
    if rows[0]["energy_per_inf_mj"] or not rows[0]["reason"].startswith("power:"):
        return "an ok row with energy from bad meter readings (silently wrong)"
    return None


def _failed_saying(words: str) -> Callable[[Path, subprocess.CompletedProcess], str | None]:
    def check(folder: Path, result: subprocess.CompletedProcess) -> str | None:
        rows = _rows_of(folder)
        if not rows or any(r["status"] == "ok" for r in rows):
            return "an ok row (silently wrong) or no row"
        if not any(words in r["reason"] for r in rows):
            return f"expected a reason saying {words!r}"
        return None
    return check


def _said(words: str) -> Callable[[Path, subprocess.CompletedProcess], str | None]:
    def check(folder: Path, result: subprocess.CompletedProcess) -> str | None:
        text = " ".join((result.stdout + result.stderr).split())
        return None if words in text else f"expected a message saying {words!r}"
    return check


def _power_log(watts: str) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        log, start = folder / "meter.csv", time.time() - 5
        log.write_text("timestamp,power_w\n" + "".join(
            f"{start + i * 0.05:.3f},{watts}\n" for i in range(12_000)))
        return ["run", "--bundle", str(base / "bundle"), "--backends", "onnxruntime",
                "--profile", "quick", "--power", f"csv:{log}", "--idle-seconds", "0.3",
                "--energy-seconds", "0.6", "--out", str(folder / "out" / "r.csv")]
    return make


def _tiny(edit: Callable[[Path, dict], dict | None], backend: str = "torch"
          ) -> Callable[[Path, Path], list[str]]:
    """`run --bundle` of a copy of the tiny bundle after `edit(bundle, manifest)`."""
    def make(folder: Path, base: Path) -> list[str]:
        bundle = _copy(base, folder, "tiny")
        manifest = json.loads((bundle / "manifest.json").read_text())
        changed = edit(bundle, manifest)
        if changed is not None:
            (bundle / "manifest.json").write_text(json.dumps(changed))
        return ["run", "--bundle", str(bundle), "--backends", backend, "--profile", "quick",
                "--power", "none", "--out", str(folder / "out" / "r.csv")]
    return make


def _giant_architecture(bundle: Path, manifest: dict) -> dict:
    entry = next(a for a in manifest["artifacts"] if a["backend"] == "torch")
    path = bundle / entry["artifact"]
    spec = json.loads(path.read_text())
    spec["forecaster"]["hidden_size"] = 2_000_000
    path.write_text(json.dumps(spec))
    return _rehash(bundle, manifest, path)


def _no_windows(bundle: Path, manifest: dict) -> dict:
    reference = _reference(bundle, manifest)
    np.savez(reference, **{"in:x": np.zeros((0, 1, 24, 1), np.float32),
                           "out:y": np.zeros((0, 1, 1), np.float32)})
    return _rehash(bundle, manifest, reference)


def _results_cell(column: str, value: str, *command: str) -> Callable[[Path, Path], list[str]]:
    def make(folder: Path, base: Path) -> list[str]:
        path = _edit_csv(_cell(column, value))(folder, base)
        return [part.replace("{csv}", str(path)).replace("{base}", str(base))
                for part in command]
    return make


def _resume_other_model(folder: Path, base: Path) -> list[str]:
    """A --resume file whose row measured another model than the bundle's."""
    from edge_rnn_harness.bundle.reader import Bundle
    from edge_rnn_harness.core.plan import Case as PlanCase
    from edge_rnn_harness.core.results import ResultsWriter, new_row

    case = PlanCase("tiny", "fp32", "onnxruntime", threads=1, seq_len=24, device_name="dev1")
    identity = Bundle.load(base / "tiny").case_identity(case)
    writer = ResultsWriter(folder / "out" / "r.csv")
    writer.append(new_row(**case.to_dict(), status="ok", latency_median_ms=0.05,
                          **{**identity, "model_id": "f" * 64}))
    writer.close()
    (folder / "inv.toml").write_text('[devices.dev1]\nhost = "root@127.0.0.1:1"\n')
    return ["run", "--bundle", str(base / "tiny"), "--inventory", str(folder / "inv.toml"),
            "--on", "dev1", "--backends", "onnxruntime", "--resume",
            str(folder / "out" / "r.csv")]


def _board_down(folder: Path, base: Path) -> list[str]:
    (folder / "known_hosts").write_text("")
    (folder / "inv.toml").write_text(f'[devices.pi]\nhost = "root@127.0.0.1:1"\n'
                                     f'known_hosts = "{folder / "known_hosts"}"\n')
    return ["run", "--bundle", str(base / "bundle"), "--inventory", str(folder / "inv.toml"),
            "--on", "pi", "--backends", "onnxruntime", "--out", str(folder / "out" / "r.csv")]


def fault_cases() -> list[Case]:
    """The faults of trust round two: exit codes with a board down, rows without identity,
    meter data taken at face value, work bounded in product, tracebacks, messages."""
    def run_bundle_args(base: Path) -> list[str]:
        return ["run", "--bundle", str(base / "bundle"), "--backends", "onnxruntime"]

    cases = [
        Case("faults", "board-down-exits-1", _board_down, frozenset({1}),
             _failed_saying("pi")),
        Case("faults", "resume-other-model", _resume_other_model, frozenset({2}),
             _said("measured model ffffffffffff")),
        Case("faults", "schema-0", _results_cell("schema_version", "0", "show", "{csv}"),
             frozenset({2}), _said("schema_version 0 is not readable")),
        Case("faults", "throttled-lower-case", _results_cell("throttled", "true", "gate",
                                                             "{base}/a.csv", "{csv}"),
             frozenset({2}), _said("'true' is not True or False")),
        Case("faults", "show-inf-rmse", _results_cell("rmse", "inf", "show", "{csv}"),
             frozenset({0}), _said(" inf ")),
        Case("faults", "compare-csv-unjudgeable",
             _results_cell("latency_median_ms", "", "compare", "{base}/a.csv", "{csv}",
                           "--format", "csv"),
             frozenset({0}), _said("cannot judge")),
        Case("faults", "seq-len-times-batch", _option("run", "--model", "lstm", "--seq-len",
                                                      "8760", "--batch", "4096"),
             frozenset({2}), _said("over the 2 GiB limit")),
        Case("faults", "giant-architecture", _tiny(_giant_architecture), frozenset({1}),
             _failed_saying("do not belong together")),
        Case("faults", "reference-without-windows", _tiny(_no_windows, "onnxruntime"),
             frozenset({1}), _failed_saying("no windows")),
        Case("faults", "duplicate-manifest-entry",
             _tiny(lambda b, m: {**m, "artifacts": m["artifacts"] + m["artifacts"][:1]}),
             frozenset({2}), _said("repeats the")),
        Case("faults", "case-timeout-1e300", _option("run", "--case-timeout", "1e300"),
             frozenset({2})),
        Case("faults", "tune-write-unwritable",
             _option("tune", "--backend", "onnxruntime", "--write", "/proc/none/t.json"),
             frozenset({2}), _said("cannot write --write")),
        Case("faults", "tune-out-a-file",
             _option("tune", "--backend", "onnxruntime", "--out", "{base}/a.csv"),
             frozenset({2}), _said("cannot write --out")),
        Case("faults", "ab-cand-python-missing",
             _option("ab", "--bundle", "{base}/bundle", "--cand-python", "/nonexistent",
                     "--out", "{out}"), frozenset({2}), _said("--cand-python /nonexistent")),
        Case("faults", "inputs-missing", _option("run", "--inputs", "{folder}/none.npz",
                                                 "--backends", "onnxruntime"),
             frozenset({2}), _said("(no such file)")),
        Case("faults", "progress-file-full",
             lambda folder, base: [*run_bundle_args(base), "--profile", "quick", "--progress-file",
                                   "/dev/full", "--out", str(folder / "out" / "r.csv")],
             frozenset({1}), _said("writing the progress file /dev/full failed")),
    ]
    cases += [Case("faults", f"power-log-{label}", _power_log(watts), frozenset({0}),
                   _energy_emptied)
              for label, watts in (("negative", "-2"), ("inf", "inf"), ("nan", "nan"),
                                   ("kilowatts", "5000"))]
    return cases


FAMILIES: dict[str, Callable[[], list[Case]]] = {
    "csv": csv_cases, "dataset": dataset_cases, "npz": npz_cases, "manifest": manifest_cases,
    "onnx": onnx_cases, "option": option_cases, "faults": fault_cases}


# --- running and judging ---

@dataclass
class Outcome:
    """What one case did and which rules it broke."""

    case: Case
    code: int | None
    problems: list[str]
    seconds: float

    @property
    def documented(self) -> bool:
        """The documented exit code, with one line on stderr for exit 2."""
        return self.code in self.case.expect and not any(
            p.startswith("stderr") for p in self.problems)


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")
            if not p.is_dir() or p.is_symlink()}


def run_case(case: Case, base: Path, work: Path, timeout_s: float) -> Outcome:
    """Make the case's files, run the CLI on them, judge the result."""
    folder = work / f"{case.family}-{case.name}".replace("/", "-")
    folder.mkdir()
    argv = case.make(folder, base)
    before = _snapshot(folder)
    base_before = _snapshot(base)
    start = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "edge_rnn_harness", *argv],
                                capture_output=True, text=True, timeout=timeout_s,
                                cwd=folder, check=False, errors="replace")
    except subprocess.TimeoutExpired:
        return Outcome(case, None, [f"hang: no exit within {timeout_s:g} s"],
                       time.monotonic() - start)
    seconds = time.monotonic() - start
    problems = []
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        problems.append("traceback")
    gate_verdict = argv[0] == "gate" and result.stdout.startswith("harness gate: ")
    if result.returncode == 2 and not gate_verdict and \
            len(result.stderr.strip().splitlines()) != 1:
        problems.append(f"stderr: {len(result.stderr.strip().splitlines())} lines for exit 2")
    allowed = ("out", "cache", MARKER)
    stray = [name for name, mtime in _snapshot(folder).items()
             if before.get(name) != mtime and not name.startswith(allowed)]
    if stray:
        problems.append(f"wrote outside --out's stem: {', '.join(stray[:3])}")
    if _snapshot(base) != base_before:
        problems.append("changed a file it only read")
    if case.check is not None:
        found = case.check(folder, result)
        if found:
            problems.append(found)
    if result.returncode not in case.expect:
        first = (result.stderr.strip().splitlines() or [""])[-1][:160]
        problems.append(f"exit {result.returncode}, documented {sorted(case.expect)}: {first}")
    return Outcome(case, result.returncode, problems, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(FAMILIES), action="append",
                        help="run only this family (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds before a case counts as a hang (default 180)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    args = parser.parse_args()
    cases = [case for family in (args.only or FAMILIES) for case in FAMILIES[family]()]
    if args.list:
        for case in cases:
            print(f"{case.family:9} {case.name:40} expect {sorted(case.expect)}")
        print(f"{len(cases)} cases")
        return 0
    with tempfile.TemporaryDirectory(prefix="hostile-corpus-") as tmp:
        base, work = Path(tmp) / "base", Path(tmp) / "cases"
        base.mkdir()
        work.mkdir()
        build_base(base)
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, base, work, args.timeout), cases))
    return report(outcomes)


def report(outcomes: list[Outcome]) -> int:
    """Print the broken rules per case and the totals; 1 when a target is missed."""
    hard = ("traceback", "hang", "a planted pickle ran", "wrote outside", "changed a file",
            "an ok row", "expected a", "no failed row")
    broken = 0
    for outcome in outcomes:
        for problem in outcome.problems:
            print(f"{outcome.case.family:9} {outcome.case.name:40} {problem}")
            broken += problem.startswith(hard)
    documented = sum(outcome.documented for outcome in outcomes)
    share = documented / len(outcomes)
    families = sorted({o.case.family for o in outcomes})
    print("\nfamily     cases  documented exit + one line")
    for family in families:
        mine = [o for o in outcomes if o.case.family == family]
        print(f"{family:9} {len(mine):6}  {sum(o.documented for o in mine):6}")
    print(f"all       {len(outcomes):6}  {documented:6} ({share:.1%}; target "
          f"{TARGET_SHARE:.0%}); hard rule breaks (traceback, hang, code run, silently wrong, "
          f"stray write): {broken}; slowest case {max(o.seconds for o in outcomes):.1f} s")
    return 0 if share >= TARGET_SHARE and not broken else 1


if __name__ == "__main__":
    raise SystemExit(main())
