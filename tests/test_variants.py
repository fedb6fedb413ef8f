"""Precision variants: every backend x variant pair is a row (ok, unsupported or invalid,
never missing), each quantizer's real effect is recorded, every variant is compared with
its own backend's fp32, and a degenerate model is `invalid`, never `ok`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.bundle.reader import BundleError, checked_notes
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.core.variants import VARIANT_NAMES, VARIANTS, degenerate_reason
from tests.conftest import run_cli
from tests.onnx_recurrent import CASES, build

pytestmark = pytest.mark.slow

CALIBRATION_WINDOWS = 32


@pytest.fixture(scope="module")
def variants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness run --backends all --variants all --profile quick` on the trained lstm:
    the folder with its results (r.csv) and export cache (bundle/)."""
    tmp = tmp_path_factory.mktemp("variants")
    out = tmp / "r.csv"
    result = run_cli("run", "--model", "lstm", "--backends", "all", "--variants", "all",
                     "--profile", "quick", "--calibration-windows", str(CALIBRATION_WINDOWS),
                     "--out", str(out), "--bundle-dir", str(tmp / "bundle"), timeout=1200)
    assert out.is_file(), result.stderr
    assert result.returncode in (0, 1), result.stderr  # 1: an invalid row is a finding
    return tmp


@pytest.fixture(scope="module")
def all_variants(variants_dir: Path) -> pd.DataFrame:
    """The rows of that run, indexed by (variant, backend)."""
    return read_results(variants_dir / "r.csv").set_index(["variant", "backend"])


def _settings(rows: pd.DataFrame, variant: str, backend: str) -> dict:
    return json.loads(rows.loc[(variant, backend), "settings"])


def test_every_backend_and_variant_pair_is_a_row(all_variants: pd.DataFrame) -> None:
    expected = {(v, b) for v in VARIANT_NAMES for b in BACKENDS}
    assert set(all_variants.index) == expected and len(all_variants) == len(expected)
    assert set(all_variants["status"]) <= {"ok", "unsupported", "invalid"}
    not_ok = all_variants[all_variants["status"] != "ok"]
    assert not_ok["reason"].str.len().min() > 20  # every non-ok row says why


def test_unsupported_pairs_are_the_declared_ones(all_variants: pd.DataFrame,
                                                 machine_branch: object) -> None:
    """A pair is unsupported exactly when the backend does not offer the variant or this
    machine cannot run it (the question the product asks: `runs_here`, e.g. OpenVINO fp16
    on a CPU without FP16 capability), with that answer as its reason."""
    for (variant, backend), row in all_variants.iterrows():
        declared = BACKENDS[backend].unsupported_reason(variant)
        here = None if declared else BACKENDS[backend].runs_here(variant)
        why = declared or here
        assert (row["status"] == "unsupported") == (why is not None), (variant, backend)
        if why:
            assert why in row["reason"] and pd.isna(row["latency_median_ms"])
        if here is not None or (variant, backend) == ("fp16", "openvino"):
            machine_branch(f"{backend} {variant}: "  # type: ignore[operator]
                           + (f"unsupported here ({here})" if here else "runs here"))
    assert "casts a float16 model's LSTM back" in all_variants.loc[("fp16", "onnxruntime"),
                                                                   "reason"]
    assert "ncnn2int8" in all_variants.loc[("int8-static", "ncnn"), "reason"]


def test_every_measured_variant_is_compared_with_its_fp32(all_variants: pd.DataFrame) -> None:
    measured = all_variants[(all_variants["status"] != "unsupported")]
    for (variant, backend), row in measured.iterrows():
        assert row["rmse"] > 0 and row["artifact_bytes"] > 0
        if variant == "fp32":
            assert pd.isna(row["fp32_rmse"])
            continue
        assert row["fp32_rmse"] == pytest.approx(all_variants.loc[("fp32", backend), "rmse"],
                                                 rel=1e-6)
        assert 0 < row["fp32_max_abs_err"] < 5, (variant, backend)
        _check_precision_record(_settings(all_variants, variant, backend), variant, backend)


