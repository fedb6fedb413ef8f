"""The results CSV: round trip, incremental writes, old and foreign files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from edge_rnn_harness.core.results import (
    SCHEMA_VERSION,
    ResultsWriter,
    columns,
    new_row,
    read_results,
)
from tests.conftest import write_rows


def _row(**fields: object) -> dict:
    base = dict(run_id="r1", model="lstm", variant="fp32", backend="onnxruntime",
                scenario="single_stream", threads=1, batch=1, seq_len=24, status="ok",
                latency_median_ms=0.0412345678, peak_rss_mb=67.5, artifact_bytes=71822,
                max_abs_err=2.2e-8, throttled=False, settings='{"threads": 1}')
    base.update(fields)
    return new_row(**base)


_written = write_rows


def test_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    writer = ResultsWriter(path)
    writer.append(_row())
    writer.append(_row(backend="torch", status="failed", reason="parity: too far",
                       latency_median_ms=None, throttled=None))
    frame = read_results(path)
    assert list(frame.columns) == list(columns())
    assert len(frame) == 2
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["schema_version"] == SCHEMA_VERSION
    assert first["latency_median_ms"] == pytest.approx(0.0412345678)
    assert first["artifact_bytes"] == 71822
    assert first["max_abs_err"] == pytest.approx(2.2e-8)
    assert bool(first["throttled"]) is False
    assert first["settings"] == '{"threads": 1}'
    assert second["reason"] == "parity: too far"
    assert pd.isna(second["latency_median_ms"])  # missing stays empty, never zero
    assert pd.isna(second["throttled"])


def test_rows_are_on_disk_as_soon_as_appended(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    writer = ResultsWriter(path)
    assert len(read_results(path)) == 0  # header written up front
    writer.append(_row())
    assert len(read_results(path)) == 1


def test_new_row_rejects_unknown_columns_and_statuses() -> None:
    with pytest.raises(ValueError, match="not results columns: latency_us"):
        new_row(status="ok", latency_us=3)
    with pytest.raises(ValueError, match="status 'great'"):
        new_row(status="great")


def test_older_file_with_fewer_columns_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    pd.DataFrame([{"schema_version": 1, "model": "lstm", "variant": "fp32",
                   "backend": "torch", "scenario": "single_stream", "threads": 1, "batch": 1,
                   "seq_len": 24, "status": "ok", "latency_median_ms": 0.1}]).to_csv(
        path, index=False)
    frame = read_results(path)
    assert frame.loc[0, "latency_median_ms"] == pytest.approx(0.1)
    assert pd.isna(frame.loc[0, "rmse"])


def test_newer_schema_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.csv"
    ResultsWriter(newer).append(_row())
    newer.write_text(newer.read_text().replace(f"\n{SCHEMA_VERSION},",
                                               f"\n{SCHEMA_VERSION + 1},"))
    with pytest.raises(ValueError, match=f"schema_version {SCHEMA_VERSION + 1} is not readable"):
        read_results(newer)
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a results CSV"):
        read_results(foreign)
    with pytest.raises(ValueError, match="no such file"):
        read_results(tmp_path / "absent.csv")


@pytest.mark.parametrize("version", ["0", "00", "-1", "8.5"])
def test_a_schema_version_below_or_outside_the_range_is_refused(tmp_path: Path,
                                                                version: str) -> None:
    older = tmp_path / "older.csv"
    ResultsWriter(older).append(_row())
    older.write_text(older.read_text().replace(f"\n{SCHEMA_VERSION},", f"\n{version},"))
    with pytest.raises(ValueError, match=f"schema_version {version} is not readable by this "
                                         f"harness \\(reads 1..{SCHEMA_VERSION}"):
        read_results(older)


@pytest.mark.parametrize("text", ["true", "1", "yes", "FALSE"])
def test_a_boolean_is_read_strictly_or_refused(tmp_path: Path, text: str) -> None:
    path = _written(tmp_path / "r.csv", _row(throttled=True), _row(throttled=False),
                    _row(threads=2, throttled=None))
    frame = read_results(path)
    assert frame["throttled"].tolist()[:2] == [True, False] and pd.isna(frame["throttled"][2])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace(",True,", f",{text},"),
                               *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=f"column 'throttled' has a bad value \\('{text}' is "
                                         f"not True or False\\)"):
        read_results(path)


def test_a_second_writer_of_the_same_file_is_refused(tmp_path: Path) -> None:
    """Two runs with one --out: the second is refused before it truncates anything."""
    from edge_rnn_harness.core.results import OutputBusy

    path = tmp_path / "r.csv"
    first = ResultsWriter(path)
    first.append(_row())
    with pytest.raises(OutputBusy, match="being written by another harness process"):
        ResultsWriter(path)
    assert len(read_results(path)) == 1  # the first run's row is intact
    first.close()
    second = ResultsWriter(path)
    assert read_results(path).empty
    second.close()


def test_the_pyperf_json_is_replaced_atomically(tmp_path: Path) -> None:
    """A dump that fails half-way leaves the previous JSON whole, and no temporary file."""
    import pyperf

    from edge_rnn_harness.core.results import dump_suite

    run = pyperf.Run([1e-5, 2e-5], warmups=None, collect_metadata=False,
                     metadata={"name": "a", "unit": "second", "loops": 1})
    path = tmp_path / "r.json"
    dump_suite(pyperf.BenchmarkSuite([pyperf.Benchmark([run])]), path)
    good = path.read_bytes()

    class Broken:
        def dump(self, name: str, replace: bool) -> None:
            Path(name).write_text("{\"half")
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        dump_suite(Broken(), path)
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]


def test_the_schema_version_and_the_columns_every_version_has() -> None:
    """README: schema 5; a file of any version needs these columns to load."""
    from edge_rnn_harness.core.results import REQUIRED_COLUMNS

    assert SCHEMA_VERSION == 8
    assert REQUIRED_COLUMNS == ("schema_version", "model", "variant", "backend", "scenario",
                                "threads", "batch", "seq_len", "status")


def test_a_held_results_file_is_busy_and_a_free_one_is_not(tmp_path: Path) -> None:
    from edge_rnn_harness.core.results import OutputBusy, check_not_busy

    path = tmp_path / "deep" / "er" / "r.csv"  # the writer makes the folders
    check_not_busy(path)  # no file yet: free
    writer = ResultsWriter(path)
    with pytest.raises(OutputBusy, match="is being written by another harness process"):
        check_not_busy(path)
    writer.close()
    check_not_busy(path)  # released


def test_a_cell_reading_na_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _written(path, _row(reason="NA", status="failed", model="NA"))
    row = read_results(path).iloc[0]
    assert (row["reason"], row["model"]) == ("NA", "NA")


@pytest.mark.parametrize("content, message", [
    (None, "not a readable file (Is a directory)"),
    ("", "not a results CSV (No columns to parse from file)"),
    ("\xff\xfe\x00garbage", "not a results CSV"),
])
def test_unreadable_files_say_why_in_one_line(tmp_path: Path, content: str | None,
                                              message: str) -> None:
    path = tmp_path / "r.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError) as error:
        read_results(path)
    assert str(error.value) == f"{path}: {message}" or message == "not a results CSV" and \
        str(error.value).startswith(f"{path}: not a results CSV (")


def test_a_device_or_a_row_cut_short_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="/dev/zero: not a results CSV .not a regular file "
                                         "of at most 256 MiB"):
        read_results(Path("/dev/zero"))
    path = _written(tmp_path / "r.csv", _row(), _row(backend="openvino"))
    path.write_text(path.read_text()[:-40])  # the last row loses its trailing fields
    with pytest.raises(ValueError, match="data row 2 has fewer fields than the header"):
        read_results(path)


def test_a_row_of_one_field_is_short_and_a_blank_line_is_nothing(tmp_path: Path) -> None:
    path = _written(tmp_path / "r.csv", _row())
    path.write_text(path.read_text() + "\n")  # a blank line pandas skips
    assert len(read_results(path)) == 1
    path.write_text(path.read_text() + "2\n")  # one field: a row cut down to its start
    with pytest.raises(ValueError, match="data row 2 has fewer fields than the header"):
        read_results(path)


def test_the_size_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_rnn_harness.core import results

    path = _written(tmp_path / "r.csv", _row())
    size = path.stat().st_size
    monkeypatch.setattr(results, "MAX_RESULTS_BYTES", size)
    assert len(read_results(path)) == 1
    monkeypatch.setattr(results, "MAX_RESULTS_BYTES", size - 1)
    with pytest.raises(ValueError, match="not a regular file of at most 0 MiB"):
        read_results(path)


def test_a_write_that_fails_part_way_leaves_no_half_row(small_disk: object) -> None:
    """On a 4 KiB disk, rows go in until one does not fit: the file then ends with the
    last whole row (the failed write is cut back off) and reads as the rows appended."""
    disk = small_disk(4)  # type: ignore[operator]
    writer = ResultsWriter(disk / "r.csv")
    appended = 0
    with pytest.raises(OSError, match="No space left on device"):
        for index in range(100):
            writer.append(_row(model=f"m{index}", reason="x" * 300))
            appended += 1
    writer.close()
    assert 1 <= appended < 100
    assert len(read_results(disk / "r.csv")) == appended == len(writer.rows)


def test_an_unknown_status_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _written(path, _row())
    path.write_text(path.read_text().replace(",ok,", ",great,"))
    with pytest.raises(ValueError, match="status 'great' is not one of ok, "):
        read_results(path)


def test_true_stays_true(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _written(path, _row(throttled=True), _row(throttled=False, backend="openvino"))
    assert read_results(path)["throttled"].tolist() == [True, False]


def test_a_bad_number_names_its_column(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _written(path, _row())
    path.write_text(path.read_text().replace("0.0412345678", "fast"))
    with pytest.raises(ValueError, match="column 'latency_median_ms' has a bad value"):
        read_results(path)


@pytest.mark.parametrize("value, finite", [(1.5, True), ("2", True), (None, False),
                                           ("abc", False), (float("nan"), False),
                                           (float("inf"), False), (pd.NA, False)])
def test_is_finite_number(value: object, finite: bool) -> None:
    from edge_rnn_harness.core.results import is_finite_number

    assert is_finite_number(value) is finite


def test_show_prints_an_infinite_value_as_inf_never_as_not_measured(tmp_path: Path) -> None:
    path = _written(tmp_path / "r.csv", _row(rmse=float("inf")), _row(threads=2, rmse=None))
    from tests.conftest import run_cli

    shown = run_cli("show", str(path))
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "onnxruntime" in line]
    assert len(lines) == 2 and " inf " in f"{lines[0]} " and " inf " not in f"{lines[1]} "
