"""`harness run` with power, thermal and CPU frequency options, as a user runs it on a
bundle, against fake device trees (HARNESS_SYSFS_ROOT) and a fake vcgencmd on PATH; the
runtimes and the energy step are real."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_rnn_harness.core.results import read_results
from tests.conftest import popen_harness
from tests.fake_device import PMIC_WATTS, cpufreq_tree, device_env, fake_vcgencmd, ina219
from tests.test_cli import _rows_written, _wait_for

QUICK = ("--backends", "onnxruntime", "--profile", "quick", "--idle-seconds", "0.3",
         "--energy-seconds", "0.6")


def _run(bundle: Path, out: Path, env: dict[str, str], *args: str
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_rnn_harness", "run", "--bundle",
                           str(bundle), *QUICK, "--out", str(out), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


POWER_CELLS = ["power_idle_w", "power_mean_w", "power_samples", "energy_per_inf_mj",
               "energy_net_per_inf_mj", "energy_inferences", "energy_seconds"]


def test_no_sensor_means_meter_none_and_empty_power_cells(tiny_bundle: Path,
                                                         tmp_path: Path) -> None:
    """This machine as it is (an empty device root: no sensor, no thermal zone): power
    meter `none`, empty power cells, device facts filled."""
    empty = tmp_path / "root"
    empty.mkdir()
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(empty), "--power", "auto")
    assert result.returncode == 0, result.stderr
    assert "power meter: none (no power meter here" in result.stderr
    row = read_results(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "ok" and row["power_meter"] == "none"
    assert row[POWER_CELLS].isna().all() and row[["temp_start_c", "throttled"]].isna().all()
    import os
    import platform

    assert row["cores"] == os.cpu_count() and row["kernel"] == platform.release()
    assert row["python"] == platform.python_version() and row["os"].startswith("Linux")
    assert row["cpu"] and row["device"] == platform.node()


def test_constant_hwmon_power_gives_exact_energy(tiny_bundle: Path, tmp_path: Path) -> None:
    """A fake INA219 reading a constant 2.5 W: mean and idle 2.5 W, gross energy per
    inference = 2.5 W x the energy loop's time per inference, net 0; the Pi's board model
    (read in the worker) fills `device`."""
    root = tmp_path / "root"
    ina219(root, 2_500_000)
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text("Raspberry Pi 4 Model B Rev 1.4\x00")
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(root))
    assert result.returncode == 0, result.stderr
    row = read_results(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "ok" and pd_none(row["reason"])
    assert row["power_meter"] == "hwmon:ina219" and "power1" in row["power_covers"]
    assert row["power_mean_w"] == 2.5 and row["power_idle_w"] == 2.5
    seconds_per_inf = row["energy_seconds"] / row["energy_inferences"]
    assert row["energy_per_inf_mj"] == pytest.approx(2.5 * seconds_per_inf * 1000, rel=1e-6)
    assert row["energy_net_per_inf_mj"] == 0
    assert row["energy_seconds"] >= 0.3 and row["power_samples"] >= 5  # >= half of 0.6 s
    assert row["device"] == "Raspberry Pi 4 Model B Rev 1.4"


def flag(value: object) -> bool | None:
    """A boolean cell as True, False or None (empty)."""
    return None if pd_none(value) else bool(value)


def pd_none(value: object) -> bool:
    """True for an empty cell."""
    import pandas as pd

    return bool(pd.isna(value))


@pytest.mark.slow
def test_pi5_meter_and_throttling_make_the_row_invalid(tiny_bundle: Path,
                                                       tmp_path: Path) -> None:
    """A fake Pi 5: `auto` picks the PMIC; get_throttled reads 0x0 before the case and
    0x50005 after it, so the row is `invalid` with the flags decoded, and the run exits 1."""
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    root.mkdir()
    fake_vcgencmd(bin_dir, ["0x0", "0x50005"], temp_c=45.0)
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(root, bin_dir))
    assert result.returncode == 1, result.stderr
    assert "power meter: pi5" in result.stderr
    row = read_results(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "invalid" and flag(row["throttled"]) is True
    assert row["reason"] == ("throttled during the case: get_throttled=0x50005 (under-voltage, "
                             "throttled, under-voltage occurred, throttling occurred)")
    assert row["power_meter"] == "pi5:pmic_read_adc"
    assert row["power_mean_w"] == pytest.approx(PMIC_WATTS)
    assert row["temp_start_c"] == row["temp_end_c"] == 45.0
    assert row["latency_median_ms"] > 0


@pytest.mark.slow
def test_meter_failing_mid_run_keeps_the_latency_row(tiny_bundle: Path,
                                                     tmp_path: Path) -> None:
    """The PMIC stops answering during the energy step: the row stays `ok` with its
    latency, the power cells are empty and the reason names the meter's failure."""
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    root.mkdir()
    fake_vcgencmd(bin_dir, ["0x0"], pmic_fail_after=4)  # 1 call to choose, then 3 samples
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(root, bin_dir))
    assert result.returncode == 0, result.stderr
    row = read_results(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "ok" and row["latency_median_ms"] > 0
    assert row["power_meter"] == "pi5:pmic_read_adc" and row[POWER_CELLS].isna().all()
    assert row["reason"].startswith("power: pi5:pmic_read_adc failed after")
    assert "exited with 255: error: PMIC not responding" in row["reason"]
    assert flag(row["throttled"]) is False


def test_cpu_freq_sweep_pins_each_value_and_restores(tiny_bundle: Path,
                                                     tmp_path: Path) -> None:
    """--cpu-freq 600000,1200000: a row per frequency, each measured with the userspace
    governor and that frequency in force (the fake tree's scaling_cur_freq follows
    scaling_setspeed), the original governor and limits back afterwards."""
    root = tmp_path / "root"
    policies = cpufreq_tree(root)
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(root), "--power", "none",
                  "--cpu-freq", "600000,1200000")
    assert result.returncode == 0, result.stderr
    frame = read_results(tmp_path / "r.csv")
    assert list(frame["cpu_freq_khz"]) == [600000, 1200000]
    assert list(frame["cpu_freq_start_khz"]) == [600000, 1200000]
    assert list(frame["cpu_freq_end_khz"]) == [600000, 1200000]
    assert set(frame["governor"]) == {"userspace"} and set(frame["status"]) == {"ok"}
    assert "f600MHz" in result.stderr and "f1200MHz" in result.stderr
    for policy in ("policy0", "policy1"):
        assert (policies / policy / "scaling_governor").read_text().strip() == "ondemand"
        assert (policies / policy / "scaling_max_freq").read_text().strip() == "1800000"


