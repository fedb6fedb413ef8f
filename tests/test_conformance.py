"""One conformance suite, parametrized over every registered backend: a new backend gets
these tests by being registered. Real runtimes, real exported files, no mocks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.backends.base import ArtifactError, RunOptions
from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.bundle.reader import load_reference
from edge_rnn_harness.core.parity import compare_outputs
from edge_rnn_harness.core.variants import VARIANTS
from edge_rnn_harness.models.spec import OUTPUT_NAME
from tests.conftest import TEST_BACKENDS, TINY_MODELS, Exported

TINY = TINY_MODELS["lstm"]


def _available(name: str) -> type:
    backend = BACKENDS[name]
    reason = backend.available()
    if reason is not None:
        pytest.skip(reason)
    return backend


def _artifact(exported: Exported, backend: type, entry: object = TINY) -> Path:
    return exported.artifact(entry, backend)


@pytest.fixture(params=TEST_BACKENDS)
def backend(request: pytest.FixtureRequest) -> type:
    return _available(request.param)


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(TINY_MODELS))
def test_exported_model_matches_reference(backend: type, session_bundle: Exported,
                                          cell: str) -> None:
    entry = TINY_MODELS[cell]
    windows = load_reference(session_bundle.reference(entry))
    with backend.prepare(_artifact(session_bundle, backend, entry),
                         RunOptions(threads=1)) as model:
        outputs = [model.run(model.feed(inputs)) for inputs, _ in windows]
    assert all(out[OUTPUT_NAME].shape == (1, entry.entry().spec.horizon) for out in outputs)
    parity = compare_outputs({OUTPUT_NAME: np.stack([o[OUTPUT_NAME] for o in outputs])},
                             {OUTPUT_NAME: np.stack([r[OUTPUT_NAME] for _, r in windows])},
                             VARIANTS["fp32"].parity)
    assert parity.within, parity
    assert parity.max_abs_err <= 1e-5


def test_outputs_depend_on_inputs(backend: type, session_bundle: Exported) -> None:
    windows = load_reference(session_bundle.reference(TINY))
    with backend.prepare(_artifact(session_bundle, backend), RunOptions(threads=1)) as model:
        first = model.run(model.feed(windows[0][0]))[OUTPUT_NAME]
        second = model.run(model.feed(windows[1][0]))[OUTPUT_NAME]
        again = model.run(model.feed(windows[0][0]))[OUTPUT_NAME]
    assert not np.allclose(first, second)  # a constant output is a broken model
    np.testing.assert_array_equal(first, again)  # no state leaks between calls


@pytest.mark.parametrize("threads", [1, 2])
def test_settings_are_read_back_or_marked_requested(backend: type, session_bundle: Exported,
                                                    threads: int) -> None:
    with backend.prepare(_artifact(session_bundle, backend),
                         RunOptions(threads=threads)) as model:
        settings = model.settings
    requested = settings.get("requested", {})
    assert set(requested) == backend.unreportable_settings
    assert not set(requested) & set(settings)  # a value is read or requested, never both
    assert settings.get("threads", requested.get("threads")) == threads
    assert settings.get("precision", requested.get("precision")) == "fp32"
    json.dumps(settings)  # recorded in the CSV as JSON


def test_what_each_runtime_reports(session_bundle: Exported) -> None:
    """Values only the loaded runtime knows: its providers and input types, its tensors'
    element types, the hint and per-layer precision of a compiled model."""
    expected = {
        "onnxruntime": {"providers": "CPUExecutionProvider", "input_types": "tensor(float)",
                        "graph_level": "all"},
        "tflite": {"input_types": "float32"},
        "openvino": {"hint": "LATENCY", "streams": 1, "precision": "fp32"},
        "ncnn": {"fp16_storage": False, "fp16_arithmetic": False, "lightmode": "on"},
    }
    for name, values in expected.items():
        backend = _available(name)
        with backend.prepare(_artifact(session_bundle, backend), RunOptions(threads=1)) as model:
            assert {key: model.settings.get(key) for key in values} == values, name
            if name == "tflite":
                assert model.settings["tensor_types"].startswith("float32:")
            if name == "openvino":
                assert "RNNSeq:f32" in model.settings["layer_precision"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_artifact_is_a_clear_error(backend: type, session_bundle: Exported,
                                           tmp_path: Path, damage: str) -> None:
    source = _artifact(session_bundle, backend)
    broken = tmp_path / source.name
    shutil.copy(source, broken)
    if damage == "truncate":
        broken.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    elif damage == "garbage":
        broken.write_bytes(b"\x00not a model\xff" * 64)
    else:
        broken.unlink()
    with pytest.raises(ArtifactError, match=str(broken.name)):
        backend.prepare(broken, RunOptions(threads=1))


def test_close_releases_and_is_idempotent(backend: type, session_bundle: Exported) -> None:
    model = backend.prepare(_artifact(session_bundle, backend), RunOptions(threads=1))
    model.close()
    model.close()
    with pytest.raises((AttributeError, TypeError)):  # the runtime handle is gone
        model.run(model.feed(load_reference(
            session_bundle.reference(TINY))[0][0]))


def test_version_and_format_are_reported(backend: type) -> None:
    assert backend.version()
    assert backend.fmt
