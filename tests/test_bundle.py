"""Bundles: the manifest is validated before anything runs, files are checked by sha256,
nothing in a bundle is unpickled, and the host's export cache reuses what is current."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.bundle.export import Exporter, cache_key
from edge_rnn_harness.bundle.reader import (
    BUNDLE_SCHEMA,
    MANIFEST,
    Bundle,
    BundleError,
    file_sha256,
    load_calibration,
    load_npz,
    load_reference,
    load_windows,
)
from edge_rnn_harness.bundle.sources import PARITY_WINDOWS, RegisteredSource
from edge_rnn_harness.core.plan import Case
from edge_rnn_harness.models.registry import get_entry

TINY = RegisteredSource(get_entry("tiny"))
ORT_CASE = Case(model="tiny", variant="fp32", backend="onnxruntime", threads=1, seq_len=24)


class _Notices(list):
    def __call__(self, text: str) -> None:
        self.append(text)


@pytest.fixture(scope="module")
def ort_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with the tiny model exported for onnxruntime, through the export child."""
    root = tmp_path_factory.mktemp("b") / "bundle"
    outcome = Exporter(root, {"tiny": TINY}, 300).ensure(ORT_CASE, root.parent)
    assert outcome == {}
    return root


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a bundle folder (files only, as a device receives it)."""
    for path in src.rglob("*"):
        if path.is_file():
            (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / path.relative_to(src)).write_bytes(path.read_bytes())
    return dst


def test_manifest_describes_model_and_artifact(ort_bundle: Path) -> None:
    bundle = Bundle.load(ort_bundle)
    model = bundle.models["tiny"]
    assert model.identity == TINY.identity() and model.kind == "registered"
    assert model.seq_len == 24 and model.params == 361
    assert model.signature == {"inputs": [{"name": "x", "shape": [1, 24, 1], "dtype": "float32"}],
                               "outputs": [{"name": "y", "shape": [1, 1], "dtype": "float32"}]}
    info = bundle.artifact("tiny", "fp32", "onnxruntime")
    assert info is not None and info.artifact.endswith("/fp32/onnxruntime/model.onnx")
    assert info.converters["torch"] and info.converters["onnx"]
    assert info.key == cache_key(TINY, get_backend("onnxruntime"), "fp32")
    for item in info.files:
        assert file_sha256(bundle.path(item)) == item.sha256
        assert bundle.path(item).stat().st_size == item.size_bytes
    assert bundle.damaged(list(info.files)) is None
    assert bundle.artifact("tiny", "fp32", "tflite") is None


def test_reference_windows_are_the_eager_model_on_fixed_inputs(ort_bundle: Path) -> None:
    bundle = Bundle.load(ort_bundle)
    windows = load_reference(bundle.path(bundle.models["tiny"].files["reference"]))
    _, again = TINY.reference()
    assert len(windows) == PARITY_WINDOWS
    for (x1, y1), (x2, y2) in zip(windows, again):
        assert np.array_equal(x1["x"], x2["x"]) and np.array_equal(y1["y"], y2["y"])


def test_test_and_calibration_windows_come_from_their_splits(tmp_path: Path) -> None:
    from edge_rnn_harness.models.data import load_dataset, make_splits

    dataset = load_dataset(None, None, None)
    root = tmp_path / "bundle"
    assert Exporter(root, {"tiny": TINY}, 300, dataset).ensure(ORT_CASE, tmp_path) == {}
    model = Bundle.load(root).models["tiny"]
    splits = make_splits(dataset, ("target",), 24, 1)
    test = load_npz(root / model.files["testset"].path)
    calibration = load_npz(root / model.files["calibration"].path)["x"]
    assert np.array_equal(test["x"], splits.test.x) and np.array_equal(test["y"], splits.test.y)
    assert len(calibration) == 128
    train_rows = {row.tobytes() for row in splits.train.x}
    assert all(row.tobytes() in train_rows for row in calibration)
    assert model.units == "GW" and model.dataset == dataset.name


def test_second_ensure_reuses_the_artifact(ort_bundle: Path, tmp_path: Path) -> None:
    root = _copy(ort_bundle, tmp_path / "copy")
    info = Bundle.load(root).artifact("tiny", "fp32", "onnxruntime")
    before = (root / info.artifact).stat().st_mtime_ns
    notices = _Notices()
    assert Exporter(root, {"tiny": TINY}, 300, notice=notices).ensure(ORT_CASE, tmp_path) == {}
    assert (root / info.artifact).stat().st_mtime_ns == before and not notices


def test_damaged_cached_artifact_is_reexported(ort_bundle: Path, tmp_path: Path) -> None:
    root = _copy(ort_bundle, tmp_path / "copy")
    path = root / Bundle.load(root).artifact("tiny", "fp32", "onnxruntime").artifact
    path.write_bytes(path.read_bytes()[:100])
    notices = _Notices()
    assert Exporter(root, {"tiny": TINY}, 300, notice=notices).ensure(ORT_CASE, tmp_path) == {}
    assert len(notices) == 1 and "sha256 differs" in notices[0] and "re-exporting" in notices[0]
    bundle = Bundle.load(root)
    assert bundle.damaged(list(bundle.artifact("tiny", "fp32", "onnxruntime").files)) is None


def test_one_changed_byte_is_named(ort_bundle: Path, tmp_path: Path) -> None:
    root = _copy(ort_bundle, tmp_path / "copy")
    bundle = Bundle.load(root)
    info = bundle.artifact("tiny", "fp32", "onnxruntime")
    data = bytearray((root / info.artifact).read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / info.artifact).write_bytes(bytes(data))
    why = bundle.damaged(list(info.files))
    assert why == (f"bundle file {info.artifact}: size or sha256 differs from the manifest "
                   f"(altered or damaged)")
    (root / info.artifact).unlink()
    assert bundle.damaged(list(info.files)) == f"bundle file {info.artifact} is missing"


def test_cache_key_depends_on_model_backend_and_variant() -> None:
    ort, torch_ref = get_backend("onnxruntime"), get_backend("torch")
    lstm = RegisteredSource(get_entry("lstm"))
    keys = {cache_key(TINY, ort, "fp32"), cache_key(lstm, ort, "fp32"),
            cache_key(TINY, torch_ref, "fp32"), cache_key(TINY, ort, "fp16")}
    assert len(keys) == 4


def _edited(root: Path, tmp_path: Path, edit: object) -> Path:
    copy = _copy(root, tmp_path / "edited")
    manifest = _manifest(copy)
    edit(manifest)  # type: ignore[operator]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("bad_path, message", [
    ("../../etc/passwd", "is not a plain relative path"),
    ("/etc/passwd", "is not a plain relative path"),
    ("tiny/./x", "is not a plain relative path"),
    ("a\\..\\b", "bad file path"),
    ("", "bad file path"),
])
def test_paths_must_stay_inside_the_bundle(ort_bundle: Path, tmp_path: Path, bad_path: str,
                                           message: str) -> None:
    def edit(manifest: dict) -> None:
        manifest["artifacts"][0]["files"][0]["path"] = bad_path
        manifest["artifacts"][0]["artifact"] = bad_path
    with pytest.raises(BundleError, match=message):
        Bundle.load(_edited(ort_bundle, tmp_path, edit))


def test_a_symlink_that_leaves_the_bundle_is_refused(ort_bundle: Path, tmp_path: Path) -> None:
    root = _copy(ort_bundle, tmp_path / "copy")
    info = Bundle.load(root).artifact("tiny", "fp32", "onnxruntime")
    (root / info.artifact).unlink()
    os.symlink("/etc/passwd", root / info.artifact)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        Bundle.load(root)


@pytest.mark.parametrize("schema, message", [
    (BUNDLE_SCHEMA + 1, f"schema {BUNDLE_SCHEMA + 1} is newer than this harness reads"),
    (0, "schema 0 is not one this harness reads"),
    ("1", "schema '1' is not one this harness reads"),
    (None, "schema None is not one this harness reads"),
])
def test_other_schemas_are_refused_naming_the_version(ort_bundle: Path, tmp_path: Path,
                                                      schema: object, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Bundle.load(_edited(ort_bundle, tmp_path, lambda m: m.update(bundle_schema=schema)))


def test_a_schema_1_bundle_still_loads(ort_bundle: Path, tmp_path: Path) -> None:
    """Bundles exported before artifact notes existed run as they are."""
    def older(manifest: dict) -> None:
        manifest.update(bundle_schema=1)
        for artifact in manifest["artifacts"]:
            artifact.pop("notes", None)

    bundle = Bundle.load(_edited(ort_bundle, tmp_path, older))
    assert bundle.artifact("tiny", "fp32", "onnxruntime").notes == {}


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["artifacts"][0]["files"][0].update(sha256="abc"), "no valid sha256"),
    (lambda m: m["artifacts"][0]["files"][0].update(bytes=-1), "no valid byte count"),
    (lambda m: m["artifacts"][0].update(artifact=m["models"]["tiny"]["files"]["reference"]
                                        ["path"]), "is not one of its files"),
    (lambda m: m["artifacts"][0].update(model="other"), "names unknown model 'other'"),
    (lambda m: m["models"]["tiny"]["files"].pop("reference"), "has no reference file"),
    (lambda m: m.pop("models"), "has no models or artifacts"),
    (lambda m: m["artifacts"][0].update(backend="tensorrt"),
     "backend 'tensorrt' is not one this harness knows"),
    (lambda m: m["artifacts"][0].update(variant="int3"),
     "variant 'int3' is not one this harness knows"),
    (lambda m: m["artifacts"].append(dict(m["artifacts"][0])),
     "artifact #1 repeats the onnxruntime fp32 artifact of tiny; each case has one artifact"),
])
def test_malformed_manifests_are_refused(ort_bundle: Path, tmp_path: Path, edit: object,
                                         message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Bundle.load(_edited(ort_bundle, tmp_path, edit))


def test_folder_without_manifest_or_with_garbage(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.load(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2")
    with pytest.raises(BundleError, match="not readable JSON"):
        Bundle.load(tmp_path)
    with pytest.raises(BundleError, match="no such folder"):
        Bundle.load(tmp_path / "nothing")


class _Marker:
    """Unpickling this writes a marker file: it must never happen."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.path, "unpickled"))


