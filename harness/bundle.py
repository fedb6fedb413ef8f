"""Bundles: each model's exported artifacts per (variant, backend), cached by content
hash, and its reference inputs and outputs.

Layout under the bundle root (default ./bundle):
    <model>/reference-<id>.npz                 fixed inputs "x" and PyTorch outputs "y"
    <model>/<variant>/<backend>/manifest.json  cache key, artifact name, sha256 per file
    <model>/<variant>/<backend>/<files>        the exported file(s): the artifact the
                                               runtime opens and any it reads beside it
                                               (OpenVINO .xml + .bin, ncnn .param + .bin)

Exporting needs the definition side (torch, converters) and runs in its own process
(`python -m harness.bundle`), so a converter crash fails one case, not the harness.
Looking an artifact up needs neither.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.base import Backend
from backends.registry import get_backend
from harness.errors import error_line
from models.registry import ModelEntry, get_entry
from models.spec import INPUT_NAME, OUTPUT_NAME

#: bump when export code changes what it writes, to invalidate every cached artifact
EXPORT_FORMAT = 1
PARITY_WINDOWS = 8
INPUT_SEED = 1234
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """An exported artifact, verified against its manifest.

    path: the file the runtime opens. files: every file of the artifact -> sha256.
    size_bytes: their total size on disk.
    """

    path: Path
    files: dict[str, str]
    size_bytes: int


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(entry: ModelEntry, backend: type[Backend], variant: str) -> str:
    """Hash of everything that determines the artifact: the model's spec and weights, the
    backend, the variant, the converters' versions and the export code's format number."""
    parts = [entry.identity(), backend.name, variant, backend.export_fingerprint(),
             f"format={EXPORT_FORMAT}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def artifact_dir(root: Path, entry: ModelEntry, backend: type[Backend], variant: str) -> Path:
    """Folder holding one cached artifact and its manifest."""
    return root / entry.name / variant / backend.name


def reference_path(root: Path, entry: ModelEntry) -> Path:
    """The model's reference inputs/outputs file (named by the model's identity)."""
    return root / entry.name / f"reference-{entry.identity()[:16]}.npz"


def lookup(root: Path, entry: ModelEntry, backend: type[Backend],
           variant: str) -> tuple[Artifact | None, str | None]:
    """The cached artifact if it is current and intact, else (None, why) where `why` is a
    one-line notice for a damaged or stale file, or None when nothing was cached."""
    folder = artifact_dir(root, entry, backend, variant)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, None
    if manifest.get("key") != cache_key(entry, backend, variant):
        return None, None
    files: dict[str, str] = manifest.get("files", {})
    paths = [folder / name for name in files]
    if manifest.get("artifact") not in files or not reference_path(root, entry).is_file() \
            or not all(path.is_file() for path in paths):
        return None, f"{folder}: cached files are missing; re-exporting"
    for path in paths:
        if file_sha256(path) != files[path.name]:
            return None, (f"{path}: sha256 differs from the one recorded at export "
                          f"(truncated or modified); re-exporting")
    return Artifact(folder / manifest["artifact"], files,
                    sum(path.stat().st_size for path in paths)), None


def reference_inputs(entry: ModelEntry, mean: np.ndarray | None = None,
                     std: np.ndarray | None = None) -> np.ndarray:
    """PARITY_WINDOWS fixed random windows, (N, 1, seq_len, features) float32: standard
    normal, scaled to the model's input `mean` and `std` per feature when given (so the
    windows lie in the range of the data the model was trained on)."""
    rng = np.random.default_rng(INPUT_SEED)
    shape = (PARITY_WINDOWS, *entry.spec.input_shape(1))
    z = rng.standard_normal(shape)
    if mean is not None and std is not None:
        z = z * np.asarray(std, np.float64) + np.asarray(mean, np.float64)
    return z.astype(np.float32)


def load_reference(path: Path) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(inputs, expected outputs) pairs, one per window, from a reference file."""
    with np.load(path) as data:
        xs, ys = data[INPUT_NAME], data[OUTPUT_NAME]
    return [({INPUT_NAME: x}, {OUTPUT_NAME: y}) for x, y in zip(xs, ys)]


def _write_reference(path: Path, entry: ModelEntry, model: object) -> None:
    import torch

    xs = reference_inputs(entry, model.input_mean.numpy(), model.input_std.numpy())
    with torch.inference_mode():
        ys = np.stack([model(torch.from_numpy(x)).numpy() for x in xs])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{INPUT_NAME: xs, OUTPUT_NAME: ys})
    tmp.replace(path)


def export(root: Path, entry: ModelEntry, backend: type[Backend], variant: str) -> Artifact:
    """Export `entry` for `backend`/`variant` into the bundle (and its reference file if
    missing); returns the verified artifact. Needs torch and the backend's converter."""
    model = entry.load()
    ref = reference_path(root, entry)
    if not ref.is_file():
        _write_reference(ref, entry, model)
    folder = artifact_dir(root, entry, backend, variant)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{backend.name}-", dir=folder.parent))
    try:
        path = backend.export(model, entry.spec, variant, staging, calib=None)
        files = {item.name: file_sha256(item) for item in sorted(staging.iterdir())
                 if item.is_file()}
        manifest = {"key": cache_key(entry, backend, variant), "artifact": path.name,
                    "files": files, "model": entry.name,
                    "backend": backend.name, "variant": variant,
                    "converters": backend.export_fingerprint()}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    artifact, why = lookup(root, entry, backend, variant)
    if artifact is None:
        raise RuntimeError(f"export of {entry.name}/{variant} for {backend.name} did not "
                           f"verify: {why}")
    return artifact


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.bundle --root DIR --model M --backend B --variant V`: export one
    artifact. Errors go to stderr as one `HARNESS-ERROR:` line; exit 1."""
    parser = argparse.ArgumentParser(prog="python -m harness.bundle")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--weights-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        export(args.root, get_entry(args.model, args.weights_dir), get_backend(args.backend),
               args.variant)
    except Exception as error:  # any converter failure becomes this case's reason
        print(error_line(error, "export failed"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
