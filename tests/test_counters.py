"""Counted figures: valgrind client requests from Python, instructions per inference under
callgrind (only the timed calls counted), perf events in the workers, and the gate on
counts judged by their own spread."""

from __future__ import annotations

import mmap
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from edge_rnn_harness.analysis.compare import MIN_COUNT_SPREAD, count_change
from edge_rnn_harness.core.metrics import metric_by_column
from edge_rnn_harness.core.plan import Case
from edge_rnn_harness.core.profiles import get_profile
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.callgrind import (
    L1_MISS_CYCLES,
    LL_MISS_CYCLES,
    count_instructions,
    instruction_fields,
    read_dump,
)
from edge_rnn_harness.measure.client_request import ClientRequests
from edge_rnn_harness.measure.perf_events import EVENTS, Counters, per_inference, pmu_exposed
from edge_rnn_harness.measure.runner import RunConfig, case_job
from tests.conftest import ROOT, run_cli

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed (.ci/run installs it)")
_HW = [column for column in EVENTS if column.startswith("hw_")]
_SW = [column for column in EVENTS if not column.startswith("hw_")]
_LATENCY_OFF = ("--max-slowdown", "off", "--max-memory-growth", "off", "--max-size-growth",
                "off", "--max-rmse-growth", "off", "--max-energy-growth", "off")


def test_a_client_request_is_a_no_op_on_real_hardware() -> None:
    requests = ClientRequests()
    assert requests.running_on_valgrind() == 0
    assert requests.request(0x1234, 1, 2, default=77) == 77  # the default comes back


@needs_valgrind
def test_a_client_request_reaches_valgrind(tmp_path: Path) -> None:
    """Under valgrind the same bytes are a request: RUNNING_ON_VALGRIND answers 1, and a
    toggled region is the only thing callgrind counts."""
    script = ("from edge_rnn_harness.measure.client_request import *\n"
              "r = ClientRequests(); print(r.running_on_valgrind())\n"
              "r.request(START_INSTRUMENTATION); r.request(TOGGLE_COLLECT)\n"
              "sum(range(20000))\n"
              "r.request(TOGGLE_COLLECT); r.request(DUMP_STATS)\n")
    done = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                           "--collect-atstart=no", f"--callgrind-out-file={tmp_path}/cg.%p",
                           sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"
    dumps = sorted(tmp_path.glob("cg.*.1"))
    assert len(dumps) == 1
    counted = read_dump(dumps[0])["Ir"]
    assert 100_000 < counted < 20_000_000  # the loop, not the interpreter's start-up
    final = next(p for p in tmp_path.glob("cg.*") if p.suffix != ".1")
    assert read_dump(final)["Ir"] == 0  # nothing after the region


def test_a_dump_is_read_and_turned_into_per_inference_figures(tmp_path: Path) -> None:
    dump = tmp_path / "cg.1.1"
    dump.write_text("version: 1\ncreator: callgrind-3.19.0\nevents: Ir I1mr ILmr Dr D1mr "
                    "DLmr Dw D1mw DLmw\nfn=(1) f\n0 1 2 3\nsummary: 1000 10 1 400 20 2 100 "
                    "5 0\ntotals: 1000 10 1 400 20 2 100 5 0\n")
    counts = read_dump(dump)
    assert counts == {"Ir": 1000, "I1mr": 10, "ILmr": 1, "Dr": 400, "D1mr": 20, "DLmr": 2,
                      "Dw": 100, "D1mw": 5, "DLmw": 0}
    other = {**counts, "Ir": 1010}
    fields = instruction_fields([counts, other, counts], calls=10)
    assert fields["instructions_per_inf"] == 100.0  # the blocks' median
    assert fields["instructions_spread_pct"] == pytest.approx(1.0)
    assert fields["l1_misses_per_inf"] == 3.5 and fields["ll_misses_per_inf"] == 0.3
    assert fields["est_cycles_per_inf"] == pytest.approx(
        100 + L1_MISS_CYCLES * 3.5 + LL_MISS_CYCLES * 0.3)
    (tmp_path / "bad.1").write_text("no events here\n")
    with pytest.raises(ValueError, match="not a callgrind dump"):
        read_dump(tmp_path / "bad.1")


