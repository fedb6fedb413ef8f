"""Facts about the machine a run measured on, recorded in every row."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(path: Path) -> str:
    try:
        return path.read_text().strip().strip("\x00")
    except OSError:
        return ""


def device_name(root: Path = Path("/")) -> str:
    """Board or product name (device tree model on a Pi/Jetson, DMI on x86), else hostname."""
    for relative in ("proc/device-tree/model", "sys/class/dmi/id/product_name"):
        name = _read(root / relative)
        if name:
            return name
    return platform.node()


def cpu_name(root: Path = Path("/")) -> str:
    """The CPU model from /proc/cpuinfo ("model name", or "Model"/"Hardware" on Arm)."""
    fields = {}
    for line in _read(root / "proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "Processor"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


def governor(root: Path = Path("/")) -> str:
    """cpu0's cpufreq scaling governor, or "" where cpufreq is not exposed (VMs)."""
    return _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def environment() -> dict[str, object]:
    """device, cpu, cores, governor, os, python: the columns shared by a run's rows."""
    return {
        "device": device_name(),
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "governor": governor(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