def _check_precision_record(settings: dict, variant: str, backend: str) -> None:
    """Where the runtime can say, the precision it computes in was read back (ncnn's fp16
    runs fp32 arithmetic on a CPU without ARM half-precision); else it stands as requested,
    beside the element types the runtime does report."""
    if backend in ("onnxruntime", "tflite"):
        assert "precision" not in settings and settings["requested"]["precision"] == variant
    elif backend == "ncnn":
        import ncnn

        half = variant == "fp16" and ncnn.cpu_support_arm_asimdhp()  # as the backend asks
        assert settings["precision"] == ("fp16" if half else "fp32")
        assert settings["fp16_storage"] is (variant == "fp16")
    else:  # openvino measures fp16 only where the CPU plugin has the FP16 capability
        assert settings["precision"] == ("fp16" if variant == "fp16" else "fp32")
    if backend == "tflite":
        assert {"fp32": "float16:" not in settings["tensor_types"] and
                "int8:" not in settings["tensor_types"],
                "fp16": "float16:" in settings["tensor_types"],
                "int8-dynamic": "int8:" in settings["tensor_types"],
                "int8-static": settings["input_types"] == "int8"}[variant], settings


def test_fp32_on_every_backend_matches_the_training_record(all_variants: pd.DataFrame) -> None:
    """lstm's committed record, on every backend (the other trained models: in
    tests/test_trained_models.py), to float rounding across CPUs."""
    from edge_rnn_harness.models.registry import MODELS

    record = MODELS["lstm"].record()
    fp32 = all_variants.xs("fp32", level="variant")
    assert set(fp32.index) == set(BACKENDS) and (fp32["status"] == "ok").all()
    assert fp32["rmse"].tolist() == pytest.approx([record["test_rmse"]] * len(fp32), rel=2e-5)
    assert fp32["rmse"].max() / fp32["rmse"].min() - 1 < 1e-5  # README: within 0.0002%


def test_calibration_windows_are_recorded(all_variants: pd.DataFrame) -> None:
    static = all_variants.xs("int8-static", level="variant")
    measured = static[static["status"] != "unsupported"]
    assert set(measured.index) == {"onnxruntime", "tflite", "openvino"}
    assert (measured["calibration_windows"] == CALIBRATION_WINDOWS).all()
    assert all_variants.xs("int8-dynamic", level="variant")["calibration_windows"].isna().all()


def test_what_each_quantizer_touched_is_recorded(all_variants: pd.DataFrame) -> None:
    dynamic = _settings(all_variants, "int8-dynamic", "onnxruntime")
    assert dynamic["int8_ops"] == "LSTM,MatMul" and dynamic["float_ops"] == "none"
    static = _settings(all_variants, "int8-static", "onnxruntime")
    assert static["float_ops"] == "LSTM" and static["int8_ops"] == "Gemm"  # LSTM stays fp32
    assert "FULLY_CONNECTED" in _settings(all_variants, "int8-dynamic", "tflite")[
        "quantized_ops"]
    openvino = _settings(all_variants, "int8-static", "openvino")
    recipes = ("performance", "mixed", "recurrent-float")
    assert openvino["tool"] in [f"nncf.quantize recipe={name}" for name in recipes]
    errors = dict(part.split(": max error ") for part in
                  openvino["preset_choice"].removesuffix(" on the calibration windows")
                  .split("; "))
    assert list(errors) == list(recipes)  # every recipe tried, the closest to fp32 kept
    assert openvino["tool"].endswith(min(errors, key=lambda name: float(errors[name])))
    assert "RNNSeq:" in openvino["layer_precision"]  # read back from the compiled model
    weights_only = _settings(all_variants, "int8-dynamic", "openvino")
    assert weights_only["int8_weights"] == "MatMul"  # nncf leaves the LSTM's weights float
    assert weights_only["float_weights"] == "LSTMSequence"
    assert _settings(all_variants, "fp32", "openvino")["precision"] == "fp32"
    assert _settings(all_variants, "fp16", "ncnn")["fp16_storage"] is True


