"""Statistics, parity and memory readings: values, units and edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rnn_harness.core.parity import Tolerance, compare_outputs
from edge_rnn_harness.measure.memory import peak_rss_mb, read_status_kb, rss_mb
from edge_rnn_harness.measure.stats import latency_summary_ms


def test_latency_summary_in_ms() -> None:
    values_s = [0.001, 0.002, 0.003, 0.004, 0.010]
    summary = latency_summary_ms(values_s)
    assert summary["latency_mean_ms"] == pytest.approx(4.0)
    assert summary["latency_median_ms"] == pytest.approx(3.0)
    assert summary["latency_min_ms"] == pytest.approx(1.0)
    assert summary["latency_p90_ms"] == pytest.approx(np.percentile([1, 2, 3, 4, 10], 90))
    assert summary["latency_stdev_ms"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))
    assert summary["throughput_ips"] == pytest.approx(250.0)
    assert latency_summary_ms(values_s, batch=4)["throughput_ips"] == pytest.approx(1000.0)


def test_latency_summary_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no latency values"):
        latency_summary_ms([])


def test_parity_within_and_beyond_tolerance() -> None:
    ref = {"y": np.array([[1.0], [-2.0]], dtype=np.float32)}
    tol = Tolerance(atol=1e-5, rtol=1e-5)
    close = compare_outputs({"y": ref["y"].astype(np.float64) + 1e-6}, ref, tol)
    assert close.within and close.max_abs_err == pytest.approx(1e-6, rel=1e-2)
    far = compare_outputs({"y": ref["y"] + np.array([[0.0], [0.01]])}, ref, tol)
    assert not far.within
    assert far.max_abs_err == pytest.approx(0.01, rel=1e-4)
    assert far.max_rel_err == pytest.approx(0.005, rel=1e-4)
    assert far.worst_output == "y"


def test_parity_flags_nan_and_missing_outputs() -> None:
    ref = {"y": np.ones((1, 1), dtype=np.float32)}
    tol = Tolerance(atol=1e-5, rtol=1e-5)
    assert not compare_outputs({"y": np.full((1, 1), np.nan)}, ref, tol).within
    with pytest.raises(ValueError, match="output 'y' missing"):
        compare_outputs({"out0": ref["y"]}, ref, tol)
    with pytest.raises(ValueError, match="elements"):
        compare_outputs({"y": np.ones((2, 1))}, ref, tol)


def test_memory_reads_vmhwm_and_vmrss_from_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 999999 kB\nVmHWM:\t  204800 kB\n"
                      "VmRSS:\t  102400 kB\n")
    assert read_status_kb("VmHWM", status) == 204800
    assert peak_rss_mb(status) == pytest.approx(200.0)
    assert rss_mb(status) == pytest.approx(100.0)
    assert read_status_kb("VmSwap", status) is None
    assert rss_mb(tmp_path / "absent") is None
    status.write_text("VmHWM:\t1536 kB\nVmRSS:\t 1280 kB\n")  # not whole MiB
    assert (peak_rss_mb(status), rss_mb(status)) == (1.5, 1.25)


def test_the_peak_reset_says_when_it_cannot(tmp_path: Path) -> None:
    from edge_rnn_harness.measure.memory import RESET_PEAK_RSS, reset_peak_rss

    assert reset_peak_rss(tmp_path / "absent" / "clear_refs") is False
    written = tmp_path / "clear_refs"
    assert reset_peak_rss(written) is True and written.read_text() == RESET_PEAK_RSS == "5"


def test_memory_is_this_process_resident_set_and_follows_an_allocation() -> None:
    """rss_mb and peak_rss_mb are this process's VmRSS and VmHWM (never virtual memory,
    which is far larger), and 100 MiB touched shows as about 100 MiB more resident."""
    import resource

    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text()
                  .splitlines() if ":" in line)
    size_mb = int(status["VmSize"].split()[0]) / 1024
    hwm_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the kernel's peak
    assert 0 < rss_mb() <= peak_rss_mb() < size_mb
    assert peak_rss_mb() == pytest.approx(hwm_mb, abs=2)
    before = rss_mb()
    block = bytearray(100 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert rss_mb() - before == pytest.approx(100, abs=10)
    assert peak_rss_mb() >= rss_mb()
    del block


def test_peak_rss_can_be_reset_after_an_untimed_step() -> None:
    """The accuracy pass is left out of the peak: a 200 MiB transient allocation raises
    VmHWM, the reset brings it back to the current resident set."""
    from edge_rnn_harness.measure.memory import peak_rss_mb, reset_peak_rss, rss_mb

    before = rss_mb()  # not the peak: earlier tests in this process may have raised it
    block = bytearray(200 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    assert peak_rss_mb() >= before + 190
    assert reset_peak_rss()
    assert peak_rss_mb() < rss_mb() + 20
