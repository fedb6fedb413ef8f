"""Bundles, the device side: read a self-describing folder of exported models and check it.

A bundle is data, never code: `manifest.json` (versioned) describes every model (identity,
signature, window length, parameters, units) and every artifact (backend, variant, its
files with sha256 and size, the converter versions that wrote it); beside it, per model,
`reference.npz` (parity windows and the reference's outputs), `testset.npz` (the test
split's windows, for rmse/mae) and `calibration.npz` (training-split windows, for variants
that calibrate). Reading one needs numpy alone: nothing is unpickled or executed.

Layout (every path in the manifest is relative to the bundle folder and stays inside it):
    manifest.json
    <model>-<id12>/reference.npz, testset.npz, calibration.npz
    <model>-<id12>/<variant>/<backend>/<files>     the artifact the runtime opens + its
                                                   companions (OpenVINO .bin, ncnn .bin)

Manifest schema history (bump BUNDLE_SCHEMA on any change; keep reading older ones):
  1: first version.
  2: an artifact may carry `notes` (what the exporter did for its variant: tool, ops
     quantized and left float, calibration windows); calibration.npz holds training-split
     windows by input name. Schema 1 bundles read as before (no notes).
  3: an artifact may carry `form` ("" the model for one window of its own length; "step"
     the streaming step graph, its state names and shape in its notes; "s<seq_len>-b<batch>"
     the window model exported for another window length or batch) and `reference` (that
     form's reference windows, when they differ from the model's). Older bundles read as
     form "" only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edge_rnn_harness.backends.registry import backend_names
from edge_rnn_harness.core.parity import SecondOpinion
from edge_rnn_harness.core.plan import Case, artifact_form
from edge_rnn_harness.core.variants import VARIANT_NAMES

BUNDLE_SCHEMA = 3
MANIFEST = "manifest.json"
#: a manifest larger than this is refused unread
MAX_MANIFEST_BYTES = 16 << 20
#: arrays in one .npz of a bundle may hold at most this many bytes once loaded
MAX_NPZ_BYTES = 2 << 30
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FORM = re.compile(r"|step|s[1-9][0-9]{0,5}-b[1-9][0-9]{0,5}")
Window = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


class BundleError(ValueError):
    """A bundle that cannot be used at all (no or foreign manifest, unreadable schema, a
    path leaving the folder); the CLI turns it into one line and exit code 2."""


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: its path relative to the bundle folder, sha256 and size."""

    path: str
    sha256: str
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        return {"path": self.path, "sha256": self.sha256, "bytes": self.size_bytes}


@dataclass(frozen=True)
class ModelInfo:
    """A model as the manifest describes it.

    kind: "registered", "onnx" or "torch" (a package.module:callable). seq_len: window
    length (0 for models brought as files or callables). units: the forecast's units.
    dataset: the data whose test split `files["testset"]` holds. signature: {"inputs":
    [{name, shape, dtype}], "outputs": [...]}. files: "reference" and, where written,
    "testset" and "calibration".
    """

    name: str
    identity: str
    kind: str
    seq_len: int
    params: int | None
    units: str
    dataset: str | None
    signature: dict[str, Any]
    files: dict[str, BundleFile]


@dataclass(frozen=True)
class ArtifactInfo:
    """One exported artifact: `artifact` is the file the runtime opens, `files` all of its
    files; converters maps each converter distribution to its version; key is the host's
    export-cache key."""

    model: str
    variant: str
    backend: str
    artifact: str
    files: tuple[BundleFile, ...]
    converters: dict[str, str]
    key: str
    #: what the exporter did for the variant (tool, ops quantized and left float,
    #: calibration windows): flat values, recorded in the row's settings
    notes: dict[str, Any] = field(default_factory=dict)
    #: the exported form (plan.artifact_form): "" , "step" or "s<seq_len>-b<batch>"
    form: str = ""
    #: the form's own reference windows (None: the model's)
    reference: BundleFile | None = None

    @property
    def size_bytes(self) -> int:
        """Total size of the artifact's files, bytes."""
        return sum(item.size_bytes for item in self.files)

    @property
    def identity(self) -> str:
        """sha256 over the sha256 of each of the artifact's files (in manifest order): the
        same text exactly when the runtime loads the same bytes."""
        return hashlib.sha256("\n".join(item.sha256 for item in self.files).encode()
                              ).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_relpath(root: Path, text: object) -> str:
    """`text` if it is a plain relative path that stays inside `root` (symlinks resolved);
    BundleError naming it otherwise."""
    if not isinstance(text, str) or not text or len(text) > 1024 or "\\" in text \
            or "\x00" in text:
        raise BundleError(f"bundle manifest: bad file path {text!r}")
    if PurePosixPath(text).is_absolute() or any(part in ("", ".", "..")
                                                for part in text.split("/")):
        raise BundleError(f"bundle manifest: file path {text!r} is not a plain relative "
                          f"path inside the bundle; refusing the bundle")
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / text)
    if os.path.commonpath([real_root, real]) != real_root:
        raise BundleError(f"bundle manifest: file path {text!r} leads outside the bundle "
                          f"folder (symlink); refusing the bundle")
    return text