@needs_valgrind
@pytest.mark.slow
def test_only_the_calls_are_counted_and_the_count_repeats(tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    """Two children (100 and 200 calls per block): the same instructions per inference
    within 0.1%, so start-up is not in the figure and the count repeats."""
    case = Case(model="tiny", variant="fp32", backend="onnxruntime", threads=1, seq_len=24)
    config = RunConfig(profile=get_profile("quick"), out=tmp_path / "r.csv",
                       bundle_root=tiny_bundle)
    _, job = case_job(case, config)
    assert job is not None
    job.save(tmp_path / "job.json")
    figures = []
    for calls in (100, 200):
        from edge_rnn_harness.measure import callgrind

        original = callgrind.DEFAULT_CALLS
        callgrind.DEFAULT_CALLS = calls
        try:
            counted = count_instructions(tmp_path / "job.json", tmp_path / f"cg{calls}", 600)
        finally:
            callgrind.DEFAULT_CALLS = original
        assert not counted.failure_output, counted.failure_output[-2000:]
        figures.append(counted.fields["instructions_per_inf"])
        assert counted.fields["instructions_spread_pct"] < 0.5
        assert counted.fields["est_cycles_per_inf"] > figures[-1]
    assert abs(figures[1] / figures[0] - 1) < 0.001, figures


def test_software_counters_count_and_missing_ones_say_why() -> None:
    """The same question the product asks: with a PMU the hardware columns count, without
    one they are missing with the reason (this VM: no PMU, the second branch)."""
    counters = Counters.open()
    try:
        assert set(_SW) <= set(counters.fds)
        counters.enable()
        pages = mmap.mmap(-1, 8 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for offset in range(0, len(pages), 4096):  # touching fresh memory faults it in
            pages[offset] = 1
        pages.close()
        time.sleep(0.01)  # blocks: a context switch
        counters.disable()
        counts = per_inference(counters.read_and_reset(), calls=1)
        assert counts["page_faults_per_inf"] >= 100  # 2,048 pages, folios of up to 64 KiB
        assert counts["context_switches_per_inf"] >= 1
        assert counts["task_clock_us_per_inf"] > 0
        again = per_inference(counters.read_and_reset(), calls=1)
        assert again["page_faults_per_inf"] == 0  # reset, and off outside enable/disable
        if pmu_exposed():
            print("branch: a PMU is exposed; hardware counters counted")
            assert set(_HW) <= set(counters.fds)
        else:
            print("branch: no PMU exposed; hardware counters missing with the reason")
            assert {counters.missing[c] for c in _HW} == {"no hardware PMU exposed"}
    finally:
        counters.close()


def test_counts_are_judged_by_their_spread_not_a_minimum_effect() -> None:
    metric = metric_by_column("instructions_per_inf")
    assert metric is not None and metric.spread == "instructions_spread_pct"
    same = count_change(metric, 361_552.0, 361_700.0, [0.02, 0.03])
    assert not same.significant and same.ci_high < 1.01  # within 0.1%: a pass at 1%
    grown = count_change(metric, 361_552.0, 361_552.0 * 1.02, [0.02, 0.03])
    assert grown.significant and grown.ci_low > 1.01  # +2%: a regression at 1%
    noisy = count_change(metric, 100.0, 101.5, [2.0, None])
    assert not noisy.significant and noisy.ci_low < 1 < noisy.ci_high  # within its spread
    assert count_change(metric, 100.0, 100.05, [None, None]).ci_high == pytest.approx(
        1.0005 * (1 + MIN_COUNT_SPREAD))


@pytest.fixture(scope="module")
def counted_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """`harness run --bundle B --backends all --counters valgrind,perf --profile quick`
    twice at once (the default model, lstm; valgrind uses one core each), and one run of
    lstm-h65 on onnxruntime."""
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("counted")
    exported = run_cli("export", "--backends", "all", "--out", str(tmp / "bundle"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    outs = [tmp / "a.csv", tmp / "b.csv"]
    runs = [subprocess.Popen([sys.executable, "-m", "edge_rnn_harness", "run", "--bundle",
                              str(tmp / "bundle"), "--backends", "all", "--profile", "quick",
                              "--counters", "valgrind,perf", "--out", str(out)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for out in outs]
    for proc in runs:
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err[-3000:]
    wider = tmp / "wider.csv"
    result = run_cli("run", "--model", "lstm-h65", "--backends", "onnxruntime", "--profile",
                     "quick", "--counters", "valgrind", "--out", str(wider),
                     "--bundle-dir", str(tmp / "bundle-h65"), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return outs[0], outs[1], wider


@pytest.mark.slow
def test_every_backend_gets_a_count_or_a_reason_and_it_repeats(counted_runs: tuple) -> None:
    first, second, _ = counted_runs
    rows = {r["backend"]: r for r in read_results(first).to_dict("records")}
    again = {r["backend"]: r for r in read_results(second).to_dict("records")}
    assert set(rows) == {"torch", "onnxruntime", "tflite", "openvino", "ncnn"}
    for backend, row in rows.items():
        assert row["status"] == "ok", row["reason"]
        count = row["instructions_per_inf"]
        note = row["counters_note"] or ""
        if pd.isna(count):
            assert "valgrind: unsupported: " in note, (backend, note)
            continue
        assert count > 1000 and row["est_cycles_per_inf"] > count
        assert abs(again[backend]["instructions_per_inf"] / count - 1) < 0.001, backend
        for column in _SW:
            assert not pd.isna(row[column]) and row[column] >= 0, (backend, column)
        assert row["task_clock_us_per_inf"] > 0
        if not pmu_exposed():
            assert all(pd.isna(row[c]) for c in _HW)  # empty, never zero
            assert "no hardware PMU exposed" in note


@pytest.mark.slow
def test_the_gate_judges_instructions(counted_runs: tuple, tmp_path: Path) -> None:
    first, second, wider = counted_runs
    same = run_cli("gate", str(first), str(second), *_LATENCY_OFF)
    assert same.returncode == 0, same.stdout
    lstm = first.parent / "lstm.csv"  # the first run's onnxruntime row alone
    frame = read_results(first)
    frame[frame["backend"] == "onnxruntime"].to_csv(lstm, index=False)
    shutil.copy(first.with_suffix(".json"), lstm.with_suffix(".json"))
    grown = run_cli("gate", str(lstm), str(wider), "--rename-model", "lstm-h65=lstm",
                    *_LATENCY_OFF)
    assert grown.returncode == 1, grown.stdout
    assert "instructions per inference (callgrind) +" in grown.stdout
    assert "over the 1% limit" in grown.stdout


def test_counters_option_is_checked_in_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--counters", "papi", "--out", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "choose from valgrind, perf" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@needs_valgrind
@pytest.mark.slow
def test_ab_counts_both_sides_and_gates_the_count(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab.csv"
    result = run_cli("ab", "--bundle", str(tiny_bundle), "--backends", "onnxruntime",
                     "--profile", "quick", "--counters", "valgrind", "--out", str(out),
                     *_LATENCY_OFF)
    assert result.returncode == 0, result.stdout + result.stderr
    base, cand = (read_results(tmp_path / f"ab-{side}.csv").iloc[0] for side in ("base", "cand"))
    assert base["instructions_per_inf"] > 0
    assert abs(cand["instructions_per_inf"] / base["instructions_per_inf"] - 1) < 0.001
    assert "instructions per inference (callgrind)" in result.stdout
