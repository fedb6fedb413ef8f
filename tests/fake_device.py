"""Fake device trees for the power, thermal and cpufreq code: sysfs folders written under a
temporary root (pointed to with HARNESS_SYSFS_ROOT) and a fake `vcgencmd` put first on
PATH. The real reading code runs against them; nothing of the harness is replaced."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from edge_rnn_harness.board.devicefs import SYSFS_ROOT_ENV

PMIC_OUTPUT = Path(__file__).parent / "data" / "pi5_pmic_read_adc.txt"
#: sum of V x I over the 12 paired rails of PMIC_OUTPUT (W), computed by hand from the file
PMIC_WATTS = 1.4624244184173099


def write_tree(root: Path, files: dict[str, str | int]) -> Path:
    """Write `files` (path under root -> content) and return root."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{content}\n")
    return root


def ina219(root: Path, microwatts: int = 2_500_000, index: int = 0) -> Path:
    """An INA219 in hwmon reading a constant power; returns its folder."""
    folder = f"sys/class/hwmon/hwmon{index}"
    write_tree(root, {f"{folder}/name": "ina219", f"{folder}/power1_input": microwatts,
                      f"{folder}/in1_input": 5000, f"{folder}/curr1_input": 500})
    return root / folder


def cpufreq_tree(root: Path, governors: str = "ondemand userspace performance",
                 cpus: int = 2) -> Path:
    """A cpufreq tree (policy per CPU) whose scaling_cur_freq follows scaling_setspeed, as
    a real kernel's does under the userspace governor."""
    for cpu in range(cpus):
        folder = root / f"sys/devices/system/cpu/cpufreq/policy{cpu}"
        write_tree(folder, {
            "scaling_governor": "ondemand", "scaling_available_governors": governors,
            "scaling_available_frequencies": "600000 1200000 1800000",
            "cpuinfo_min_freq": 600000, "cpuinfo_max_freq": 1800000,
            "scaling_min_freq": 600000, "scaling_max_freq": 1800000,
            "scaling_setspeed": 1800000})
        (folder / "scaling_cur_freq").symlink_to("scaling_setspeed")
    return root / "sys/devices/system/cpu/cpufreq"


def fake_vcgencmd(bin_dir: Path, throttled: list[str], pmic_fail_after: int | None = None,
                  temp_c: float = 45.0) -> Path:
    """A `vcgencmd` answering get_throttled (the values in turn, the last one repeated),
    measure_temp and pmic_read_adc (failing after `pmic_fail_after` calls, if given)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state = bin_dir / "state"
    script = bin_dir / "vcgencmd"
    script.write_text(f"""#!{sys.executable}
import json, sys
from pathlib import Path
state = Path({str(state)!r})
calls = json.loads(state.read_text()) if state.exists() else {{}}
command = sys.argv[1]
n = calls.get(command, 0)
calls[command] = n + 1
state.write_text(json.dumps(calls))
if command == "get_throttled":
    values = {throttled!r}
    print("throttled=" + values[min(n, len(values) - 1)])
elif command == "measure_temp":
    print("temp={temp_c}'C")
elif command == "pmic_read_adc":
    if {pmic_fail_after!r} is not None and n >= {pmic_fail_after!r}:
        print("error: PMIC not responding", file=sys.stderr)
        sys.exit(255)
    print(Path({str(PMIC_OUTPUT)!r}).read_text())
else:
    sys.exit(2)
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def device_env(root: Path, bin_dir: Path | None = None) -> dict[str, str]:
    """This process's environment pointed at the fake root (and the fake commands)."""
    env = {**os.environ, SYSFS_ROOT_ENV: str(root)}
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env