def _file(root: Path, raw: object, where: str) -> BundleFile:
    if not isinstance(raw, dict):
        raise BundleError(f"bundle manifest: {where} is not a file entry")
    sha, size = raw.get("sha256"), raw.get("bytes")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise BundleError(f"bundle manifest: {where} has no valid sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError(f"bundle manifest: {where} has no valid byte count")
    return BundleFile(checked_relpath(root, raw.get("path")), sha, size)


def _text(raw: dict, key: str, where: str, optional: bool = False) -> Any:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise BundleError(f"bundle manifest: {where} has no valid {key!r}")
    return value


def _model(root: Path, name: str, raw: object) -> ModelInfo:
    where = f"model {name!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict) \
            or not isinstance(raw.get("signature"), dict):
        raise BundleError(f"bundle manifest: {where} is malformed")
    files = {kind: _file(root, entry, f"{where} file {kind!r}")
             for kind, entry in raw["files"].items()}
    if "reference" not in files:
        raise BundleError(f"bundle manifest: {where} has no reference file")
    seq_len, params = raw.get("seq_len", 0), raw.get("params")
    if not isinstance(seq_len, int) or seq_len < 0 or \
            (params is not None and not isinstance(params, int)):
        raise BundleError(f"bundle manifest: {where} has a bad seq_len or params")
    return ModelInfo(name, _text(raw, "identity", where), _text(raw, "kind", where), seq_len,
                     params, raw.get("units") or "", _text(raw, "dataset", where, True),
                     raw["signature"], files)


def _artifact(root: Path, raw: object, index: int) -> ArtifactInfo:
    where = f"artifact #{index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("files"), list) or not raw["files"]:
        raise BundleError(f"bundle manifest: {where} is malformed")
    files = tuple(_file(root, entry, where) for entry in raw["files"])
    artifact = checked_relpath(root, raw.get("artifact"))
    if artifact not in {item.path for item in files}:
        raise BundleError(f"bundle manifest: {where}: {artifact!r} is not one of its files")
    converters = raw.get("converters") or {}
    if not isinstance(converters, dict):
        raise BundleError(f"bundle manifest: {where} has malformed converters")
    backend, variant = _text(raw, "backend", where), _text(raw, "variant", where)
    _check_known(backend, variant, where)
    form = raw.get("form", "")
    if not isinstance(form, str) or not _FORM.fullmatch(form):
        raise BundleError(f"bundle manifest: {where} has an unknown form {form!r}")
    reference = _file(root, raw["reference"], f"{where} reference") \
        if raw.get("reference") is not None else None
    return ArtifactInfo(_text(raw, "model", where), variant, backend, artifact, files,
                        {str(k): str(v) for k, v in converters.items()},
                        raw.get("key") or "", checked_notes(raw.get("notes"), where),
                        form, reference)


def _check_known(backend: str, variant: str, where: str) -> None:
    """BundleError for a backend or variant this harness does not know (a bundle from a
    newer harness, or an edited one)."""

    for kind, name, known in (("backend", backend, backend_names()),
                              ("variant", variant, VARIANT_NAMES)):
        if name not in known:
            raise BundleError(f"bundle manifest: {where}: {kind} {name!r} is not one this "
                              f"harness knows ({', '.join(known)}); export the bundle again "
                              f"with this harness")


#: longest text value kept from an artifact's notes
MAX_NOTE_CHARS = 1000


def checked_notes(raw: object, where: str = "notes") -> dict[str, Any]:
    """An artifact's notes as flat values: {} for none; BundleError for anything but a
    JSON object of short strings, numbers and booleans."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 64 or not all(
            isinstance(value, (str, int, float, bool)) and len(str(value)) <= MAX_NOTE_CHARS
            for value in raw.values()):
        raise BundleError(f"bundle manifest: {where} has malformed notes (a JSON object of "
                          f"short strings and numbers expected)")
    return {str(key)[:100]: value for key, value in raw.items()}


@dataclass(frozen=True)
class Bundle:
    """A loaded, validated manifest and the folder it describes."""

    root: Path
    harness_version: str
    models: dict[str, ModelInfo]
    artifacts: dict[tuple[str, str, str, str], ArtifactInfo]

    @classmethod
    def load(cls, root: Path) -> Bundle:
        """Read and validate `root/manifest.json`; BundleError naming what is wrong."""
        path = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"bundle {root}: no such folder")
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise BundleError(f"bundle {root}: {MANIFEST} is larger than "
                                  f"{MAX_MANIFEST_BYTES >> 20} MiB; refusing it")
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"bundle {root}: no {MANIFEST} (write one with harness "
                              f"export)") from None
        except (OSError, ValueError) as error:
            raise BundleError(f"bundle {root}: {MANIFEST} is not readable JSON "
                              f"({' '.join(str(error).split())[:120]})") from None
        if not isinstance(raw, dict):
            raise BundleError(f"bundle {root}: {MANIFEST} is not a bundle manifest")
        _check_schema(root, raw.get("bundle_schema"))
        models_raw, artifacts_raw = raw.get("models"), raw.get("artifacts")
        if not isinstance(models_raw, dict) or not isinstance(artifacts_raw, list):
            raise BundleError(f"bundle {root}: {MANIFEST} has no models or artifacts")
        models = {str(name): _model(root, str(name), entry)
                  for name, entry in models_raw.items()}
        artifacts: dict[tuple[str, str, str, str], ArtifactInfo] = {}
        for index, entry in enumerate(artifacts_raw):
            info = _artifact(root, entry, index)
            if info.model not in models:
                raise BundleError(f"bundle manifest: artifact #{index} names unknown model "
                                  f"{info.model!r}")
            key = (info.model, info.variant, info.backend, info.form)
            if key in artifacts:
                raise BundleError(f"bundle manifest: artifact #{index} repeats the "
                                  f"{info.backend} {info.variant} artifact of {info.model}"
                                  + (f" ({info.form})" if info.form else "")
                                  + "; each case has one artifact (write the bundle again "
                                    "with harness export)")
            artifacts[key] = info
        return cls(root, str(raw.get("harness_version", "")), models, artifacts)

    def artifact(self, model: str, variant: str, backend: str, form: str = ""
                 ) -> ArtifactInfo | None:
        """The artifact of that model, variant, backend and form (plan.artifact_form), or
        None when the bundle has none."""
        return self.artifacts.get((model, variant, backend, form))

    def case_identity(self, case: Case) -> dict[str, str]:
        """The row fields naming what `case` measures from this bundle: model_id and
        artifact_id (each absent where the bundle lacks the model or the artifact)."""
        model = self.models.get(case.model)
        if model is None:
            return {}
        artifact = self.artifact(case.model, case.variant, case.backend,
                                 artifact_form(case, model.seq_len))
        return {"model_id": model.identity,
                **({"artifact_id": artifact.identity} if artifact else {})}

    def path(self, item: BundleFile | str) -> Path:
        """Absolute path of a bundle file."""
        return self.root / (item.path if isinstance(item, BundleFile) else item)

    def file_hashes(self) -> dict[str, str]:
        """Every file the manifest lists (models' and artifacts'): relative path -> sha256
        as recorded (what a copy of the bundle must hold; manifest.json itself not
        included)."""
        items = [*(f for m in self.models.values() for f in m.files.values()),
                 *(f for a in self.artifacts.values() for f in a.files),
                 *(a.reference for a in self.artifacts.values() if a.reference)]
        return {item.path: item.sha256 for item in items}

    def damaged(self, files: tuple[BundleFile, ...] | list[BundleFile]) -> str | None:
        """None when every file is present with its recorded size and sha256, else a
        one-line reason naming the first file that is not."""
        for item in files:
            path = self.path(item)
            if not path.is_file():
                return f"bundle file {item.path} is missing"
            if path.stat().st_size != item.size_bytes or file_sha256(path) != item.sha256:
                return (f"bundle file {item.path}: size or sha256 differs from the manifest "
                        f"(altered or damaged)")
        return None


def _check_schema(root: Path, version: object) -> None:
    if isinstance(version, int) and not isinstance(version, bool) and \
            1 <= version <= BUNDLE_SCHEMA:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > BUNDLE_SCHEMA:
        raise BundleError(f"bundle {root}: schema {version} is newer than this harness reads "
                          f"(1..{BUNDLE_SCHEMA}); upgrade the harness on this machine")
    raise BundleError(f"bundle {root}: schema {version!r} is not one this harness reads "
                      f"(1..{BUNDLE_SCHEMA}); export the bundle again with harness export")


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz written by the harness, without unpickling (object arrays
    are refused) and refusing more than MAX_NPZ_BYTES once loaded. ValueError otherwise."""
    try:
        if not path.exists():
            raise ValueError("no such file")
        if not path.is_file():
            raise ValueError("not a regular file (a folder or device)")
        if path.stat().st_size > MAX_NPZ_BYTES:
            raise ValueError(f"larger than {MAX_NPZ_BYTES >> 20} MiB")
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy holds one array
            raise ValueError("a single array, not an .npz archive of named arrays")  # noqa: TRY004
        with loaded as data:
            total = sum(info.file_size for info in data.zip.infolist())
            if total > MAX_NPZ_BYTES:
                raise ValueError(f"{path.name}: {total} bytes of arrays exceed the "
                                 f"{MAX_NPZ_BYTES >> 20} MiB limit")
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable numpy .npz "
                         f"({' '.join(str(error).split())[:160]})") from None


