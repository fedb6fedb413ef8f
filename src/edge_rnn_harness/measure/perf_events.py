"""Hardware and software event counters of this process through Linux's perf_event_open
(ctypes; no `perf` binary), read in a worker around its timed calls.

Hardware: user-space instructions, cycles, cache misses and branch misses, where the
kernel exposes a PMU (a Raspberry Pi's Cortex-A72/A76, most bare-metal x86). Software:
task-clock, page faults and context switches, which every Linux kernel counts. An event
the kernel refuses is absent with the reason (no PMU, a perf_event_paranoid setting),
never a zero. Each counter is switched on only while a timed value is measured (pyperf
hook: `__enter__`/`__exit__` around each value), so per inference = count / calls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

_PERF_TYPE_HARDWARE, _PERF_TYPE_SOFTWARE = 0, 1
#: column -> (perf type, config, user space only)
EVENTS: dict[str, tuple[int, int, bool]] = {
    "hw_instructions_per_inf": (_PERF_TYPE_HARDWARE, 1, True),
    "hw_cycles_per_inf": (_PERF_TYPE_HARDWARE, 0, True),
    "hw_cache_misses_per_inf": (_PERF_TYPE_HARDWARE, 3, True),
    "hw_branch_misses_per_inf": (_PERF_TYPE_HARDWARE, 5, True),
    "task_clock_us_per_inf": (_PERF_TYPE_SOFTWARE, 1, False),
    "page_faults_per_inf": (_PERF_TYPE_SOFTWARE, 2, False),
    "context_switches_per_inf": (_PERF_TYPE_SOFTWARE, 3, False),
}
#: task-clock counts nanoseconds; its column is microseconds
_SCALE = {"task_clock_us_per_inf": 1e-3}
_SYSCALL = {"x86_64": 298, "amd64": 298, "aarch64": 241, "arm64": 241}
_IOC_ENABLE, _IOC_DISABLE, _IOC_RESET = 0x2400, 0x2401, 0x2403
_ATTR_SIZE = 64  # PERF_ATTR_SIZE_VER0: every kernel takes it
#: attr.flags bits
_DISABLED, _EXCLUDE_KERNEL, _EXCLUDE_HV = 1 << 0, 1 << 5, 1 << 6


def _attr(kind: int, config: int, user_only: bool) -> bytes:
    """A perf_event_attr (version 0 layout), disabled at open."""
    flags = _DISABLED | ((_EXCLUDE_KERNEL | _EXCLUDE_HV) if user_only else 0)
    return struct.pack("<IIQQQQQIIQ", kind, _ATTR_SIZE, config, 0, 0, 0, flags, 0, 0, 0)


def pmu_exposed(sysfs: Path = Path("/sys/bus/event_source/devices")) -> bool:
    """Whether the kernel lists a CPU PMU (a `cpu`, `armv8_*` or `cpu_*` event source)."""
    try:
        names = [p.name for p in sysfs.iterdir()]
    except OSError:
        return False
    return any(n == "cpu" or n.startswith(("armv8", "armv7", "cpu_", "arm_")) for n in names)


def _why(code: int, kind: int) -> str:
    if kind == _PERF_TYPE_HARDWARE and code in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
        return "no hardware PMU exposed"
    if code in (errno.EACCES, errno.EPERM):
        paranoid = Path("/proc/sys/kernel/perf_event_paranoid")
        level = paranoid.read_text().strip() if paranoid.exists() else "?"
        return (f"perf_event_open not permitted (kernel.perf_event_paranoid={level}); run "
                f"as root or lower it")
    return f"perf_event_open: {os.strerror(code)}"


@dataclass
class Counters:
    """The open counters (column -> fd) and why the others are not (column -> reason).
    Each is switched on and off by itself (grouped under one leader, the software events
    of this kernel did not count: page faults and context switches read 0), so switching
    costs two system calls per counter per value, outside the timed calls."""

    fds: dict[str, int]
    missing: dict[str, str]

    @classmethod
    def open(cls) -> Counters:
        """Open every event this process may count; the rest get a reason."""
        number = _SYSCALL.get(platform.machine().lower())
        if number is None:
            why = f"perf_event_open is not wired up for {platform.machine()} here"
            return cls({}, dict.fromkeys(EVENTS, why))
        libc = ctypes.CDLL(None, use_errno=True)
        fds, missing = {}, {}

        def open_one(kind: int, config: int, user_only: bool) -> int:
            attr = ctypes.create_string_buffer(_attr(kind, config, user_only), _ATTR_SIZE)
            return int(libc.syscall(number, attr, 0, -1, -1, 0))

        for column, (kind, config, user_only) in EVENTS.items():
            fd = open_one(kind, config, user_only)
            if fd < 0 and not user_only and ctypes.get_errno() in (errno.EACCES, errno.EPERM):
                fd = open_one(kind, config, True)  # user space only, then
            if fd < 0:
                code = ctypes.get_errno()
                missing[column] = (_why(code, kind) if kind == _PERF_TYPE_SOFTWARE or
                                   pmu_exposed() or code != errno.ENOENT
                                   else "no hardware PMU exposed")
            else:
                fds[column] = fd
        return cls(fds, missing)

    def _ioctl(self, request: int) -> None:
        import fcntl

        for fd in self.fds.values():
            fcntl.ioctl(fd, request, 0)

    def enable(self) -> None:
        """Start counting."""
        self._ioctl(_IOC_ENABLE)

    def disable(self) -> None:
        """Stop counting."""
        self._ioctl(_IOC_DISABLE)

    def read_and_reset(self) -> dict[str, int]:
        """Each open counter's count since the last reset; then zero them."""
        counts = {column: struct.unpack("<Q", os.read(fd, 8))[0]
                  for column, fd in self.fds.items()}
        self._ioctl(_IOC_RESET)
        return counts

    def close(self) -> None:
        """Close every counter."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def per_inference(counts: dict[str, int], calls: int) -> dict[str, float]:
    """Counts per call, in each column's unit."""
    return {column: count / calls * _SCALE.get(column, 1.0)
            for column, count in counts.items()} if calls else {}


def missing_note(missing: dict[str, str]) -> str:
    """One line naming the counters that are empty and why, grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for column, why in missing.items():
        by_reason.setdefault(why, []).append(column.removesuffix("_per_inf"))
    return "; ".join(f"perf: {', '.join(columns)}: {why}" for why, columns in by_reason.items())


class CountersHook:
    """A pyperf hook: counters on around each timed value, read after the values; the
    per-inference figures (and what is missing) go into the worker's run metadata."""

    #: calls per value (pyperf --loops; the profiles fix it at 1)
    loops: int = 1
    counters: Counters | None = None
    values = 0

    def __init__(self) -> None:
        if CountersHook.counters is None:
            CountersHook.counters = Counters.open()

    def __enter__(self) -> Self:
        assert self.counters is not None
        CountersHook.values += 1
        self.counters.enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.counters is not None
        self.counters.disable()

    def teardown(self, metadata: dict[str, Any]) -> None:
        """Record the counts of the values since the last teardown (pyperf tears the
        hooks down after the warm-ups and again after the values: the last one wins)."""
        assert self.counters is not None
        calls = CountersHook.values * CountersHook.loops
        metadata.update(per_inference(self.counters.read_and_reset(), calls))
        if self.counters.missing:
            metadata["counters_note"] = missing_note(self.counters.missing)
        CountersHook.values = 0