def test_npz_files_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    planted = tmp_path / "planted.npz"
    np.savez(planted, x=np.array([_Marker(marker)], dtype=object))
    with pytest.raises(ValueError, match="not a readable numpy .npz"):
        load_npz(planted)
    raw = tmp_path / "raw.npz"
    import pickle

    raw.write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(ValueError, match="not a readable numpy .npz"):
        load_npz(raw)
    assert not marker.exists()


@pytest.mark.parametrize(("arrays", "loader", "message"), [
    ({"in:x": np.zeros((0, 1, 24, 1), np.float32), "out:y": np.zeros((0, 1, 1), np.float32)},
     load_reference, "a reference file with no windows"),
    ({"in:x": np.float32(1.0), "out:y": np.float32(2.0)}, load_reference,
     "a reference file with no windows"),
    ({"x": np.float32(1.0), "y": np.float32(2.0)}, load_windows, "not a test-set file"),
    ({"x": np.float32(1.0)}, load_calibration, "not a calibration file"),
])
def test_files_without_windows_are_refused_in_one_line(tmp_path: Path, arrays: dict,
                                                       loader: object, message: str) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        loader(path)  # type: ignore[operator]


def test_a_missing_or_odd_npz_path_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"absent.npz: not a readable numpy .npz \(no such "
                                         r"file\)"):
        load_npz(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match=r"\(not a regular file \(a folder or device\)\)"):
        load_npz(tmp_path)


