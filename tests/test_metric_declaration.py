"""A metric added by one declaration (core.metrics) reaches every reader: the results CSV,
the terminal table, compare and the gate, with no other file touched."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_rnn_harness.analysis.compare import compare_runs
from edge_rnn_harness.cli.main import main
from edge_rnn_harness.core.metrics import COLD_START_METRICS, Metric, declared
from edge_rnn_harness.core.results import columns
from edge_rnn_harness.measure.perf_events import EVENTS

#: the test's own metric: the latency tail as a multiple of the median, from the row
TAIL = Metric("latency_tail_ratio", "latency tail (p99 / median)", "ratio",
              derive=lambda row: row["latency_p99_ms"] / row["latency_median_ms"],
              table=("p99/median", ".2f"), gate_option="--max-tail-growth",
              default_threshold=10.0)
#: every built-in gate option off, so the gate judges the declared metric alone
OTHERS_OFF = ["--max-slowdown", "off", "--max-memory-growth", "off", "--max-size-growth",
              "off", "--max-rmse-growth", "off", "--max-energy-growth", "off"]


@pytest.fixture
def tail_metric() -> Iterator[Metric]:
    with declared(TAIL) as metric:
        yield metric
    assert "latency_tail_ratio" not in columns()  # gone again for every other test


def _run(bundle: Path, out: Path) -> int:
    return main(["run", "--bundle", str(bundle), "--backends", "onnxruntime", "--model",
                 "tiny", "--profile", "quick", "--out", str(out)])


def test_a_declared_metric_reaches_csv_table_compare_and_gate(
        tail_metric: Metric, tiny_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = tmp_path / "base.csv", tmp_path / "cand.csv"
    assert _run(tiny_bundle, base) == 0
    table = capsys.readouterr().out
    assert "p99/median" in table  # the terminal table shows it with its header

    with base.open() as handle:
        row = next(csv.DictReader(handle))
    assert list(row)[-1] == "latency_tail_ratio"  # a new column goes last
    ratio = float(row["latency_p99_ms"]) / float(row["latency_median_ms"])
    assert float(row["latency_tail_ratio"]) == pytest.approx(ratio, rel=1e-5)
    assert f"{ratio:.2f}" in table

    assert _run(tiny_bundle, cand) == 0
    capsys.readouterr()
    changes = [change for case in compare_runs(base, cand).cases for change in case.changes
               if change.metric.column == "latency_tail_ratio"]
    assert len(changes) == 1 and changes[0].base == pytest.approx(ratio, rel=1e-5)

    assert main(["compare", str(base), str(cand), "--format", "csv"]) == 0
    assert "latency_tail_ratio" in capsys.readouterr().out

    code = main(["gate", str(base), str(cand), *OTHERS_OFF, "--max-tail-growth", "1000"])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if "latency tail (p99 / median)" in line)
    assert line.split()[-1] == "pass"
    code = main(["gate", str(base), str(cand), *OTHERS_OFF, "--max-tail-growth", "x"])
    assert code == 2  # the option is parsed and checked like every gate option
    assert "--max-tail-growth" in capsys.readouterr().err


#: per-worker metrics a worker records only for some cases: a calibrated variant's window
#: count, the runtime's own latency (OpenVINO only), the cold_start phases (its processes
#: record them) and a paced worker's back-to-back baseline (tests/test_deployed.py)
CONDITIONAL = {"calibration_windows", "runtime_latency_median_ms",
               *(metric.column for metric in COLD_START_METRICS), "back_to_back_median_ms",
               *EVENTS}  # perf events: recorded with --counters perf (tests/test_counters.py)


def test_every_worker_records_each_declared_per_worker_metric(tiny_bundle: Path,
                                                              tmp_path: Path) -> None:
    """The workers' run metadata holds every metric declared with `workers` (the
    aggregator reads them by their column names), and the row holds what it combined."""
    import pyperf

    from edge_rnn_harness.core.metrics import all_metrics
    from edge_rnn_harness.core.results import read_results

    out = tmp_path / "r.csv"
    assert _run(tiny_bundle, out) == 0
    per_worker = {m.column for m in all_metrics() if m.workers} - CONDITIONAL
    runs = pyperf.BenchmarkSuite.load(str(out.with_suffix(".json"))).get_benchmarks()[0]
    recorded = [run.get_metadata() for run in runs.get_runs()]
    assert len(recorded) == 2  # the quick profile's two worker processes
    for metadata in recorded:
        missing = per_worker - set(metadata)
        assert missing <= {"rmse", "mae"}, missing  # accuracy: the first worker only
    assert {"rmse", "mae"} <= set().union(*recorded)
    row = read_results(out).iloc[0]
    for column in per_worker:
        values = [metadata[column] for metadata in recorded if column in metadata]
        expected = next(m for m in all_metrics() if m.column == column).aggregate(values)
        assert row[column] == pytest.approx(expected, rel=1e-6), column


def test_a_metric_is_declared_once(tail_metric: Metric) -> None:
    with pytest.raises(ValueError, match="declared already"), declared(TAIL):
        pass
    with pytest.raises(ValueError, match="workers must be one of"):
        Metric("x_ms", "x", "ms", workers="mean")
