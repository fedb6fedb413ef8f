"""Bundles, the host side: export models into a bundle and keep its manifest.

Exporting needs the definition side (torch, converters, the dataset package) and runs each
artifact in its own process (this module is also a child program:
`python -P -m edge_rnn_harness.bundle.export`), so a converter crash
fails one case, not the harness. `harness export --out DIR` writes a bundle for a device;
`harness run` without `--bundle` keeps one as its export cache (./bundle), reusing an
artifact while its cache key (model identity, backend, variant, converter versions, export
format) is unchanged and its files are intact, then runs from it like any bundle.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness import __version__
from edge_rnn_harness.backends.base import Backend, UnsupportedModel, take_notes
from edge_rnn_harness.backends.registry import get_backend
from edge_rnn_harness.bundle.reader import (
    BUNDLE_SCHEMA,
    MANIFEST,
    Bundle,
    BundleError,
    BundleFile,
    Window,
    checked_notes,
    file_sha256,
    load_calibration,
)
from edge_rnn_harness.bundle.sources import ModelSource, source_from_description
from edge_rnn_harness.core.errors import ERROR_PREFIX, error_line
from edge_rnn_harness.core.launcher import child_argv, run_child
from edge_rnn_harness.core.parity import SecondOpinion
from edge_rnn_harness.core.plan import Case, artifact_form, case_label
from edge_rnn_harness.core.variants import DEFAULT_CALIBRATION_WINDOWS, get_variant
from edge_rnn_harness.models.data import make_splits
from edge_rnn_harness.models.spec import INPUT_NAME

#: bump when export code changes what it writes, to invalidate every cached artifact
EXPORT_FORMAT = 5
#: exit code of the export child when the backend cannot take the model at all
EXIT_UNSUPPORTED = 3

#: the lock file an export holds in the bundle folder while it changes the bundle (not in
#: the manifest: it never travels to a device)
LOCK_FILE = ".export.lock"


def cache_key(source: ModelSource, backend: type[Backend], variant: str,
              calibration_sha256: str = "", form: str = "") -> str:
    """Hash of everything that determines the artifact: the model's identity (definition
    and weights, or file), the backend, the variant, the calibration windows' file (for a
    variant that calibrates), the form (plan.artifact_form), the converters' versions and
    the export code's format number. Computed on the host only."""
    parts = [source.identity(), backend.name, variant, backend.export_fingerprint(),
             f"format={EXPORT_FORMAT}", calibration_sha256] + ([f"form={form}"] if form else [])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def bundle_file(root: Path, path: Path) -> BundleFile:
    """The manifest entry of a file written under `root`."""
    return BundleFile(path.relative_to(root).as_posix(), file_sha256(path),
                      path.stat().st_size)


