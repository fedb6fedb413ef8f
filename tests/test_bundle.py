"""The export cache: reuse, damage detection, invalidation by model identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_rnn_harness import bundle
from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.models.registry import get_entry
from edge_rnn_harness.sources import PARITY_WINDOWS, RegisteredSource, load_reference

TINY = RegisteredSource(get_entry("tiny"))


@pytest.fixture()
def ort_bundle(tmp_path: Path) -> Path:
    backend = get_backend("onnxruntime")
    if backend.available():
        pytest.skip(backend.available())
    bundle.export(tmp_path, TINY, backend, "fp32")
    return tmp_path


def test_lookup_returns_the_verified_artifact(ort_bundle: Path) -> None:
    artifact, why = bundle.lookup(ort_bundle, TINY, get_backend("onnxruntime"), "fp32")
    assert why is None and artifact is not None
    assert artifact.path.suffix == ".onnx"
    assert artifact.size_bytes == artifact.path.stat().st_size > 0
    assert artifact.files == {artifact.path.name: bundle.file_sha256(artifact.path)}


def test_truncated_artifact_is_detected_by_hash(ort_bundle: Path) -> None:
    backend = get_backend("onnxruntime")
    artifact, _ = bundle.lookup(ort_bundle, TINY, backend, "fp32")
    data = artifact.path.read_bytes()
    artifact.path.write_bytes(data[: len(data) // 2])
    again, why = bundle.lookup(ort_bundle, TINY, backend, "fp32")
    assert again is None
    assert "sha256 differs" in why and "re-exporting" in why and "\n" not in why


def test_other_weights_or_converter_invalidate_the_cache(ort_bundle: Path) -> None:
    backend = get_backend("onnxruntime")
    manifest_path = bundle.artifact_dir(ort_bundle, TINY, backend, "fp32") / bundle.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["key"] = "0" * 64  # what a changed converter version or weights file gives
    manifest_path.write_text(json.dumps(manifest))
    assert bundle.lookup(ort_bundle, TINY, backend, "fp32") == (None, None)


def test_cache_key_depends_on_model_backend_and_variant() -> None:
    ort, torch_ref = get_backend("onnxruntime"), get_backend("torch")
    lstm = RegisteredSource(get_entry("lstm"))
    keys = {bundle.cache_key(TINY, ort, "fp32"), bundle.cache_key(lstm, ort, "fp32"),
            bundle.cache_key(TINY, torch_ref, "fp32"), bundle.cache_key(TINY, ort, "fp16")}
    assert len(keys) == 4


def test_reference_windows_are_fixed(ort_bundle: Path) -> None:
    windows = load_reference(bundle.reference_path(ort_bundle, TINY))
    _, again = RegisteredSource(get_entry("tiny")).reference()
    assert len(windows) == PARITY_WINDOWS
    assert windows[0][0]["x"].shape == (1, 24, 1) and windows[0][1]["y"].shape == (1, 1)
    for (x1, y1), (x2, y2) in zip(windows, again):
        assert (x1["x"] == x2["x"]).all() and (y1["y"] == y2["y"]).all()
