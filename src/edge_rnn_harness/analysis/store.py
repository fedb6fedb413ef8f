"""The run store: every results row (and the timed values behind its intervals) of many
runs, kept as Parquet files in one folder and queried in place with DuckDB.

Layout of a store folder (it may sit on shared storage; any machine with the harness
queries it with the same command):

    store.json            {"format": ..., "store_version": 1, "results_schema": N}
    runs/<run>.parquet    one run's results rows (every results column) + `added_at`
    runs/segment.<id>.parquet   many runs' rows: single-run files merged (compaction)
    values/<run>.parquet  a run's timed values: bench, process, value_ms; written last, so
                          a run is in the store once its values file is
    .lock                 fcntl lock: exclusive for a writer (add, compaction, migration),
                          shared for a reader

Files are written under unique temporary names and renamed into place, so a reader never
sees half a file and two writers never share one; the lock keeps readers from seeing a
compaction half done. Once COMPACT_AT single-run files have gathered, an add merges them
into one segment (DuckDB's cost grows with the number of files it opens: 1,000 single-run
files take about 0.5 s to scan, a few segments a few milliseconds). Adding a run_id already
in the store adds nothing (history then counts distinct runs). The store's versions: a store from
a newer harness (a higher store_version or results schema) is refused; one written with an
older results schema is migrated on open (each run file rewritten with the current
columns, older ones' new columns empty). Store files are treated as hostile: bounded in
size, names kept inside the folder, every row checked as a results CSV's rows are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.analysis.compare import bench_name_in
from edge_rnn_harness.core.results import (
    MAX_RESULTS_BYTES,
    SCHEMA_VERSION,
    conformed,
    read_results,
)
from edge_rnn_harness.core.status import STATUSES
from edge_rnn_harness.measure.stats import raw_values

STORE_FORMAT = "edge-rnn-harness run store"
#: the folder layout's version (bump on a change of the layout or the values table)
STORE_VERSION = 1
_MAX_MANIFEST_BYTES = 64 << 10
#: single-run files that trigger a merge into a segment, and segments that trigger a merge
#: of all segments into one
COMPACT_AT, MERGE_SEGMENTS_AT = 64, 16
_RUN_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.parquet$")


def is_store(path: Path) -> bool:
    """Whether `path` is a run store folder (it has a store.json)."""
    return path.is_dir() and (path / "store.json").is_file()


def _file_key(run_id: str) -> str:
    """A run's file stem: a readable prefix of its id and a hash of all of it."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", run_id)[:40]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Added:
    """What `add` did with one run: added, or already in the store."""
    run_id: str
    rows: int
    added: bool


