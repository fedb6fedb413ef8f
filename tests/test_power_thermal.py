"""Power meters, thermal state, device facts and CPU pinning, read from fake sysfs trees
and a fake vcgencmd by the real parsing code (this machine has no power sensor, thermal
zone or cpufreq)."""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_rnn_harness.board.cpufreq import CpuPinning, PinningError
from edge_rnn_harness.board.devicefs import SYSFS_ROOT_ENV
from edge_rnn_harness.board.environment import cpu_name, device_name, environment
from edge_rnn_harness.board.power import (
    MeterUnavailable,
    open_meter,
    parse_power_spec,
    resolve_power,
)
from edge_rnn_harness.board.power.base import PowerWindow, SampledMeter
from edge_rnn_harness.board.power.csvlog import CsvLogMeter, window_mean_w
from edge_rnn_harness.board.power.pi5 import rail_watts
from edge_rnn_harness.board.thermal import (
    ThermalState,
    decode_throttled,
    temperature_c,
    throttle_reason,
)
from edge_rnn_harness.measure.energy import EnergyResult
from tests.fake_device import (
    PMIC_OUTPUT,
    PMIC_WATTS,
    cpufreq_tree,
    fake_vcgencmd,
    ina219,
    write_tree,
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty device root every reading goes through, and no vcgencmd on PATH."""
    device = tmp_path / "device"
    device.mkdir()
    monkeypatch.setenv(SYSFS_ROOT_ENV, str(device))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return device


def _rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> None:
    for zone, (name, energy_uj, range_uj) in zones.items():
        write_tree(root / "sys/class/powercap" / zone, {
            "name": name, "energy_uj": energy_uj, "max_energy_range_uj": range_uj})


def test_rapl_adds_back_the_counter_wrap(root: Path) -> None:
    _rapl(root, {"intel-rapl:0": ("package-0", 900_000, 1_000_000),
                 "intel-rapl:0:0": ("core", 5, 1_000_000),  # a part of package-0: not added
                 "intel-rapl:1": ("package-1", 10, 1_000_000)})
    meter, _ = open_meter("rapl")
    counter = root / "sys/class/powercap/intel-rapl:0/energy_uj"
    counter.write_text("100000\n")  # wrapped: 900000 -> 1000000 = 0 -> 100000
    assert meter.read() == pytest.approx(0.2)
    counter.write_text("600000\n")
    (root / "sys/class/powercap/intel-rapl:1/energy_uj").write_text("50010\n")
    assert meter.read() == pytest.approx(0.75)
    assert meter.name == "rapl" and "package-0, package-1" in meter.covers


def test_rapl_absent_or_named_wrongly_is_unavailable(root: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no RAPL package domain"):
        open_meter("rapl")
    _rapl(root, {"intel-rapl:0": ("psys", 1, 10)})
    with pytest.raises(MeterUnavailable, match="no RAPL package domain"):
        open_meter("rapl")


def test_ina219_power_input_is_microwatts(root: Path) -> None:
    folder = ina219(root, 2_500_000)
    write_tree(root, {"sys/class/hwmon/hwmon1/name": "coretemp",
                      "sys/class/hwmon/hwmon1/temp1_input": 40000})
    for spec in ("hwmon", "hwmon:ina219", f"hwmon:/{folder.relative_to(root)}"):
        meter, _ = open_meter(spec)
        assert meter.read() == 2.5 and meter.name == "hwmon:ina219", spec
    with pytest.raises(MeterUnavailable, match="coretemp"):
        open_meter("hwmon:coretemp")


def test_ina3221_pairs_volts_and_amps(root: Path) -> None:
    """No power files: P = V x I per channel (mV x mA), summed over the channels."""
    write_tree(root / "sys/class/hwmon/hwmon2", {
        "name": "ina3221", "in1_input": 5000, "curr1_input": 400, "in2_input": 3300,
        "curr2_input": 100, "in3_input": 1800, "in4_input": 12})  # in3/in4: no current
    meter, _ = open_meter("hwmon:ina3221")
    assert meter.read() == pytest.approx(5.0 * 0.4 + 3.3 * 0.1)


def test_jetson_counts_the_input_rail_only(root: Path) -> None:
    """A Jetson's INA3221 reports VDD_IN and rails inside it: adding them would count the
    same power twice, so only VDD_IN counts."""
    write_tree(root / "sys/class/hwmon/hwmon3", {
        "name": "ina3221", "in1_label": "VDD_IN", "in1_input": 5000, "curr1_input": 1000,
        "in2_label": "VDD_CPU_GPU_CV", "in2_input": 5000, "curr2_input": 300,
        "in3_label": "VDD_SOC", "in3_input": 5000, "curr3_input": 200})
    meter, _ = open_meter("jetson")
    assert meter.read() == pytest.approx(5.0) and "VDD_IN" in meter.covers
    assert meter.name == "jetson:hwmon:ina3221"


def test_jetson_iio_layout(root: Path) -> None:
    iio = "sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    write_tree(root / iio, {"rail_name_0": "POM_5V_IN", "in_power0_input": 4200,
                            "rail_name_1": "POM_5V_GPU", "in_power1_input": 900})
    meter, _ = open_meter("jetson")
    assert meter.read() == pytest.approx(4.2) and meter.name == "jetson:ina3221x-iio"


def test_pi5_pmic_rails_are_paired_by_name(root: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rails = rail_watts(PMIC_OUTPUT.read_text())
    assert len(rails) == 12 and "EXT5V" not in rails and "BATT" not in rails
    assert rails["VDD_CORE"] == pytest.approx(0.72 * 0.62431)
    fake_vcgencmd(tmp_path / "bin", ["0x0"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    meter, _ = open_meter("pi5")
    assert meter.read() == pytest.approx(PMIC_WATTS)
    assert resolve_power("auto") == ("pi5", "")


def test_auto_without_any_meter_is_none_with_the_reasons(root: Path) -> None:
    spec, note = resolve_power("auto")
    assert spec == "none"
    for meter in ("pi5", "jetson", "hwmon", "rapl"):
        assert f"{meter}:" in note
    assert open_meter("none") == (None, "--power none")


@pytest.mark.parametrize("spec", ["watts", "hwmon:", "csv", "rapl:x", "auto:1", ""])
def test_bad_power_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="is not one of"):
        parse_power_spec(spec)


def test_sampled_meter_gives_the_mean_and_sample_count(root: Path) -> None:
    ina219(root, 2_500_000)
    meter, _ = open_meter("hwmon")
    with meter.measure() as window:
        time.sleep(0.3)
    assert window.mean_w == 2.5 and window.error is None
    assert window.samples >= 3 and window.seconds >= 0.3


def test_meter_that_vanishes_mid_run_gives_no_figure(root: Path) -> None:
    folder = ina219(root, 2_500_000)
    meter, _ = open_meter("hwmon")
    with meter.measure() as window:
        time.sleep(0.1)
        (folder / "power1_input").unlink()
        time.sleep(0.1)
    assert window.mean_w is None and "vanished" in window.error
    fields = EnergyResult(meter.name, meter.covers, 2.5, window.mean_w, window.samples,
                          0.2, 100, window.error).row_fields()
    assert fields["reason"].startswith("power: hwmon:ina219 failed after")
    assert "power_mean_w" not in fields and "energy_per_inf_mj" not in fields


def test_energy_per_inference_gross_and_net() -> None:
    fields = EnergyResult("hwmon:x", "rails", idle_w=1.25, busy_w=3.5, samples=40,
                          loop_s=4.0, inferences=1000, error=None).row_fields()
    assert fields["energy_per_inf_mj"] == pytest.approx(3.5 * 4.0 / 1000 * 1000)  # 14 mJ
    assert fields["energy_net_per_inf_mj"] == pytest.approx(2.25 * 4.0)
    assert fields["power_idle_w"] == 1.25 and fields["power_samples"] == 40


def test_csv_log_is_aligned_to_the_interval(tmp_path: Path) -> None:
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,voltage_v,current_a\n"
                   "1000.0,5.0,1.0\n1001.0,5.0,0.5\n1002.0,5.0,0.7\n"
                   "1970-01-01T00:16:43+00:00,5.0,0.9\n1004.0,5.0,2.0\n")
    assert window_mean_w(log, 1000.5, 1003.0) == (pytest.approx(5.0 * 0.7), 3)
    with pytest.raises(ValueError, match="no row between"):
        window_mean_w(log, 2000, 2001)
    log.write_text("time,watts\n1,2\n")
    with pytest.raises(ValueError, match="needs a timestamp column"):
        window_mean_w(log, 0, 2)
    log.write_text("timestamp,power_w\n2026-11-29 10:00:00,2\n")
    with pytest.raises(ValueError, match="line 2: timestamp .* has no time zone"):
        window_mean_w(log, 0, 2e9)
    with pytest.raises(MeterUnavailable, match="no such log"):
        CsvLogMeter(tmp_path / "absent.csv")


def test_csv_meter_reads_a_log_written_during_the_block(tmp_path: Path) -> None:
    log = tmp_path / "usb.csv"
    log.write_text("timestamp,power_w\n")
    meter, _ = open_meter(f"csv:{log}")
    with meter.measure() as window, log.open("a") as handle:
        for watts in (3.0, 4.0):
            time.sleep(0.05)
            handle.write(f"{time.time()},{watts}\n")
            handle.flush()
    assert window.mean_w == 3.5 and window.samples == 2 and meter.name == "csv:usb.csv"


def test_get_throttled_bits_are_decoded() -> None:
    assert decode_throttled(0x50005) == ["under-voltage", "throttled",
                                         "under-voltage occurred", "throttling occurred"]
    assert decode_throttled(0) == []


def _state(bits: int | None = None, count: int | None = None) -> ThermalState:
    return ThermalState(temp_c=50.0, throttled_bits=bits, throttle_count=count,
                        freq_khz=None)


def test_throttle_reason_between_two_readings() -> None:
    reason = throttle_reason(_state(0x0), _state(0x50005))
    assert reason == ("get_throttled=0x50005 (under-voltage, throttled, under-voltage "
                      "occurred, throttling occurred)")
    # sticky flags already set before the case, nothing true now: no new event is visible
    assert throttle_reason(_state(0x50000), _state(0x50000)) is None
    assert "throttled" in throttle_reason(_state(0x50000), _state(0x50004))
    assert throttle_reason(_state(count=3), _state(count=5)) == \
        "CPU thermal throttle count rose by 2"
    assert throttle_reason(_state(), _state()) is None


def test_temperature_from_zones_or_vcgencmd(root: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert temperature_c() is None
    fake_vcgencmd(tmp_path / "bin", ["0x0"], temp_c=61.5)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert temperature_c() == 61.5
    write_tree(root, {"sys/class/thermal/thermal_zone0/temp": 47200,
                      "sys/class/thermal/thermal_zone1/temp": 52800})
    assert temperature_c() == 52.8


def test_x86_throttle_counters_are_summed(root: Path) -> None:
    write_tree(root, {"sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count": 2,
                      "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count": 1,
                      "sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count": 4})
    assert ThermalState.read().throttle_count == 7


def test_device_facts_of_a_fake_pi(root: Path) -> None:
    write_tree(root, {"proc/device-tree/model": "Raspberry Pi 5 Model B Rev 1.0\x00",
                      "proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 108.00\n"
                                      "Model\t\t: Raspberry Pi 5 Model B Rev 1.0"})
    cpufreq_tree(root)
    assert device_name() == cpu_name() == "Raspberry Pi 5 Model B Rev 1.0"
    facts = environment()
    assert facts["governor"] == "ondemand"
    assert (facts["cpu_freq_min_khz"], facts["cpu_freq_max_khz"]) == (600000, 1800000)


def _policy(root: Path, name: str, cpu: int = 0) -> str:
    return (root / f"sys/devices/system/cpu/cpufreq/policy{cpu}/{name}").read_text().strip()


def test_pinning_writes_setspeed_and_restores(root: Path) -> None:
    cpufreq_tree(root)
    with CpuPinning([600000, 1200000], None) as pinning:
        for khz in (600000, 1200000):
            pinning.apply(khz)
            for cpu in (0, 1):
                assert _policy(root, "scaling_governor", cpu) == "userspace"
                assert _policy(root, "scaling_setspeed", cpu) == str(khz)
                assert _policy(root, "scaling_cur_freq", cpu) == str(khz)
    assert _policy(root, "scaling_governor") == "ondemand"
    assert (_policy(root, "scaling_min_freq"), _policy(root, "scaling_max_freq")) == \
        ("600000", "1800000")


def test_pinning_without_userspace_sets_min_and_max(root: Path) -> None:
    cpufreq_tree(root, governors="ondemand performance")
    with CpuPinning([1200000], "performance") as pinning:
        pinning.apply(1200000)
        assert _policy(root, "scaling_governor") == "performance"
        assert (_policy(root, "scaling_min_freq"), _policy(root, "scaling_max_freq")) == \
            ("1200000", "1200000")
    assert _policy(root, "scaling_governor") == "ondemand"
    assert _policy(root, "scaling_max_freq") == "1800000"
    assert _policy(root, "scaling_min_freq") == "600000"


def test_pinning_restores_after_an_exception(root: Path) -> None:
    cpufreq_tree(root)
    with pytest.raises(KeyboardInterrupt), CpuPinning([600000], None) as pinning:
        pinning.apply(600000)
        raise KeyboardInterrupt
    assert _policy(root, "scaling_governor") == "ondemand"


@pytest.mark.parametrize(("freqs", "governor", "message"), [
    ([700000], None, "not one of .*frequencies"),
    ([], "schedutil", "--governor schedutil is not available"),
])
def test_pinning_refuses_what_the_cpu_cannot_do(root: Path, freqs: list[int],
                                               governor: str | None, message: str) -> None:
    cpufreq_tree(root)
    with pytest.raises(PinningError, match=message):
        CpuPinning(freqs, governor)


def test_pinning_names_the_file_it_cannot_write(root: Path) -> None:
    folder = cpufreq_tree(root) / "policy1"
    (folder / "scaling_setspeed").unlink()
    (folder / "scaling_setspeed").mkdir()  # cannot be opened for writing, even by root
    with pytest.raises(PinningError, match=r"cannot write .*policy1/scaling_setspeed"):
        CpuPinning([600000], None)


def test_pinning_needs_cpufreq(root: Path) -> None:
    with pytest.raises(PinningError, match="no cpufreq"):
        CpuPinning([600000], None)


class _Stages:
    """A Reporter that records the stages it is told about."""

    def __init__(self) -> None:
        self.stages: list[str] = []

    def case_started(self, index: int, case: object, stage: str) -> None:
        self.stages.append(stage)


def _config(tmp_path: Path, **device: object) -> object:
    from edge_rnn_harness.core.profiles import get_profile
    from edge_rnn_harness.measure.runner import RunConfig

    return RunConfig(profile=get_profile("quick"), out=tmp_path / "r.csv",
                     bundle_root=tmp_path, **device)


def test_max_start_temp_waits_then_skips_a_hot_device(root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_rnn_harness.core.plan import Case
    from edge_rnn_harness.measure import runner

    case = Case(model="tiny", variant="fp32", backend="onnxruntime", threads=1, seq_len=24)
    zone = write_tree(root, {"sys/class/thermal/thermal_zone0/temp": 50000})
    zone_file = zone / "sys/class/thermal/thermal_zone0/temp"
    reporter = _Stages()
    assert runner._wait_to_start(0, case, _config(tmp_path, max_start_temp_c=60.0),
                                 reporter) == ""
    assert reporter.stages == ["cool down"]
    zone_file.write_text("80000\n")
    monkeypatch.setattr(runner, "MAX_COOL_WAIT_S", 0.3)
    monkeypatch.setattr(runner, "COOL_POLL_S", 0.05)
    started = time.monotonic()
    reason = runner._wait_to_start(0, case, _config(tmp_path, max_start_temp_c=60.0,
                                                    cooldown_s=0.2), reporter)
    assert reason == "still 80.0 C after waiting 0.3 s for --max-start-temp 60 C"
    assert time.monotonic() - started >= 0.5  # the cool-down, then the wait
    assert runner._wait_to_start(0, case, _config(tmp_path), reporter) == ""
    assert reporter.stages == ["cool down", "cool down"]  # nothing asked: no stage


def test_emulation_is_recognised_from_the_kernels_architecture(root: Path) -> None:
    """Under QEMU user mode, uname says the guest's machine while the kernel runs another:
    the device is named as emulated, whatever the board model says."""
    import platform

    from edge_rnn_harness.board.environment import emulated_device

    write_tree(root, {"proc/sys/kernel/arch": platform.machine()})
    assert emulated_device() is None and environment()["device"] == platform.node()
    write_tree(root, {"proc/sys/kernel/arch": "riscv64"})
    assert emulated_device() == f"qemu-{platform.machine()} (emulated)"
    assert environment()["device"] == emulated_device()


def test_the_loop_gives_back_the_time_the_step_took_to_start() -> None:
    from edge_rnn_harness.measure.energy import loop_seconds

    now = time.monotonic()
    assert loop_seconds(4.0, None) == 4.0
    assert loop_seconds(4.0, now + 3.5) == pytest.approx(3.5, abs=0.05)
    assert loop_seconds(4.0, now + 1.0) == 2.0  # never below half
    assert loop_seconds(4.0, now + 10.0) == 4.0  # never longer than asked


def test_auto_leaves_a_gpu_power_sensor_alone(root: Path) -> None:
    """A GPU's hwmon power reading measures the GPU, not the board: `hwmon` and `auto` do
    not take it; naming it does."""
    write_tree(root / "sys/class/hwmon/hwmon0", {"name": "amdgpu", "power1_input": 15_000_000})
    assert resolve_power("auto")[0] == "none"
    with pytest.raises(MeterUnavailable, match="no board power monitor"):
        open_meter("hwmon")
    meter, _ = open_meter("hwmon:amdgpu")
    assert meter.read() == 15.0


@pytest.mark.parametrize(("cells", "said"), [
    ("5.0,-1.0", "voltage_v x current_a -5.0 W is not a number from 0 to 1000 W"),
    ("inf,1.0", "voltage_v x current_a inf W"),
    ("nan,1.0", "voltage_v x current_a nan W"),
    ("5000,1", "voltage_v x current_a 5000.0 W"),
])
def test_a_log_reading_that_is_no_power_is_refused_with_its_line(tmp_path: Path, cells: str,
                                                                 said: str) -> None:
    log = tmp_path / "meter.csv"
    log.write_text(f"timestamp,voltage_v,current_a\n1000.0,5.0,1.0\n1001.0,{cells}\n")
    with pytest.raises(ValueError, match=f"line 3: {re.escape(said)}"):
        window_mean_w(log, 999, 1002)
    assert window_mean_w(log, 999, 1000.5) == (5.0, 1)  # a reading outside is not used
    log.write_text("timestamp,power_w\n1000.0,5.0\n999.0,4.0\n")
    with pytest.raises(ValueError, match="line 3: timestamp '999.0' is not finite or goes "
                                         "back in time"):
        window_mean_w(log, 0, 2e9)


class _Constant(SampledMeter):
    """A polled meter reading one value (W)."""

    name, covers, interval_s = "const", "a test", 0.01

    def __init__(self, watts: float) -> None:
        self.watts = watts

    def read(self) -> float:
        return self.watts


@pytest.mark.parametrize("watts", [-0.5, math.inf, math.nan, 1e6])
def test_a_polled_reading_that_is_no_power_leaves_no_figure_and_says_why(watts: float
                                                                          ) -> None:
    with _Constant(watts).measure() as window:
        time.sleep(0.03)
    assert window.mean_w is None
    assert window.error.startswith("const failed after 0 sample(s): power reading ")
    assert "is not a number from 0 to 1000 W" in window.error
    with _Constant(2.0).measure() as fine:
        time.sleep(0.03)
    assert fine.mean_w == 2.0 and fine.error is None


@pytest.mark.parametrize("busy_w", [-1.0, math.inf, math.nan])
def test_energy_fields_of_an_implausible_mean_are_empty_with_a_power_reason(busy_w: float
                                                                            ) -> None:
    fields = EnergyResult("m", "all", 1.0, busy_w, 10, 2.0, 100, None).row_fields()
    assert "energy_per_inf_mj" not in fields and "power_mean_w" not in fields
    assert fields["reason"].startswith("power: m: busy power ")
    good = EnergyResult("m", "all", 1.0, 3.0, 10, 2.0, 100, None).row_fields()
    assert good["energy_per_inf_mj"] == pytest.approx(3.0 * 0.02 * 1000)


class _ScriptedMeter:
    """A meter whose windows report fixed figures (the first: idle, then busy) and record
    which calls happened inside each."""

    name, covers = "scripted", "a test"

    def __init__(self, idle_w: float = 1.25, busy_w: float = 3.5,
                 busy_error: str | None = None) -> None:
        self.figures = [(idle_w, None), (busy_w, busy_error)]
        self.open: int | None = None  # index of the window open now
        self.windows: list[PowerWindow] = []

    @contextmanager
    def measure(self) -> Iterator[PowerWindow]:
        window, start = PowerWindow(), time.perf_counter()
        self.open = len(self.windows)
        self.windows.append(window)
        try:
            yield window
        finally:
            window.seconds = time.perf_counter() - start
            window.mean_w, window.error = self.figures[self.open]
            window.samples = 7
            self.open = None


def test_the_energy_step_warms_up_idles_then_loops_under_the_meter() -> None:
    from edge_rnn_harness.measure.energy import WARMUP_CALLS, measure_energy

    meter = _ScriptedMeter()
    calls: list[int | None] = []
    result = measure_energy(lambda fed: calls.append(meter.open), None, meter,
                            idle_s=0.05, loop_s=0.15)
    assert calls[:WARMUP_CALLS] == [None] * WARMUP_CALLS  # before any window
    assert 0 not in calls  # nothing runs while idle power is measured
    assert calls.count(1) == result.inferences == len(calls) - WARMUP_CALLS > 100
    assert meter.windows[0].seconds == pytest.approx(0.05, abs=0.03)
    assert 0.15 <= result.loop_s < 0.25 and result.loop_s == meter.windows[1].seconds
    assert (result.idle_w, result.busy_w, result.samples) == (1.25, 3.5, 7)
    assert result.error is None and (result.meter, result.covers) == ("scripted", "a test")
    fields = result.row_fields()
    seconds_per_inf = result.loop_s / result.inferences
    assert fields["energy_per_inf_mj"] == pytest.approx(3.5 * seconds_per_inf * 1000)
    assert fields["energy_net_per_inf_mj"] == pytest.approx(2.25 * seconds_per_inf * 1000)


def test_a_paced_energy_loop_sleeps_before_each_call() -> None:
    from edge_rnn_harness.measure.energy import WARMUP_CALLS, measure_energy

    meter = _ScriptedMeter()
    stamps: list[float] = []
    result = measure_energy(lambda fed: stamps.append(time.perf_counter()), None, meter,
                            idle_s=0.0, loop_s=0.2, interval_s=0.05)
    timed = stamps[WARMUP_CALLS:]
    assert 3 <= result.inferences == len(timed) <= 5
    assert min(b - a for a, b in itertools.pairwise(timed)) >= 0.05  # slept between calls


def test_a_failed_energy_window_is_the_steps_error() -> None:
    from edge_rnn_harness.measure.energy import measure_energy

    meter = _ScriptedMeter(busy_error="scripted failed after 2 sample(s): gone")
    result = measure_energy(lambda fed: None, None, meter, idle_s=0.0, loop_s=0.01)
    assert result.error == "scripted failed after 2 sample(s): gone"
    assert result.row_fields()["reason"] == "power: scripted failed after 2 sample(s): gone"
    idle_failed = _ScriptedMeter()
    idle_failed.figures[0] = (None, "scripted: idle reading lost")
    result = measure_energy(lambda fed: None, None, idle_failed, idle_s=0.0, loop_s=0.01)
    assert result.error == "scripted: idle reading lost"  # the idle window's, not dropped


def test_the_loop_is_shortened_to_end_on_time_but_never_below_half() -> None:
    from edge_rnn_harness.measure.energy import MIN_LOOP_SHARE, loop_seconds

    assert MIN_LOOP_SHARE == 0.5
    assert loop_seconds(4.0, None) == 4.0
    assert loop_seconds(4.0, time.monotonic() + 100) == 4.0
    assert loop_seconds(4.0, time.monotonic() + 3.0) == pytest.approx(3.0, abs=0.05)
    assert loop_seconds(4.0, time.monotonic() - 10) == 2.0
    assert loop_seconds(3.0, time.monotonic() + 1.0) == 1.5


def test_the_energy_steps_documented_defaults() -> None:
    """docs/guide/power.md: 2 s idle, a 4 s loop, 20 warm-up calls first."""
    from edge_rnn_harness.measure.energy import DEFAULT_IDLE_S, DEFAULT_LOOP_S, WARMUP_CALLS

    assert (DEFAULT_IDLE_S, DEFAULT_LOOP_S, WARMUP_CALLS) == (2.0, 4.0, 20)


@pytest.mark.parametrize(("busy_w", "idle_w", "inferences", "empty"), [
    (None, 1.0, 10, True), (3.0, None, 10, True), (3.0, 1.0, 0, True), (3.0, 1.0, 10, False)])
def test_energy_cells_need_both_powers_and_some_inferences(busy_w: float | None,
                                                           idle_w: float | None,
                                                           inferences: int,
                                                           empty: bool) -> None:
    fields = EnergyResult("m", "all", idle_w, busy_w, 5, 1.0, inferences, None).row_fields()
    assert ("energy_per_inf_mj" not in fields) is empty
    assert (fields.get("reason") == "power: no figure from the meter") is empty
    assert hash(EnergyResult("m", "all", 1.0, 2.0, 5, 1.0, 1, None))  # frozen: a value


def test_the_energy_child_fails_in_one_line_without_a_meter(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture
                                                            ) -> None:
    from edge_rnn_harness.measure.energy import main

    job = tmp_path / "job.json"
    job.write_text('{"case": {}, "artifact": "x", "reference": "y"}')
    assert main([str(job), "--power", "none", "-o", str(tmp_path / "out.json")]) == 1
    assert "HARNESS-ERROR:" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(SystemExit):
        main([str(job), "-o", str(tmp_path / "out.json")])  # --power is required
    with pytest.raises(SystemExit):
        main([str(job), "--power", "none"])  # -o is required


def test_every_get_throttled_bit_has_its_own_name() -> None:
    from edge_rnn_harness.board.thermal import THROTTLE_BITS

    assert [decode_throttled(1 << bit) for bit in (0, 1, 2, 3, 16, 17, 18, 19)] == [
        ["under-voltage"], ["ARM frequency capped"], ["throttled"],
        ["soft temperature limit active"], ["under-voltage occurred"],
        ["ARM frequency capping occurred"], ["throttling occurred"],
        ["soft temperature limit occurred"]]
    assert len(THROTTLE_BITS) == 8 and decode_throttled(0xF000F) == list(
        THROTTLE_BITS.values())


def test_get_throttled_is_read_as_hexadecimal(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_rnn_harness.board.thermal import read_throttled

    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert read_throttled() is None  # no vcgencmd
    fake_vcgencmd(tmp_path / "bin", ["0x50005", "garbage"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert read_throttled() == 0x50005
    assert read_throttled() is None  # an answer without the value


def test_a_throttle_flag_true_at_either_end_counts_and_only_new_sticky_flags_do() -> None:
    # "now" flags: set before or after the case, each counts once, whatever the other end
    assert throttle_reason(_state(0x4), _state(0x0)) == "get_throttled=0x0 (throttled)"
    assert throttle_reason(_state(0x5), _state(0x5)) == \
        "get_throttled=0x5 (under-voltage, throttled)"
    assert throttle_reason(_state(0x1), _state(0x4)) == \
        "get_throttled=0x4 (under-voltage, throttled)"
    # a sticky flag that appeared during the case is an event; one set before is not
    assert throttle_reason(_state(0x10000), _state(0x50000)) == \
        "get_throttled=0x50000 (throttling occurred)"
    assert throttle_reason(_state(None), _state(0x40000)) == \
        "get_throttled=0x40000 (throttling occurred)"
    assert throttle_reason(_state(0x1), _state(0x1)) == "get_throttled=0x1 (under-voltage)"


def test_a_throttle_count_must_rise_to_count() -> None:
    assert throttle_reason(_state(count=5), _state(count=5)) is None
    assert throttle_reason(_state(count=5), _state(count=4)) is None  # a counter reset
    assert throttle_reason(_state(count=None), _state(count=4)) is None


def test_a_device_tells_whether_it_throttled_by_either_reading() -> None:
    from edge_rnn_harness.board.thermal import is_throttle_readable

    assert is_throttle_readable(_state(bits=0)) and is_throttle_readable(_state(count=0))
    assert not is_throttle_readable(_state())
    assert hash(_state(0x1)) == hash(_state(0x1))  # a reading is a value


def test_a_log_over_the_size_limit_is_refused_and_one_at_it_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_rnn_harness.board.power import csvlog

    assert csvlog.MAX_LOG_BYTES == 1 << 30  # docs/guide/power.md: a log up to 1 GiB
    log = tmp_path / "big.csv"
    with log.open("wb") as handle:  # sparse: no disk used
        handle.truncate((1 << 30) + 1)
    with pytest.raises(ValueError, match=r"big.csv is larger than 1024 MiB"):
        window_mean_w(log, 0, 1)
    text = "timestamp,power_w\n1000,2\n"
    log.write_text(text)
    monkeypatch.setattr(csvlog, "MAX_LOG_BYTES", len(text))
    assert window_mean_w(log, 999, 1001) == (2.0, 1)
    monkeypatch.setattr(csvlog, "MAX_LOG_BYTES", len(text) - 1)
    with pytest.raises(ValueError, match="is larger than"):
        window_mean_w(log, 999, 1001)


@pytest.mark.parametrize(("header", "ok"), [
    ("timestamp,power_w", True), ("timestamp,voltage_v,current_a", True),
    ("timestamp,power_w,voltage_v,current_a,extra", True), ("power_w,voltage_v", False),
    ("timestamp,voltage_v", False), ("timestamp,current_a", False), ("timestamp", False)])
def test_a_log_needs_a_timestamp_and_power_or_volts_and_amps(tmp_path: Path, header: str,
                                                             ok: bool) -> None:
    log = tmp_path / "m.csv"
    values = {"timestamp": "1000", "power_w": "2", "voltage_v": "5", "current_a": "0.4",
              "extra": "x"}
    log.write_text(header + "\n" + ",".join(values[c] for c in header.split(",")) + "\n")
    if ok:
        assert window_mean_w(log, 999, 1001) == (2.0, 1)
    else:
        with pytest.raises(ValueError, match="needs a timestamp column and power_w"):
            window_mean_w(log, 999, 1001)


def test_equal_timestamps_in_a_log_are_in_order_and_the_window_includes_both_ends(
        tmp_path: Path) -> None:
    log = tmp_path / "m.csv"
    log.write_text("timestamp,power_w\n-5,9\n1000,1\n1000,3\n1002,5\n1003,7\n")
    assert window_mean_w(log, 1000, 1002) == (3.0, 3)  # 1, 3 and 5: both ends counted
    assert window_mean_w(log, -10, -1) == (9.0, 1)  # a negative time is still a time
    with pytest.raises(ValueError, match="no row between"):
        window_mean_w(log, 1000.5, 1001.5)


def test_the_csv_meter_waits_for_the_logger_then_reads_the_window(tmp_path: Path) -> None:
    from edge_rnn_harness.board.power import csvlog

    assert csvlog.SETTLE_S == 1.0
    log = tmp_path / "m.csv"
    log.write_text("timestamp,power_w\n")
    meter = CsvLogMeter(log)
    import threading

    def late_logger(stamp: float) -> None:  # the logger writes its last row after the block
        time.sleep(0.4)
        with log.open("a") as handle:
            handle.write(f"{stamp},4.5\n")

    started = time.perf_counter()
    with meter.measure() as window:
        time.sleep(0.1)
        writer = threading.Thread(target=late_logger, args=(time.time(),))
        writer.start()
    writer.join()
    assert time.perf_counter() - started >= 1.1  # it waited SETTLE_S for that row
    assert window.mean_w == 4.5 and window.error is None
    assert 0.1 <= window.seconds < 0.5 and window.ended_at >= window.started_at
    log.write_text("timestamp,power_w\nnot a time,2\n")
    with meter.measure() as broken:
        pass
    assert broken.mean_w is None and broken.error.startswith("csv:m.csv: ")
    log.unlink()
    with meter.measure() as gone:
        pass
    assert gone.mean_w is None and "No such file" in gone.error


def test_the_cpufreq_facts_come_from_the_first_policy(root: Path) -> None:
    from edge_rnn_harness.board.cpufreq import current_governor, current_khz, limits_khz

    assert (current_khz(), limits_khz(), current_governor()) == (None, (None, None), None)
    folder = cpufreq_tree(root)
    write_tree(folder / "policy0", {"cpuinfo_min_freq": 400000, "cpuinfo_max_freq": 2000000,
                                    "scaling_governor": "schedutil", "scaling_setspeed": 900000})
    write_tree(folder / "policy1", {"scaling_governor": "powersave"})
    assert current_khz() == 900000  # policy0's, not policy1's 1800000
    assert limits_khz() == (400000, 2000000)
    assert current_governor() == "schedutil"


class _Writes(list):
    """Every cpufreq file a pinning writes, in order (file name, value)."""


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> _Writes:
    from edge_rnn_harness.board import cpufreq

    recorded = _Writes()
    real = cpufreq._write

    def record(path: Path, value: object) -> None:
        recorded.append((f"{path.parent.name}/{path.name}", str(value)))
        real(path, value)  # type: ignore[arg-type]
    monkeypatch.setattr(cpufreq, "_write", record)
    return recorded


def test_pinning_widens_the_limit_it_moves_towards_first(root: Path, writes: _Writes) -> None:
    """Going up, max first (min may never exceed max); going down, min first."""
    folder = cpufreq_tree(root, governors="ondemand performance", cpus=1)
    write_tree(folder / "policy0", {"scaling_min_freq": 1200000, "scaling_max_freq": 1200000})
    with CpuPinning([600000, 1200000, 1800000], "performance") as pinning:
        pinning.apply(1800000)
        assert writes[1:] == [("policy0/scaling_max_freq", "1800000"),
                              ("policy0/scaling_min_freq", "1800000")]
        writes.clear()
        pinning.apply(600000)
        assert writes[1:] == [("policy0/scaling_min_freq", "600000"),
                              ("policy0/scaling_max_freq", "600000")]
        writes.clear()
        pinning.apply(600000)  # the same again: not above the current max, min first
        assert writes[1:] == [("policy0/scaling_min_freq", "600000"),
                              ("policy0/scaling_max_freq", "600000")]
        writes.clear()
    # restored once, widest first: max, then the saved governor, min and max
    assert writes == [("policy0/scaling_max_freq", "1800000"),
                      ("policy0/scaling_governor", "ondemand"),
                      ("policy0/scaling_min_freq", "1200000"),
                      ("policy0/scaling_max_freq", "1200000")]
    writes.clear()
    pinning.restore()
    assert writes == []  # idempotent


def test_a_pinning_never_applied_restores_nothing(root: Path, writes: _Writes) -> None:
    cpufreq_tree(root)
    pinning = CpuPinning([600000], None)
    pinning.restore()
    assert writes == []
    pinning.apply(None)  # governor unchanged, no frequency: nothing to write
    assert writes == []


@pytest.mark.parametrize(("khz", "ok"), [(600000, True), (1800000, True), (599999, False),
                                         (1800001, False)])
def test_pinning_takes_the_cpu_range_inclusive(root: Path, khz: int, ok: bool) -> None:
    folder = cpufreq_tree(root, cpus=1)
    (folder / "policy0" / "scaling_available_frequencies").write_text("")  # any in range
    if ok:
        CpuPinning([khz], None)
    else:
        with pytest.raises(PinningError, match=f"--cpu-freq {khz} is outside .*policy0's "
                                               f"range 600000..1800000 kHz"):
            CpuPinning([khz], None)


@pytest.mark.parametrize(("governors", "governor", "setspeed"), [
    ("ondemand userspace", None, True), ("ondemand userspace", "userspace", True),
    ("ondemand performance", None, False), ("ondemand userspace", "performance", False)])
def test_cpufreq_setspeed_is_used_only_under_an_available_userspace_governor(
        root: Path, writes: _Writes, governors: str, governor: str | None,
        setspeed: bool) -> None:
    cpufreq_tree(root, governors=f"{governors} performance", cpus=1)
    with CpuPinning([1200000], governor) as pinning:
        pinning.apply(1200000)
        names = [name for name, _ in writes]
    assert ("policy0/scaling_setspeed" in names) is setspeed
    assert ("policy0/scaling_min_freq" in names[:2]) is not setspeed


def test_an_unwritable_cpufreq_file_names_the_reason(root: Path) -> None:
    folder = cpufreq_tree(root, cpus=1) / "policy0"
    (folder / "scaling_governor").unlink()
    (folder / "scaling_governor").mkdir()
    with pytest.raises(PinningError, match=r"scaling_governor \(Is a directory\); run as root"):
        CpuPinning([], "performance")


def test_cpufreq_setspeed_is_checked_only_when_a_frequency_is_pinned(root: Path) -> None:
    folder = cpufreq_tree(root, cpus=1) / "policy0"
    (folder / "scaling_setspeed").unlink()
    (folder / "scaling_setspeed").mkdir()  # cannot be written
    CpuPinning([], None)  # no frequency to pin: scaling_setspeed is never written
    with pytest.raises(PinningError, match="scaling_setspeed"):
        CpuPinning([600000], None)


def test_cpufreq_governor_named_on_the_command_line_is_compared_by_value(
        root: Path, writes: _Writes) -> None:
    cpufreq_tree(root, cpus=1)
    governor = "user-space".replace("-", "")  # a new string object, as argparse gives
    with CpuPinning([600000], governor) as pinning:
        pinning.apply(600000)
    assert ("policy0/scaling_setspeed", "600000") in writes


def test_every_new_sticky_throttle_flag_is_named_and_counts_rise_by_their_difference() -> None:
    assert throttle_reason(_state(0x0), _state(0x80000)) == \
        "get_throttled=0x80000 (soft temperature limit occurred)"
    assert throttle_reason(_state(0x0), _state(0xF0000)) == (
        "get_throttled=0xf0000 (under-voltage occurred, ARM frequency capping occurred, "
        "throttling occurred, soft temperature limit occurred)")
    assert throttle_reason(_state(count=3), _state(count=7)) == \
        "CPU thermal throttle count rose by 4"