def test_an_architecture_larger_than_its_weights_is_refused_before_it_is_built(
        tmp_path: Path) -> None:
    """A doctored architecture.json (a hidden size of a million) beside the real weights:
    the torch backend refuses it from the weights' array headers, allocating nothing."""
    import resource

    from edge_rnn_harness.backends.base import ArtifactError, RunOptions
    from edge_rnn_harness.backends.torch_ref import (
        ARCHITECTURE_FILE,
        WEIGHTS_FILE,
        TorchBackend,
        weight_elements,
    )

    torch_case = Case("tiny", "fp32", "torch", threads=1, seq_len=TINY.entry().spec.seq_len)
    root = tmp_path / "bundle"
    assert Exporter(root, {"tiny": TINY}, 300).ensure(torch_case, tmp_path) == {}
    artifact = Bundle.load(root).artifact("tiny", "fp32", "torch")
    folder = root / Path(artifact.artifact).parent
    spec = json.loads((folder / ARCHITECTURE_FILE).read_text())
    assert weight_elements(folder / WEIGHTS_FILE) >= TINY.entry().spec.parameter_count()
    spec["forecaster"]["hidden_size"] = 1_000_000
    (folder / ARCHITECTURE_FILE).write_text(json.dumps(spec))
    import torch  # noqa: F401 -- imported before measuring: its own memory is not the point

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArtifactError, match=r"describes [\d,]+ parameters but weights.npz "
                                            r"holds [\d,]+ numbers"):
        TorchBackend.prepare(folder / ARCHITECTURE_FILE, RunOptions(threads=1))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # < 100 MB


def test_two_exports_into_one_folder_take_turns_and_the_manifest_lists_all(
        tmp_path: Path) -> None:
    """Two `harness export --out SAME` started together: both succeed (the second waits
    for the folder's lock at each change), the manifest lists every artifact of both, and
    every artifact folder on disk is in the manifest, intact."""
    from tests.conftest import popen_harness

    root = tmp_path / "shared"
    sides = [popen_harness("export", "--model", "tiny", "--backends", backends,
                           "--no-accuracy", "--out", str(root))
             for backends in ("onnxruntime,torch", "openvino,ncnn")]
    outputs = [process.communicate(timeout=600) for process in sides]
    for process, (_, stderr) in zip(sides, outputs):
        assert process.returncode == 0 and "Traceback" not in stderr, stderr
    bundle = Bundle.load(root)
    assert {backend for _, _, backend, _ in bundle.artifacts} == {
        "onnxruntime", "torch", "openvino", "ncnn"}
    for info in bundle.artifacts.values():
        assert bundle.damaged(list(info.files)) is None
    on_disk = {path.parent.name for path in root.glob("tiny-*/fp32/*/*") if path.is_file()}
    assert on_disk == {"onnxruntime", "torch", "openvino", "ncnn"}
    assert not [path for path in root.rglob("*.tmp*")]  # no temporary file left behind