def load_reference(path: Path) -> list[Window]:
    """Reference windows: arrays "in:<name>" and "out:<name>" stacked over windows, returned
    as (inputs, expected outputs) per window, names in the model's order."""
    arrays = load_npz(path)
    inputs = {k[3:]: a for k, a in arrays.items() if k.startswith("in:")}
    outputs = {k[4:]: a for k, a in arrays.items() if k.startswith("out:")}
    stacked = (*inputs.values(), *outputs.values())
    counts = {len(a) if a.ndim else 0 for a in stacked}
    if not inputs or not outputs or len(counts) != 1:
        raise ValueError(f"{path}: not a reference file (inputs, outputs and window counts "
                         f"must match)")
    if 0 in counts:
        raise ValueError(f"{path}: a reference file with no windows (nothing to check "
                         f"outputs against)")
    return [({n: a[i] for n, a in inputs.items()}, {n: a[i] for n, a in outputs.items()})
            for i in range(counts.pop())]


def load_second_opinion(path: Path) -> SecondOpinion | None:
    """The reference file's second opinion (arrays "second:<name>" and the strings
    "reference_by" and "second_by"), or None where it has none."""
    arrays = load_npz(path)
    outputs = {k[7:]: a for k, a in arrays.items() if k.startswith("second:")}
    if not outputs:
        return None
    names = [arrays.get(key) for key in ("reference_by", "second_by")]
    if any(name is None or name.dtype.kind != "U" or name.ndim for name in names):
        raise ValueError(f"{path}: a second opinion needs the strings reference_by and "
                         f"second_by")
    return SecondOpinion(str(names[0]), str(names[1]), outputs)


def load_windows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Test-split windows: ("x" inputs, "y" targets) from testset.npz."""
    arrays = load_npz(path)
    if "x" not in arrays or "y" not in arrays or arrays["x"].ndim == 0 \
            or arrays["y"].ndim == 0 or len(arrays["x"]) != len(arrays["y"]):
        raise ValueError(f"{path}: not a test-set file (needs x and y of equal length)")
    return arrays["x"], arrays["y"]


def load_calibration(path: Path) -> list[dict[str, np.ndarray]]:
    """Calibration windows from calibration.npz (arrays by input name, stacked over
    windows): one {input name: float32 array with batch 1} per window."""
    arrays = load_npz(path)
    counts = {len(a) if a.ndim else 0 for a in arrays.values()}
    if not arrays or len(counts) != 1 or not counts.pop() or \
            not all(np.issubdtype(a.dtype, np.floating) for a in arrays.values()):
        raise ValueError(f"{path}: not a calibration file (float arrays by input name, the "
                         f"same number of windows each)")
    count = len(next(iter(arrays.values())))
    return [{name: a[i:i + 1].astype(np.float32) for name, a in arrays.items()}
            for i in range(count)]
