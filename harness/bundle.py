"""Bundles: each model's exported artifacts per (variant, backend), cached by content
hash, and its reference windows.

Layout under the bundle root (default ./bundle), one folder per model identity:
    <model>-<id>/reference.npz                    reference inputs and expected outputs
    <model>-<id>/<variant>/<backend>/manifest.json  cache key, artifact name, sha256 per file
    <model>-<id>/<variant>/<backend>/<files>        the exported file(s): the artifact the
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

from backends.base import Backend, UnsupportedModel
from backends.registry import get_backend
from harness.errors import ERROR_PREFIX, error_line
from harness.sources import ModelSource, source_from_description, write_reference

#: bump when export code changes what it writes, to invalidate every cached artifact
EXPORT_FORMAT = 2
MANIFEST = "manifest.json"
#: exit code of the export child when the backend cannot take the model at all
EXIT_UNSUPPORTED = 3


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


def cache_key(source: ModelSource, backend: type[Backend], variant: str) -> str:
    """Hash of everything that determines the artifact: the model's identity (definition
    and weights, or file), the backend, the variant, the converters' versions and the
    export code's format number."""
    parts = [source.identity(), backend.name, variant, backend.export_fingerprint(),
             f"format={EXPORT_FORMAT}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def artifact_dir(root: Path, source: ModelSource, backend: type[Backend], variant: str) -> Path:
    """Folder holding one cached artifact and its manifest."""
    return root / source.folder_name() / variant / backend.name


def reference_path(root: Path, source: ModelSource) -> Path:
    """The model's reference windows file."""
    return root / source.folder_name() / "reference.npz"


def lookup(root: Path, source: ModelSource, backend: type[Backend],
           variant: str) -> tuple[Artifact | None, str | None]:
    """The cached artifact if it is current and intact, else (None, why) where `why` is a
    one-line notice for a damaged or stale file, or None when nothing was cached."""
    folder = artifact_dir(root, source, backend, variant)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, None
    if manifest.get("key") != cache_key(source, backend, variant):
        return None, None
    files: dict[str, str] = manifest.get("files", {})
    paths = [folder / name for name in files]
    if manifest.get("artifact") not in files or not reference_path(root, source).is_file() \
            or not all(path.is_file() for path in paths):
        return None, f"{folder}: cached files are missing; re-exporting"
    for path in paths:
        if file_sha256(path) != files[path.name]:
            return None, (f"{path}: sha256 differs from the one recorded at export "
                          f"(truncated or modified); re-exporting")
    return Artifact(folder / manifest["artifact"], files,
                    sum(path.stat().st_size for path in paths)), None


def export(root: Path, source: ModelSource, backend: type[Backend], variant: str) -> Artifact:
    """Export `source` for `backend`/`variant` into the bundle (and its reference windows
    if missing); returns the verified artifact. Raises UnsupportedModel when the backend
    cannot take this kind of model."""
    signature, windows = source.reference()
    ref = reference_path(root, source)
    if not ref.is_file():
        write_reference(ref, windows)
    folder = artifact_dir(root, source, backend, variant)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{backend.name}-", dir=folder.parent))
    try:
        path = source.export(backend, signature, variant, staging)
        files = {item.name: file_sha256(item) for item in sorted(staging.iterdir())
                 if item.is_file()}
        manifest = {"key": cache_key(source, backend, variant), "artifact": path.name,
                    "files": files, "model": source.name,
                    "backend": backend.name, "variant": variant,
                    "converters": backend.export_fingerprint()}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    artifact, why = lookup(root, source, backend, variant)
    if artifact is None:
        raise RuntimeError(f"export of {source.name}/{variant} for {backend.name} did not "
                           f"verify: {why}")
    return artifact


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.bundle --root DIR --source SOURCE.json --backend B --variant V`:
    export one artifact. Errors go to stderr as one `HARNESS-ERROR:` line; exit 1, or
    EXIT_UNSUPPORTED when the backend cannot take the model."""
    parser = argparse.ArgumentParser(prog="python -m harness.bundle")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True,
                        help="JSON written from ModelSource.describe()")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--variant", required=True)
    args = parser.parse_args(argv)
    try:
        source = source_from_description(json.loads(args.source.read_text()))
        export(args.root, source, get_backend(args.backend), args.variant)
    except UnsupportedModel as error:
        print(ERROR_PREFIX + str(error).splitlines()[0], file=sys.stderr)
        return EXIT_UNSUPPORTED
    except Exception as error:  # noqa: BLE001 -- any converter failure is this case's reason
        print(error_line(error, "export failed"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
