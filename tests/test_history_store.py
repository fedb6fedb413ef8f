"""The run store (harness history): runs added once each, their values kept, two writers
at once, versions refused or migrated, hostile store files refused, trends with change
points, and gate --history reading a store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from edge_rnn_harness.analysis import store as store_module
from edge_rnn_harness.analysis.store import COMPACT_AT, open_store
from edge_rnn_harness.analysis.trend import CHANGE, OUTLIER, change_points
from edge_rnn_harness.core.results import SCHEMA_VERSION, read_results
from edge_rnn_harness.measure.stats import raw_values
from tests.conftest import ROOT, run_cli, write_run


def _runs(folder: Path, count: int, step_at: int | None = None, step: float = 1.3,
          start_seed: int = 100) -> list[Path]:
    """`count` synthetic runs a day apart (distinct run_ids); from `step_at` on, slower."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        factor = step if step_at is not None and index >= step_at else 1.0
        stamp = {"timestamp": f"2026-10-{index + 1:02d}T00:00:00+00:00"}
        paths.append(write_run(folder / f"run{index:02d}.csv", seed=start_seed + index,
                               factor=factor * (1 + 0.01 * (index % 3)),
                               onnxruntime=stamp, openvino=stamp))
    return paths


def test_a_run_is_added_once_with_its_values(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r.csv", seed=1)
    first = run_cli("history", "add", str(tmp_path / "store"), str(run))
    again = run_cli("history", "add", str(tmp_path / "store"), str(run))
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "run r1 (2 rows) added" in first.stdout
    assert "already in the store" in again.stdout and "1 run(s)" in again.stdout
    store = open_store(tmp_path / "store")
    assert list(store.runs()["run_id"]) == ["r1"]
    rows = store.rows()
    assert sorted(rows["backend"]) == ["onnxruntime", "openvino"]
    expected = read_results(run)
    assert rows["latency_median_ms"].sort_values().tolist() == \
        expected["latency_median_ms"].sort_values().tolist()
    stored, original = store.values("r1"), raw_values(run.with_suffix(".json"))
    assert sorted(stored) == ["lstm/fp32/onnxruntime/t1/b1", "lstm/fp32/openvino/t1/b1"]
    for name, runs in original.items():
        assert len(stored[name]) == len(runs)
        for kept, measured in zip(stored[name], runs):
            np.testing.assert_allclose(kept, measured, rtol=1e-12)
    listing = run_cli("history", "list", str(tmp_path / "store"))
    assert listing.returncode == 0 and "r1" in listing.stdout


def test_two_writers_at_once_keep_both_runs_and_the_store_intact(tmp_path: Path) -> None:
    """Two processes add different runs to one (new) store at the same moment, five times
    over: every run is there once and every file reads."""
    runs = _runs(tmp_path / "runs", 10)
    store = tmp_path / "store"
    for pair in range(5):
        procs = [subprocess.Popen([sys.executable, "-m", "edge_rnn_harness", "history", "add",
                                   str(store), str(runs[2 * pair + side])], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for side in (0, 1)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    opened = open_store(store)
    assert sorted(opened.runs()["run_id"]) == sorted(f"r{100 + i}" for i in range(10))
    assert len(opened.rows()) == 20
    assert not list(store.rglob("*.tmp"))


def test_many_runs_are_compacted_and_still_counted_once(tmp_path: Path) -> None:
    """Past COMPACT_AT single-run files an add merges them into a segment; the rows and
    the run count stay the same and a re-add is still refused as a duplicate."""
    store = open_store(tmp_path / "store", create=True)
    frame = read_results(write_run(tmp_path / "r.csv", seed=3))
    for index in range(COMPACT_AT + 1):
        store.add(frame.assign(run_id=f"run{index}"))
    files = sorted(p.name for p in (tmp_path / "store" / "runs").glob("*.parquet"))
    assert sum(name.startswith("segment.") for name in files) == 1
    assert len(files) == 2  # the segment and the run added after it
    assert store.run_count() == COMPACT_AT + 1
    assert len(store.rows()) == 2 * (COMPACT_AT + 1)
    assert not store.add(frame.assign(run_id="run0"))[0].added


def test_a_store_from_a_newer_harness_is_refused_in_one_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r.csv", seed=1)
    assert run_cli("history", "add", str(tmp_path / "store"), str(run)).returncode == 0
    manifest = tmp_path / "store" / "store.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "results_schema": SCHEMA_VERSION + 1}))
    for command in (["history", "list", str(tmp_path / "store")],
                    ["gate", "--history", str(tmp_path / "store"), str(run)]):
        result = run_cli(*command)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "written by a newer harness" in lines[0], result.stderr
        assert "upgrade the harness" in lines[0]


def test_an_older_reader_refuses_this_versions_store(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader of the previous results schema (the constant it was built with) refuses
    a store this version wrote."""
    store = open_store(tmp_path / "store", create=True)
    store.add(read_results(write_run(tmp_path / "r.csv", seed=1)))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION - 1)
    with pytest.raises(ValueError, match="written by a newer harness"):
        open_store(tmp_path / "store")


def test_a_store_of_an_older_schema_is_migrated_on_open(tmp_path: Path) -> None:
    """A store written with results schema 5 (no device_tags column) is rewritten with
    the current columns on open, its rows kept."""
    store = open_store(tmp_path / "store", create=True)
    store.add(read_results(write_run(tmp_path / "r.csv", seed=1)))
    run_file = next((tmp_path / "store" / "runs").glob("*.parquet"))
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * EXCLUDE (device_tags) FROM read_parquet('{run_file}')) "
                    f"TO '{run_file}.old' (FORMAT parquet)")
    run_file.with_name(run_file.name + ".old").replace(run_file)
    manifest = tmp_path / "store" / "store.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "results_schema": 5}))
    migrated = open_store(tmp_path / "store")
    assert migrated.manifest()["results_schema"] == SCHEMA_VERSION
    with duckdb.connect() as con:
        names = [row[0] for row in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{run_file}')").fetchall()]
    assert "device_tags" in names
    assert len(migrated.rows()) == 2


@pytest.mark.parametrize("damage", ["garbage manifest", "symlinked run file",
                                    "not parquet", "bad status"])
def test_a_damaged_or_hostile_store_is_one_line_exit_2(tmp_path: Path, damage: str) -> None:
    run = write_run(tmp_path / "r.csv", seed=1)
    store = tmp_path / "store"
    assert run_cli("history", "add", str(store), str(run)).returncode == 0
    runs = store / "runs"
    if damage == "garbage manifest":
        (store / "store.json").write_text("{not json")
    elif damage == "symlinked run file":
        (runs / "elsewhere.parquet").symlink_to("/etc/hostname")
    elif damage == "not parquet":
        (runs / "junk.parquet").write_bytes(b"PAR1 not really")
    else:
        run_file = next(runs.glob("*.parquet"))
        with duckdb.connect() as con:
            con.execute(f"COPY (SELECT * REPLACE ('fine' AS status) FROM "
                        f"read_parquet('{run_file}')) TO '{runs}/other.parquet' "
                        f"(FORMAT parquet)")
    result = run_cli("history", "list" if damage != "bad status" else "trend", str(store),
                     *(["--model", "lstm", "--backend", "openvino"]
                       if damage == "bad status" else []))
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("harness history")


def test_change_points_mark_a_step_and_call_a_lone_spike_an_outlier() -> None:
    rng = np.random.default_rng(0)
    steady = list(1 + 0.005 * rng.standard_normal(12))
    assert [m.kind for m in change_points(steady)] == [""] * 12
    spike = steady[:8] + [1.4] + steady[8:]
    kinds = [m.kind for m in change_points(spike)]
    assert kinds[8] == OUTLIER and CHANGE not in kinds
    step = steady[:8] + list(1.2 + 0.005 * rng.standard_normal(6))
    marks = change_points(step)
    assert [i for i, m in enumerate(marks) if m.kind == CHANGE] == [8]
    assert marks[8].ratio == pytest.approx(1.2, rel=0.02)
    small = steady[:8] + [1.03] * 4  # outside the interval, but below the 5% effect
    assert CHANGE not in [m.kind for m in change_points(small)]


def test_trend_names_the_run_that_changed_and_draws_it(tmp_path: Path) -> None:
    runs = _runs(tmp_path / "runs", 9, step_at=6)
    store = tmp_path / "store"
    assert run_cli("history", "add", str(store), *map(str, runs)).returncode == 0
    plot = tmp_path / "trend.svg"
    table = run_cli("history", "trend", str(store), "--model", "lstm", "--backend",
                    "onnxruntime", "--format", "csv", "--plot", str(plot))
    assert table.returncode == 0, table.stderr
    lines = [line.split(",") for line in table.stdout.strip().splitlines()[1:]]
    changes = [line[1] for line in lines if line[4] == CHANGE]
    assert changes == ["r106"]  # the first slower run, by run_id
    assert plot.read_text().lstrip().startswith("<svg")
    since = run_cli("history", "trend", str(store), "--model", "lstm", "--backend",
                    "onnxruntime", "--since", "2026-10-08", "--format", "csv")
    assert [line.split(",")[1] for line in since.stdout.strip().splitlines()[1:]] == \
        ["r107", "r108"]
    nothing = run_cli("history", "trend", str(store), "--model", "gru", "--backend", "ncnn")
    assert nothing.returncode == 2 and "no ok rows of gru on ncnn" in nothing.stderr


def test_gate_reads_history_from_a_store(tmp_path: Path) -> None:
    runs = _runs(tmp_path / "runs", 8)
    store = tmp_path / "store"
    assert run_cli("history", "add", str(store), *map(str, runs)).returncode == 0
    same = run_cli("gate", "--history", str(store), str(write_run(tmp_path / "same.csv",
                                                                   seed=9)))
    assert same.returncode == 0, same.stdout + same.stderr
    slow = run_cli("gate", "--history", str(store),
                   str(write_run(tmp_path / "slow.csv", seed=9, factor=1.3)))
    assert slow.returncode == 1, slow.stdout
    assert "median latency +2" in slow.stdout
