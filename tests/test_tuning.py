"""Backend-specific options: each changes the recorded settings and keeps parity;
anything not offered is refused with the allowed values."""

from __future__ import annotations

import numpy as np
import pytest

from edge_rnn_harness.backends.base import RunOptions
from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.bundle.reader import load_reference
from edge_rnn_harness.core.parity import compare_outputs
from edge_rnn_harness.core.variants import VARIANTS
from edge_rnn_harness.models.spec import OUTPUT_NAME
from tests.conftest import TINY_MODELS, Exported, run_cli

TINY = TINY_MODELS["lstm"]
NON_DEFAULT = [(name, key, values[-1]) for name, backend in sorted(BACKENDS.items())
               for key, values in backend.tuning_choices.items()]


@pytest.mark.parametrize("name, key, value", NON_DEFAULT)
def test_non_default_option_is_applied_and_keeps_parity(name: str, key: str, value: str,
                                                        session_bundle: Exported) -> None:
    backend = BACKENDS[name]
    if backend.available():
        pytest.skip(backend.available())
    artifact = session_bundle.artifact(TINY, backend)
    windows = load_reference(session_bundle.reference(TINY))
    with backend.prepare(artifact, RunOptions(threads=1, tuning={key: value})) as model:
        # read back where the runtime can say (tflite's xnnpack cannot: "requested")
        assert model.settings.get(key, model.settings.get("requested", {}).get(key)) == value
        outputs = [model.run(model.feed(x)) for x, _ in windows]
    parity = compare_outputs({OUTPUT_NAME: np.stack([o[OUTPUT_NAME] for o in outputs])},
                             {OUTPUT_NAME: np.stack([r[OUTPUT_NAME] for _, r in windows])},
                             VARIANTS["fp32"].parity)
    assert parity.within


def test_unknown_option_and_value_are_refused() -> None:
    backend = BACKENDS["onnxruntime"]
    with pytest.raises(ValueError, match="has no option 'turbo'.*graph_level"):
        backend.check_tuning({"turbo": "on"})
    with pytest.raises(ValueError, match="graph_level must be one of all, extended"):
        backend.check_tuning({"graph_level": "max"})


def test_cli_refuses_a_bad_tuning_value() -> None:
    result = run_cli("run", "--tune", "tflite.xnnpack=maybe")
    assert result.returncode == 2
    assert "tflite.xnnpack must be one of on, off, got 'maybe'" in result.stderr