def test_calibration_is_part_of_the_cache_key(variants_dir: Path) -> None:
    """The same calibration reuses the exported int8-static artifact; another window count
    exports it again and the row says so."""
    def static_run(windows: int, name: str) -> tuple[pd.Series, str]:
        out = variants_dir / name
        result = run_cli("run", "--model", "lstm", "--backends", "onnxruntime", "--variants",
                         "int8-static", "--profile", "quick", "--calibration-windows",
                         str(windows), "--out", str(out), "--bundle-dir",
                         str(variants_dir / "bundle"))
        return read_results(out).iloc[0], result.stdout + result.stderr

    manifest = variants_dir / "bundle" / "manifest.json"
    before = manifest.read_text()
    same, _ = static_run(CALIBRATION_WINDOWS, "same.csv")
    assert same["calibration_windows"] == CALIBRATION_WINDOWS
    key = next(a["key"] for a in json.loads(manifest.read_text())["artifacts"]
               if (a["variant"], a["backend"]) == ("int8-static", "onnxruntime"))
    assert key in before  # not exported again
    fewer, _ = static_run(8, "fewer.csv")
    assert fewer["status"] == "ok" and fewer["calibration_windows"] == 8
    assert key not in manifest.read_text()


def test_onnxruntime_dynamic_int8_meets_the_size_and_accuracy_targets(
        all_variants: pd.DataFrame) -> None:
    fp32, int8 = (all_variants.loc[(v, "onnxruntime")] for v in ("fp32", "int8-dynamic"))
    assert int8["status"] == "ok"
    assert fp32["artifact_bytes"] / int8["artifact_bytes"] >= 2.5
    assert int8["rmse"] <= 1.02 * fp32["rmse"]


def test_int8_rows_beyond_the_accuracy_policy_are_invalid(all_variants: pd.DataFrame) -> None:
    for (variant, _), row in all_variants.iterrows():
        policy = VARIANTS[variant].max_rmse_growth
        if row["status"] == "ok" and policy is not None:
            assert row["rmse"] <= (1 + policy) * row["fp32_rmse"]
        if row["status"] == "invalid":
            assert row["reason"].startswith(("degenerate forecasts", "accuracy policy",
                                              "parity"))


