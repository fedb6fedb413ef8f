"""Facts about the device a run measured on, recorded in every row.

A measured row takes them from its pyperf benchmark: pyperf's own run metadata (CPU model,
CPU count, platform, Python, cpu_config with the governor) and what the worker added
(`worker.device_metadata`: board model, kernel, cpufreq limits). A row that measured
nothing (skipped, failed before measuring) takes them from `environment()`, read by the
runner on the same device.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from typing import Any

from edge_rnn_harness.board import cpufreq
from edge_rnn_harness.board.devicefs import device_path, read_text

_GOVERNOR = re.compile(r"governor:([^,;\s]+)")


def device_name() -> str:
    """Board or product name (device tree model on a Pi/Jetson, DMI on x86), else hostname."""
    for path in ("/proc/device-tree/model", "/sys/class/dmi/id/product_name"):
        name = read_text(device_path(path))
        if name:
            return name
    return platform.node()


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo ("model name", or "Model"/"Hardware" on Arm)."""
    fields: dict[str, str] = {}
    for line in (read_text(device_path("/proc/cpuinfo")) or "").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "Processor"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


#: the `device` of rows measured under QEMU user-mode emulation ends so
EMULATED_MARK = "(emulated)"
#: /proc/cpuinfo fields only an x86 kernel writes
_X86_FIELDS = ("vendor_id", "flags")


def emulated_device() -> str | None:
    """"qemu-<machine> (emulated)" when this process runs translated by QEMU user mode,
    else None: the machine Python reports (uname, translated by QEMU) is not the one the
    kernel runs (/proc/sys/kernel/arch, or x86 fields in /proc/cpuinfo)."""
    machine = platform.machine()
    kernel_arch = read_text(device_path("/proc/sys/kernel/arch"))
    if kernel_arch:
        translated = kernel_arch != machine
    else:
        fields = {line.partition(":")[0].strip()
                  for line in (read_text(device_path("/proc/cpuinfo")) or "").splitlines()}
        translated = machine not in ("x86_64", "i686") and bool(fields & set(_X86_FIELDS))
    return f"qemu-{machine} {EMULATED_MARK}" if translated else None


def environment() -> dict[str, object]:
    """The device columns read here and now (for rows without a pyperf benchmark)."""
    low_khz, high_khz = cpufreq.limits_khz()
    return {
        "device": emulated_device() or device_name(), "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "governor": cpufreq.current_governor() or "", "os": platform.platform(),
        "kernel": platform.release(), "python": platform.python_version(),
        "cpu_freq_min_khz": low_khz, "cpu_freq_max_khz": high_khz,
    }


def measured_environment(metadata: Mapping[str, Any]) -> dict[str, object]:
    """The device columns from a benchmark's metadata (pyperf's and the worker's); only the
    facts present there, so `environment()`'s stay where the metadata is silent."""
    facts: dict[str, object] = {
        "device": metadata.get("device"), "cpu": metadata.get("cpu_model_name"),
        "cores": metadata.get("cpu_count"), "os": metadata.get("platform"),
        "kernel": metadata.get("kernel"),
        "python": str(metadata.get("python_version", "")).split(" ")[0] or None,
        "cpu_freq_min_khz": metadata.get("cpu_freq_min_khz"),
        "cpu_freq_max_khz": metadata.get("cpu_freq_max_khz"),
    }
    governor = _GOVERNOR.search(str(metadata.get("cpu_config", "")))
    if governor:
        facts["governor"] = governor.group(1)
    return {key: value for key, value in facts.items() if value not in (None, "")}
