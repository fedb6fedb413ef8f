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
from edge_rnn_harness.measure.tune import Measured, Setting
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


def _measured(label: int, median_s: float, lightmode: str = "on") -> Measured:
    """A setting (threads=label) with three worker processes of values around median_s."""
    spread = np.array([0.99, 1.0, 1.01])
    return Measured(Setting(label, (("lightmode", lightmode),)),
                    [spread * median_s for _ in range(3)])


def test_settings_put_the_default_first_and_cover_every_combination() -> None:
    from edge_rnn_harness.measure.tune import settings_of

    made = settings_of({"b": ("x", "y"), "a": ("on", "off")}, [1, 2])
    assert [m.label for m in made[:2]] == ["threads=1 a=on b=x", "threads=1 a=on b=y"]
    assert len(made) == 8 and len({m.label for m in made}) == 8
    assert made[4].label == "threads=2 a=on b=x"


def test_finalists_keep_the_default_and_the_settings_within_the_margin_fastest_first() -> None:
    from edge_rnn_harness.measure.tune import MAX_FINALISTS, finalists

    default = _measured(1, 2e-3)  # the slowest: still kept
    at_margin, beyond = _measured(2, 1.25e-3), _measured(3, 1.2501e-3)
    best, middle = _measured(4, 1e-3), _measured(5, 1.1e-3)
    kept = finalists([default, at_margin, beyond, best, middle], 0.25)
    assert [m.setting.threads for m in kept] == [1, 4, 5, 2][:MAX_FINALISTS]
    many = [default] + [_measured(10 + i, 1e-3 * (1 + i / 100)) for i in range(6)]
    assert len(finalists(many, 0.25)) == MAX_FINALISTS == 4
    assert [m.setting.threads for m in finalists(many, 0.25)] == [1, 10, 11, 12]


@pytest.mark.parametrize(("ratio_ci", "expected_threads", "verdict"), [
    ((0.80, 0.95), 2, ("ncnn: significantly faster: best/default median ratio 95% CI "
                      "0.800-0.950")),
    ((0.90, 1.00), 1, ("ncnn: not significantly faster than the default (ratio 95% CI "
                      "0.900-1.000 includes 1)")),
    ((0.95, 1.10), 1, "ncnn: not significantly faster"),
])
def test_only_a_proven_gain_replaces_the_default(tmp_path: object, ratio_ci: tuple,
                                                 expected_threads: int, verdict: str) -> None:
    import json

    from edge_rnn_harness.measure.tune import TuneJob, chosen, summary_lines, tune_file_text

    default, best = _measured(1, 2e-3), _measured(2, 1.6e-3, "off")
    assert chosen(default, best, ratio_ci).setting.threads == expected_threads
    lines = summary_lines("ncnn", default, best, ratio_ci)
    assert lines[0] == "default: threads=1 lightmode=on: median 2.0000 ms"
    assert lines[1] == "best:    threads=2 lightmode=off: median 1.6000 ms"
    assert lines[2].startswith(verdict)
    saved = json.loads(tune_file_text(TuneJob("ncnn", [], "quick", tmp_path), "tiny",  # type: ignore[arg-type]
                                      default, best, ratio_ci))
    assert saved["threads"] == expected_threads
    assert saved["tuning"] == {"lightmode": "off" if expected_threads == 2 else "on"}
    assert saved["significant"] is (expected_threads == 2)
    assert saved["median_ms"] == pytest.approx(1.6 if expected_threads == 2 else 2.0)
    assert saved["default_median_ms"] == pytest.approx(2.0)


def test_a_default_that_stays_best_says_keep_it() -> None:
    from edge_rnn_harness.measure.tune import summary_lines

    default = _measured(1, 2e-3)
    assert summary_lines("ncnn", default, default, (1.0, 1.0))[2] == (
        "ncnn: no setting was faster than the default in pass 2; keep it")