def test_ctrl_c_during_a_sweep_restores_the_cpu(tiny_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    policies = cpufreq_tree(root)
    out = tmp_path / "r.csv"
    proc = popen_harness("run", "--bundle", str(tiny_bundle), *QUICK, "--power", "none",
                         "--out", str(out), "--cpu-freq", "600000,1200000,1800000",
                         env=device_env(root))
    _wait_for(lambda: _rows_written(out) == 1, "the first row")
    assert (policies / "policy0/scaling_governor").read_text().strip() == "userspace"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    for policy in ("policy0", "policy1"):
        assert (policies / policy / "scaling_governor").read_text().strip() == "ondemand"
        assert (policies / policy / "scaling_min_freq").read_text().strip() == "600000"


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (("--power", "rapl"), "harness run: rapl: no RAPL package domain under /sys/class/powercap"),
    (("--power", "volts"), "harness run: --power 'volts' is not one of"),
    (("--power", "csv:/nonexistent.csv"), "harness run: csv: no such log file"),
    (("--max-start-temp", "60"), "harness run: --max-start-temp needs a temperature sensor"),
    (("--cpu-freq", "600000"), "harness run: no cpufreq under /sys/devices/system/cpu"),
    (("--cpu-freq", "6e5"), "'6e5' is not a frequency in kHz"),
    (("--cooldown", "-1"), "must be a number of seconds from 0 to 3600"),
    (("--idle-seconds", "99999999999"), "must be a number of seconds from 0 to 3600"),
    (("--max-start-temp", "nan"), "is not a CPU temperature"),
])
def test_device_options_that_cannot_work_are_one_line_and_exit_2(
        tiny_bundle: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    empty = tmp_path / "root"
    empty.mkdir()
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(empty), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_unwritable_cpufreq_is_refused_before_anything_runs(tiny_bundle: Path,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "root"
    policy = cpufreq_tree(root) / "policy0"
    (policy / "scaling_setspeed").unlink()
    (policy / "scaling_setspeed").mkdir()
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(root), "--cpu-freq", "600000")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("policy0/scaling_setspeed (Is a directory); run as "
                                          "root to pin the CPU frequency or governor")
    assert not (tmp_path / "r.csv").exists()
    assert (policy / "scaling_governor").read_text().strip() == "ondemand"


@pytest.mark.parametrize("watts", ["nan"])  # negative and infinite: test_power_thermal.py
def test_a_power_log_of_no_power_keeps_the_latency_row_and_empties_the_energy(
        tiny_bundle: Path, tmp_path: Path, watts: str) -> None:
    """An external meter's log whose readings are negative, infinite or NaN: the row stays
    `ok` with its latency, every power cell is empty, and the reason starts `power:`."""
    import time

    log = tmp_path / "usb.csv"
    start = time.time() - 5
    log.write_text("timestamp,power_w\n" + "".join(
        f"{start + i * 0.05:.3f},{watts}\n" for i in range(12_000)))  # 10 minutes of readings
    empty = tmp_path / "root"
    empty.mkdir()
    result = _run(tiny_bundle, tmp_path / "r.csv", device_env(empty), "--power",
                  f"csv:{log}")
    assert result.returncode == 0, result.stderr
    row = read_results(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "ok" and row["latency_median_ms"] > 0
    assert row["power_meter"] == "csv:usb.csv" and row[POWER_CELLS].isna().all()
    assert row["reason"].startswith("power: csv:usb.csv: ")
    assert f"power_w {float(watts)!r} W is not a number from 0 to 1000 W" in row["reason"]