def replace_atomically(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """`write(tmp)` to a temporary file of a unique name beside `path`, then rename it over
    `path`: readers see the old file or the new one, never half of one, and two writers
    never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                    dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to `path` atomically (see replace_atomically)."""
    replace_atomically(path, lambda tmp: np.savez(tmp, **arrays), ".npz")


def write_reference(path: Path, windows: list[Window],
                    opinion: SecondOpinion | None = None) -> None:
    """Save reference windows: arrays "in:<name>" and "out:<name>" stacked over windows,
    and a second opinion's disputed outputs as "second:<name>" with the strings
    "reference_by" and "second_by"."""
    arrays = {f"in:{name}": np.stack([w[0][name] for w in windows]) for name in windows[0][0]}
    arrays.update({f"out:{name}": np.stack([w[1][name] for w in windows])
                   for name in windows[0][1]})
    if opinion is not None:
        arrays.update({f"second:{name}": a for name, a in opinion.outputs.items()})
        arrays.update(reference_by=np.str_(opinion.reference_by), second_by=np.str_(opinion.by))
    write_npz(path, arrays)


def _tensors(arrays: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    return [{"name": name, "shape": list(a.shape), "dtype": str(a.dtype)}
            for name, a in arrays.items()]


def export_artifact(root: Path, source: ModelSource, backend: type[Backend],
                    variant: str, calibration_path: Path | None = None,
                    form: str = "") -> dict[str, Any]:
    """Export `source` for `backend`/`variant` (and `form`, plan.artifact_form) under
    `root`, with the model's reference windows (and the form's own, where it has them);
    returns {"model": signature and reference entry, "artifact": manifest entry}. A
    calibrating variant calibrates on `calibration_path` (the bundle's training-split
    windows), else on the windows the model brought. Raises UnsupportedModel when the
    backend cannot take this model, variant or form. Host side."""
    why_not = backend.unsupported_reason(variant)
    if why_not:
        raise UnsupportedModel(why_not)
    if form and variant != "fp32":
        raise UnsupportedModel(f"other window lengths, batches and the streaming step graph "
                               f"are exported in fp32 only (asked: {variant})")
    calibration, calibration_sha = None, ""
    if not form and get_variant(variant).calibrated:
        calibration = load_calibration(calibration_path) if calibration_path else \
            source.calibration()
        calibration_sha = file_sha256(calibration_path) if calibration_path else ""
    signature, windows = source.reference()
    folder = root / source.folder_name()
    reference = folder / "reference.npz"
    write_reference(reference, windows, source.second_opinion(windows))
    extra: dict[str, Any] = {}
    if form:
        signature, form_windows = source.form_reference(form)
        if form_windows is not None:
            form_reference = folder / "forms" / form / "reference.npz"
            write_reference(form_reference, form_windows)
            extra["reference"] = bundle_file(root, form_reference).to_json()
        target = folder / variant / f"{backend.name}-{form}"
        opened, names, notes = _staged(target, lambda staging: source.form_export(
            backend, signature, variant, staging, form))
        extra["form"] = form
    else:
        target = folder / variant / backend.name
        opened, names, notes = _staged(target, lambda staging: (source.export(
            backend, signature, variant, staging, calibration), {}))
    return {"model": {"signature": {"inputs": _tensors(windows[0][0]),
                                    "outputs": _tensors(windows[0][1])},
                      "reference": bundle_file(root, reference).to_json()},
            "artifact": {"model": source.name, "variant": variant, "backend": backend.name,
                         "format": backend.fmt,
                         "artifact": (target / opened.name).relative_to(root).as_posix(),
                         "files": [bundle_file(root, target / n).to_json() for n in names],
                         "key": cache_key(source, backend, variant,
                                          calibration_sha if calibration else "", form),
                         "converters": dict(item.split("=", 1) for item in
                                            backend.export_fingerprint().split(";") if item),
                         **extra, **({"notes": notes} if notes else {})}}


def _staged(target: Path, export: Callable[[Path], tuple[Path, dict[str, Any]]]
            ) -> tuple[Path, list[str], dict[str, Any]]:
    """Run `export(staging)` in a fresh folder beside `target`, then move it into place
    (an export that fails leaves `target` as it was): (the opened file, the file names,
    the notes the backend wrote and the ones `export` returned)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        opened, extra_notes = export(staging)
        notes = {**checked_notes(take_notes(staging)), **extra_notes}
        names = sorted(item.name for item in staging.iterdir() if item.is_file())
        shutil.rmtree(target, ignore_errors=True)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return opened, names, notes


def _empty_manifest() -> dict[str, Any]:
    return {"bundle_schema": BUNDLE_SCHEMA, "harness_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "models": {}, "artifacts": []}


class Exporter:
    """Keeps one bundle up to date for a run or an export: exports what is missing or
    stale (each artifact in a child process), writes the test-split and calibration
    windows, and rewrites the manifest atomically after each change. Host side."""

    def __init__(self, root: Path, sources: Mapping[str, ModelSource], timeout_s: float,
                 dataset: Any = None, notice: Callable[[str], None] = print,
                 log: Callable[[str, str], None] | None = None,
                 calibration_windows: int = DEFAULT_CALIBRATION_WINDOWS) -> None:
        """root: the bundle folder (created). sources: the models by name. dataset: the
        data whose splits give test and calibration windows (None: none written).
        notice: one-line messages. log: (label, child output) of a failed child.
        calibration_windows: how many evenly spaced training windows to calibrate on."""
        self.root, self.sources, self.timeout_s = root, sources, timeout_s
        self.dataset, self._notice, self._log = dataset, notice, log
        self.calibration_windows = calibration_windows
        root.mkdir(parents=True, exist_ok=True)
        self.manifest = self._load()
        self._data: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, Any]:
        try:
            Bundle.load(self.root)
        except BundleError as error:
            if (self.root / MANIFEST).exists():
                self._notice(f"{error}; starting the export cache afresh")
            return _empty_manifest()
        return json.loads((self.root / MANIFEST).read_text())

    def _save(self) -> None:
        self.manifest["bundle_schema"] = BUNDLE_SCHEMA  # what this harness writes now
        text = json.dumps(self.manifest, indent=1)
        replace_atomically(self.root / MANIFEST, lambda tmp: tmp.write_text(text))

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the bundle folder's lock (another harness process exporting into it waits,
        told so), with the manifest read afresh: its changes are never overwritten."""
        with (self.root / LOCK_FILE).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._notice(f"waiting for another harness process writing bundle "
                             f"{self.root}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            self.manifest = self._load()
            yield

    def _entry(self, case: Case, form: str) -> dict[str, Any] | None:
        return next((a for a in self.manifest["artifacts"]
                     if (a["model"], a["variant"], a["backend"], a.get("form", "")) ==
                     (case.model, case.variant, case.backend, form)), None)

    def _current(self, case: Case, source: ModelSource, backend: type[Backend],
                 calibration_sha256: str, form: str) -> bool:
        """Whether the bundle already holds this case's artifact, current and intact."""
        entry, model = self._entry(case, form), self.manifest["models"].get(case.model)
        if entry is None or model is None or model.get("identity") != source.identity() \
                or entry.get("key") != cache_key(source, backend, case.variant,
                                                 calibration_sha256, form):
            return False
        try:
            bundle = Bundle.load(self.root)
        except BundleError:
            return False
        info = bundle.artifact(case.model, case.variant, case.backend, form)
        why = bundle.damaged([*info.files, bundle.models[case.model].files["reference"],
                              *([info.reference] if info.reference else [])]) \
            if info else "not in the manifest"
        if why:
            self._notice(f"{why}; re-exporting")
        return why is None

    def ensure(self, case: Case, tmp: Path) -> dict[str, str]:
        """Make the bundle hold `case`'s artifact: {} when it does (cached or exported),
        else row fields {"status": "unsupported"|"failed", "reason": ...}. Under the bundle
        folder's lock: two processes exporting into one folder take turns."""
        with self._exclusive():
            return self._ensure(case, tmp)

    def _ensure(self, case: Case, tmp: Path) -> dict[str, str]:
        source, backend = self.sources[case.model], get_backend(case.backend)
        why_not = backend.unsupported_reason(case.variant)
        if why_not:
            return {"status": "unsupported", "reason": why_not}
        data = self._accuracy_data(case.model, source)
        calibration = data["files"].get("calibration") \
            if get_variant(case.variant).calibrated else None
        sha = calibration["sha256"] if calibration else ""
        form = artifact_form(case, source.seq_len())
        if not self._current(case, source, backend, sha, form):
            outcome = self._export_child(case, source, tmp,
                                         self.root / calibration["path"] if calibration else None,
                                         form)
            if outcome:
                return outcome
        self._apply_accuracy_data(case.model, data)
        return {}

    def _export_child(self, case: Case, source: ModelSource, tmp: Path,
                      calibration: Path | None, form: str) -> dict[str, str]:
        stem = tmp / f"export-{case.model}-{case.variant}-{case.backend}-{form}".replace("/", "_")
        source_json, result_json = stem.with_suffix(".source.json"), stem.with_suffix(".json")
        source_json.write_text(json.dumps(source.describe()))
        child = run_child([*child_argv("edge_rnn_harness.bundle.export"),
                           "--root", str(self.root), "--source", str(source_json),
                           "--backend", case.backend, "--variant", case.variant,
                           "--result", str(result_json), "--form", form,
                           *(["--calibration", str(calibration)] if calibration else [])],
                          self.timeout_s)
        if child.returncode == EXIT_UNSUPPORTED:
            return {"status": "unsupported", "reason": child.reason}
        if not child.ok:
            if self._log:
                self._log(f"{case_label(case.to_dict())} (export)", child.output)
            return {"status": "failed", "reason": f"export: {child.reason}"}
        self._record(source, json.loads(result_json.read_text()))
        return {}

    def _record(self, source: ModelSource, result: dict[str, Any]) -> None:
        models = self.manifest["models"]
        old = models.get(source.name, {})
        if old.get("identity") != source.identity():
            self.manifest["artifacts"] = [a for a in self.manifest["artifacts"]
                                          if a["model"] != source.name]
            old = {}
        models[source.name] = {
            "identity": source.identity(), "kind": source.describe()["kind"],
            "seq_len": source.seq_len(), "params": source.params(),
            "units": old.get("units", ""), "dataset": old.get("dataset"),
            "signature": result["model"]["signature"],
            "files": {**old.get("files", {}), "reference": result["model"]["reference"]}}
        artifact = result["artifact"]
        self.manifest["artifacts"] = [
            a for a in self.manifest["artifacts"]
            if (a["model"], a["variant"], a["backend"], a.get("form", "")) !=
            (artifact["model"], artifact["variant"], artifact["backend"],
             artifact.get("form", ""))] + [artifact]
        self._save()

    def _accuracy_data(self, name: str, source: ModelSource) -> dict[str, Any]:
        """Once per model and run: write the test split's windows (rmse/mae on the device)
        and `calibration_windows` evenly spaced training windows from this run's dataset;
        returns their manifest entries, units and dataset name (no files for a model
        without a dataset)."""
        if name in self._data:
            return self._data[name]
        data: dict[str, Any] = {"files": {}, "units": "", "dataset": None}
        entry = source.entry()
        if self.dataset is not None and entry is not None:

            splits = make_splits(self.dataset, entry.features, entry.spec.seq_len,
                                 entry.spec.horizon)
            folder = self.root / source.folder_name()
            write_npz(folder / "testset.npz", {"x": splits.test.x, "y": splits.test.y})
            count = min(self.calibration_windows, len(splits.train.x))
            picks = np.linspace(0, len(splits.train.x) - 1, count).astype(int)
            write_npz(folder / "calibration.npz", {INPUT_NAME: splits.train.x[picks]})
            data = {"files": {kind: bundle_file(self.root, folder / f"{kind}.npz").to_json()
                              for kind in ("testset", "calibration")},
                    "units": self.dataset.units, "dataset": self.dataset.name}
        self._data[name] = data
        return data

    def _apply_accuracy_data(self, name: str, data: dict[str, Any]) -> None:
        """Point the model's manifest entry at this run's test and calibration windows (a
        model without a dataset loses any such files from an earlier run)."""
        model = self.manifest["models"][name]
        model["files"] = {"reference": model["files"]["reference"], **data["files"]}
        model["units"], model["dataset"] = data["units"], data["dataset"]
        self._save()


def main(argv: list[str] | None = None) -> int:
    """`python -m edge_rnn_harness.bundle.export --root DIR --source SOURCE.json --backend B
    --variant V --result OUT.json`: export one artifact, write its manifest entries to
    OUT.json. Errors go to stderr as one `HARNESS-ERROR:` line; exit 1, or
    EXIT_UNSUPPORTED when the backend cannot take the model."""
    parser = argparse.ArgumentParser(prog="python -m edge_rnn_harness.bundle.export")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True,
                        help="JSON written from ModelSource.describe()")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, default=None,
                        help="training-split windows (.npz by input name) to calibrate on")
    parser.add_argument("--form", default="", help="plan.artifact_form of the artifact")
    args = parser.parse_args(argv)
    try:
        source = source_from_description(json.loads(args.source.read_text()))
        result = export_artifact(args.root, source, get_backend(args.backend), args.variant,
                                 args.calibration, args.form)
        args.result.write_text(json.dumps(result))
    except UnsupportedModel as error:
        print(ERROR_PREFIX + str(error).splitlines()[0], file=sys.stderr)
        return EXIT_UNSUPPORTED
    except Exception as error:  # noqa: BLE001 -- any converter failure is this case's reason
        print(error_line(error, "export failed"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