class RunStore:
    """A run store folder, opened (created, checked and migrated as needed)."""

    def __init__(self, root: Path, create: bool = False) -> None:
        self.root = root
        if not is_store(root):
            if not create:
                raise ValueError(f"{root}: not a run store (no store.json); create one with "
                                 f"harness history add --store {root} RUN.csv")
            self._create()
        with self._locked():
            self._check_and_migrate()

    # -- layout -------------------------------------------------------------------------
    def _create(self) -> None:
        try:
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
            (self.root / "values").mkdir(exist_ok=True)
        except OSError as error:
            raise ValueError(f"{self.root}: cannot create a run store here "
                             f"({error.strerror or error})") from None
        with self._locked():
            if not (self.root / "store.json").exists():
                self._write_manifest(SCHEMA_VERSION)

    def _write_manifest(self, results_schema: int) -> None:
        text = json.dumps({"format": STORE_FORMAT, "store_version": STORE_VERSION,
                           "results_schema": results_schema}, indent=1)
        self._replace(self.root / "store.json", text.encode())

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, shared: bool = False) -> Iterator[None]:
        """The store's lock, blocking: exclusive for a writer (a second writer waits for
        the first), shared for a reader. A reader of a store it cannot write (a read-only
        share) without a lock file reads unlocked."""
        try:
            handle = (self.root / ".lock").open("a")
        except OSError as error:
            if shared and not (self.root / ".lock").exists():
                yield
                return
            try:
                handle = (self.root / ".lock").open("r")
            except OSError:
                raise ValueError(f"{self.root}: cannot lock the run store "
                                 f"({error.strerror or error})") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def manifest(self) -> dict[str, int]:
        """store.json, checked: {"store_version": .., "results_schema": ..}."""
        path = self.root / "store.json"
        if not path.is_file() or path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ValueError(f"{path}: not a run store manifest (a regular file of at most "
                             f"{_MAX_MANIFEST_BYTES >> 10} KiB)")
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a run store manifest ({error})") from None
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT or not all(
                isinstance(data.get(k), int) and not isinstance(data.get(k), bool)
                and data[k] >= 1 for k in ("store_version", "results_schema")):
            raise ValueError(f"{path}: not a run store manifest (format, store_version and "
                             f"results_schema expected)")
        return {"store_version": data["store_version"],
                "results_schema": data["results_schema"]}

    def _check_and_migrate(self) -> None:
        found = self.manifest()
        if found["store_version"] > STORE_VERSION or found["results_schema"] > SCHEMA_VERSION:
            raise ValueError(
                f"{self.root}: written by a newer harness (store version "
                f"{found['store_version']}, results schema {found['results_schema']}); this "
                f"one reads store version {STORE_VERSION}, results schema up to "
                f"{SCHEMA_VERSION}: upgrade the harness")
        if found["results_schema"] < SCHEMA_VERSION:
            for path in self._run_files():
                frame = self._read_parquet([path])
                added = frame.get("added_at")
                frame = conformed(frame)
                frame["added_at"] = added
                self._write_parquet(frame, path)
            self._write_manifest(SCHEMA_VERSION)

    def _run_files(self) -> list[Path]:
        """The run files, each a regular file with a plain name, bounded."""
        files = []
        for path in sorted((self.root / "runs").glob("*.parquet")):
            if not _RUN_FILE.match(path.name) or path.is_symlink() or not path.is_file():
                raise ValueError(f"{path}: not a run file of this store (a regular file "
                                 f"named like <run>.parquet)")
            if path.stat().st_size > MAX_RESULTS_BYTES:
                raise ValueError(f"{path}: larger than {MAX_RESULTS_BYTES >> 20} MiB")
            files.append(path)
        return files

    # -- Parquet through DuckDB -----------------------------------------------------------
    @staticmethod
    def _query(sql: str, paths: Sequence[Path], params: Sequence[object] = ()) -> pd.DataFrame:
        """`sql` (its first `?` the list of Parquet files, read as one table) as a frame;
        ValueError naming what DuckDB could not read."""
        import duckdb

        try:
            with duckdb.connect() as con:
                return con.execute(sql, [[str(p) for p in paths], *params]).df()
        except duckdb.Error as error:
            first = str(error).strip().splitlines()[0]
            raise ValueError(f"run store: a run file is not readable Parquet ({first})") \
                from None

    @classmethod
    def _read_parquet(cls, paths: Sequence[Path], where: str = "",
                      params: Sequence[object] = ()) -> pd.DataFrame:
        if not paths:
            return pd.DataFrame()
        return cls._query(f"SELECT * FROM read_parquet(?, union_by_name=true) {where}",
                          paths, params)

    @classmethod
    def _write_parquet(cls, frame: pd.DataFrame, path: Path) -> None:
        import duckdb

        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp")
        try:
            with duckdb.connect() as con:
                con.register("frame", frame)
                con.execute(f"COPY frame TO '{tmp}' (FORMAT parquet)")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------
    def add(self, frame: pd.DataFrame,
            values: Mapping[str, Sequence[np.ndarray]] | None = None) -> list[Added]:
        """Add the rows of `frame` (a results frame), one store run per run_id, with the
        timed values (bench name -> each process's values in seconds) of its cases. A
        run_id already in the store is left as it is."""
        done = []
        stamp = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
        with self._locked():
            for run_id, rows in frame.groupby("run_id", sort=False, dropna=False):
                if pd.isna(run_id) or not str(run_id):
                    raise ValueError("rows without a run_id cannot be stored")
                key = _file_key(str(run_id))
                marker = self.root / "values" / f"{key}.parquet"
                if marker.exists():
                    done.append(Added(str(run_id), len(rows), False))
                    continue
                stored = conformed(rows.reset_index(drop=True))
                stored["added_at"] = stamp
                self._write_parquet(stored, self.root / "runs" / f"{key}.parquet")
                names = {bench_name_in(values or {}, r) for r in rows.to_dict("records")}
                kept = pd.DataFrame(
                    [(str(run_id), name, process, float(value) * 1e3)
                     for name, runs in (values or {}).items() if name in names
                     for process, run in enumerate(runs) for value in run],
                    columns=["run_id", "bench", "process", "value_ms"])
                self._write_parquet(kept, marker)  # last: the run is in the store now
                done.append(Added(str(run_id), len(rows), True))
            self._compact()
        return done

    def _compact(self) -> None:
        """Merge the single-run files into a segment once COMPACT_AT have gathered, and all
        segments into one once MERGE_SEGMENTS_AT have (called under the writer lock)."""
        files = self._run_files()
        singles = [p for p in files if not p.name.startswith("segment.")
                   and (self.root / "values" / p.name).exists()]  # complete runs only
        segments = [p for p in files if p.name.startswith("segment.")]
        for group, limit in ((singles, COMPACT_AT), (segments, MERGE_SEGMENTS_AT)):
            if len(group) >= limit:
                merged = self._read_parquet(group)
                name = f"segment.{uuid.uuid4().hex}.parquet"
                self._write_parquet(merged, self.root / "runs" / name)
                for path in group:
                    path.unlink()
                segments = [p for p in self._run_files() if p.name.startswith("segment.")]

    def add_results(self, csv_path: Path) -> list[Added]:
        """Add a results CSV (and the timed values of the pyperf JSON beside it)."""
        return self.add(read_results(csv_path), raw_values(csv_path.with_suffix(".json")))

    # -- reading ------------------------------------------------------------------------
    def rows(self, where: str = "", params: Sequence[object] = ()) -> pd.DataFrame:
        """Every stored row (optionally filtered by a DuckDB WHERE clause with `?`
        parameters) as a typed results frame plus `added_at`; ValueError for a row that is
        not a valid results row."""
        with self._locked(shared=True):
            frame = self._read_parquet(self._run_files(), where, params)
        if not len(frame):
            return conformed(pd.DataFrame()).assign(added_at=pd.Series(dtype="string"))
        added = frame.get("added_at")
        typed = conformed(frame)
        bad_status = sorted(set(typed["status"].dropna()) - set(STATUSES))
        versions = typed["schema_version"]
        if bad_status or versions.isna().any() or (versions > SCHEMA_VERSION).any():
            raise ValueError(f"{self.root}: a stored row is not a valid results row "
                             f"(status {bad_status[:1] or 'ok'}, schema versions "
                             f"{sorted(set(versions.dropna()))})")
        typed["added_at"] = added
        return typed

    def runs(self) -> pd.DataFrame:
        """One line per stored run: run_id, timestamp, devices, rows, ok rows, models,
        backends, when it was added; oldest first."""
        with self._locked(shared=True):
            return self._runs(self._run_files())

    def _runs(self, files: list[Path]) -> pd.DataFrame:
        if not files:
            return pd.DataFrame(columns=["run_id", "timestamp", "devices", "rows", "ok",
                                         "models", "backends", "added_at"])
        query = """SELECT run_id, min(timestamp) AS timestamp,
                   string_agg(DISTINCT coalesce(device_name, device), ', ') AS devices,
                   count(*) AS rows, count(*) FILTER (status = 'ok') AS ok,
                   string_agg(DISTINCT model, ', ') AS models,
                   string_agg(DISTINCT backend, ', ') AS backends,
                   min(added_at) AS added_at
                   FROM read_parquet(?, union_by_name=true)
                   GROUP BY run_id ORDER BY min(timestamp), run_id"""
        return self._query(query, files)

    def run_count(self) -> int:
        """How many runs the store holds (each run has one values file)."""
        return sum(1 for _ in (self.root / "values").glob("*.parquet"))

    def values(self, run_id: str) -> dict[str, list[np.ndarray]]:
        """A stored run's timed values: bench name -> each process's values (seconds),
        as measure.stats.raw_values reads them from a pyperf JSON file."""
        path = self.root / "values" / f"{_file_key(run_id)}.parquet"
        if not path.is_file():
            return {}
        frame = self._read_parquet([path])
        out: dict[str, list[np.ndarray]] = {}
        for (bench, _), group in frame.groupby(["bench", "process"], sort=True):
            out.setdefault(str(bench), []).append(group["value_ms"].to_numpy(float) / 1e3)
        return out


def added_line(path: Path, added: Added) -> str:
    """What adding one run of `path` did, for people."""
    what = "added" if added.added else "already in the store, left as it is"
    return f"{path}: run {added.run_id} ({added.rows} rows) {what}"


def open_store(path: Path, create: bool = False) -> RunStore:
    """The run store at `path` (ValueError, one line, when it is not one or is from a
    newer harness)."""
    return RunStore(path, create=create)