def test_ort_fp16_really_falls_back_to_fp32(tmp_path: Path) -> None:
    """Keeps the reason of the unsupported onnxruntime fp16 row true: the CPU provider
    inserts casts back to float32 around the float16 LSTM."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = build(CASES[0], tmp_path / "m")
    half = tmp_path / "half.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(model)), keep_io_types=True), str(half))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(half), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    lstm = next(node for node in graph.node if node.op_type == "LSTM")
    weights = {init.name: init.data_type for init in graph.initializer}
    assert weights[lstm.input[1]] == onnx.TensorProto.FLOAT  # W was float16 in the file
    assert weights[lstm.input[2]] == onnx.TensorProto.FLOAT


def test_constant_output_model_is_invalid(tmp_path: Path) -> None:
    """The committed lstm with its head's weights zeroed forecasts one constant: it runs
    and matches its own reference, but it is no forecaster."""
    import torch

    weights = tmp_path / "weights"
    weights.mkdir()
    committed = Path(__file__).parents[1] / "src/edge_rnn_harness/models/weights/lstm.pt"
    state = torch.load(committed, weights_only=True)
    state["head.weight"].zero_()
    torch.save(state, weights / "lstm.pt")
    out = tmp_path / "r.csv"
    result = run_cli("run", "--model", "lstm", "--weights-dir", str(weights), "--backends",
                     "onnxruntime", "--variants", "fp32,int8-dynamic", "--profile", "quick",
                     "--out", str(out), "--bundle-dir", str(tmp_path / "bundle"))
    rows = read_results(out).set_index("variant")
    assert result.returncode == 1, result.stderr
    for variant in ("fp32", "int8-dynamic"):
        assert rows.loc[variant, "status"] == "invalid"
        assert "constant output" in rows.loc[variant, "reason"]


def test_user_onnx_static_int8_needs_real_inputs(tmp_path: Path) -> None:
    with_data = build(CASES[0], tmp_path / "with")
    bare = tmp_path / "bare" / "bare.onnx"
    bare.parent.mkdir()
    shutil.copy(with_data, bare)
    out = tmp_path / "r.csv"
    run_cli("run", "--model", f"{with_data},{bare}", "--backends", "onnxruntime,openvino",
            "--variants", "int8-dynamic,int8-static", "--profile", "quick", "--out", str(out),
            "--bundle-dir", str(tmp_path / "bundle"))
    rows = read_results(out).set_index(["model", "variant", "backend"])
    assert len(rows) == 8
    for backend in ("onnxruntime", "openvino"):
        bare_static = rows.loc[("bare", "int8-static", backend)]
        assert bare_static["status"] == "unsupported"
        assert "needs calibration windows" in bare_static["reason"]
        assert rows.loc[(with_data.stem, "int8-static", backend), "calibration_windows"] == 1
        assert rows.loc[("bare", "int8-dynamic", backend), "status"] != "unsupported"


def test_variants_run_from_a_bundle_on_the_device(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    exported = run_cli("export", "--model", "lstm", "--backends", "onnxruntime",
                       "--variants", "int8-dynamic", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert "adding fp32" in exported.stderr
    out = tmp_path / "r.csv"
    result = run_cli("run", "--bundle", str(bundle), "--backends", "onnxruntime",
                     "--variants", "int8-dynamic", "--profile", "quick", "--out", str(out))
    assert result.returncode == 0, result.stderr
    row = read_results(out).iloc[0]
    assert row["status"] == "ok" and row["fp32_rmse"] > 0 and row["fp32_max_abs_err"] > 0
    assert json.loads(row["settings"])["tool"].startswith("onnxruntime.quantization")

    # what quantizing buys, interleaved: the variant as the candidate of an fp32 baseline
    ab = run_cli("ab", "--bundle", str(bundle), "--variants", "fp32", "--cand-variant",
                 "int8-dynamic", "--backends", "onnxruntime", "--profile", "quick",
                 "--out", str(tmp_path / "ab.csv"), "--max-slowdown", "off")
    assert ab.returncode == 0, ab.stdout + ab.stderr
    base, cand = (read_results(tmp_path / f"ab-{side}.csv").iloc[0] for side in ("base", "cand"))
    assert (base["variant"], cand["variant"]) == ("fp32", "int8-dynamic")
    assert cand["fp32_rmse"] == base["rmse"] and cand["status"] == "ok"
    assert "artifact size" in ab.stdout and "-68." in ab.stdout  # 76,279 -> 24,155 bytes
    compared = run_cli("compare", str(tmp_path / "ab-base.csv"), str(tmp_path / "ab-cand.csv"),
                       "--rename-variant", "int8-dynamic=fp32", "--allow-mismatch")
    assert compared.returncode == 0 and "artifact_bytes" in compared.stdout, compared.stderr
    refused = run_cli("ab", "--bundle", str(bundle), "--variants", "fp32,int8-dynamic",
                      "--cand-variant", "int8-dynamic", "--out", str(tmp_path / "x.csv"))
    assert refused.returncode == 2 and "exactly one baseline variant" in refused.stderr


@pytest.mark.parametrize("predictions, reason", [
    (np.array([[1.0], [np.nan], [2.0]]), "NaN or infinite"),
    (np.full((5, 1), 4.2), "constant output"),
    (np.array([[9.0], [-9.0], [9.0]]), "worse than the persistence"),
])
def test_degenerate_forecasts_are_named(predictions: np.ndarray, reason: str) -> None:
    targets = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])[:len(predictions)]
    assert reason in degenerate_reason(predictions, targets, 1.0, VARIANTS["int8-static"])


def test_a_good_forecast_is_not_degenerate() -> None:
    targets = np.arange(10.0).reshape(-1, 1)
    assert degenerate_reason(targets + 0.1, targets, 1.0, VARIANTS["fp32"]) == ""


@pytest.mark.parametrize("notes", [[1, 2], {"tool": {"nested": 1}}, {"tool": "x" * 5000}])
def test_hostile_artifact_notes_are_refused(notes: object) -> None:
    with pytest.raises(BundleError, match="malformed notes"):
        checked_notes(notes)
