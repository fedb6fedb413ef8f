"""CPU frequency through cpufreq sysfs: what is in force (read before and after every case)
and, for a DVFS sweep, pinning each policy to one frequency or governor and restoring the
original settings afterwards (also on Ctrl-C, SIGTERM and after a case crashed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

from edge_rnn_harness.board.devicefs import device_path, read_int, read_text

CPU_DIR = "/sys/devices/system/cpu"
USERSPACE = "userspace"
#: files saved before the first case and restored at exit
_SAVED = ("scaling_governor", "scaling_max_freq", "scaling_min_freq")


class PinningError(ValueError):
    """The requested pinning cannot be done here (one line naming the file or value)."""


def policies() -> list[Path]:
    """Every cpufreq policy folder (policyN, else cpuN/cpufreq); empty without cpufreq."""
    base = device_path(CPU_DIR)
    found = sorted((base / "cpufreq").glob("policy[0-9]*"))
    return found or sorted(base.glob("cpu[0-9]*/cpufreq"))


def current_khz() -> int | None:
    """The first policy's current frequency in kHz (scaling_cur_freq), or None."""
    found = policies()
    return read_int(found[0] / "scaling_cur_freq") if found else None


def limits_khz() -> tuple[int | None, int | None]:
    """The first policy's hardware frequency limits (cpuinfo_min_freq, cpuinfo_max_freq),
    kHz, or (None, None) without cpufreq."""
    found = policies()
    if not found:
        return None, None
    return read_int(found[0] / "cpuinfo_min_freq"), read_int(found[0] / "cpuinfo_max_freq")


def current_governor() -> str | None:
    """The first policy's scaling governor, or None without cpufreq."""
    found = policies()
    return read_text(found[0] / "scaling_governor") if found else None


def _write(path: Path, value: str | int) -> None:
    with path.open("w") as handle:
        handle.write(f"{value}\n")


def _check_writable(path: Path) -> None:
    try:
        with path.open("r+"):
            pass
    except OSError as error:
        raise PinningError(f"cannot write {path} ({error.strerror or error}); run as root "
                           f"to pin the CPU frequency or governor") from None


@dataclass
class _Policy:
    folder: Path
    saved: dict[str, str]
    available_governors: list[str]
    min_khz: int | None
    max_khz: int | None
    available_khz: list[int]


class CpuPinning:
    """Pins every policy to a frequency (kHz) or governor for a case, restores the original
    governor and limits on exit. Construct it before any case runs: it checks the
    frequencies and governor and that every file it will write is writable."""

    def __init__(self, frequencies_khz: list[int], governor: str | None) -> None:
        self._governor, self._restored = governor, True
        found = policies()
        if not found:
            raise PinningError(f"no cpufreq under {CPU_DIR} on this device; --cpu-freq and "
                               f"--governor need it")
        self._policies = [self._describe(folder) for folder in found]
        for policy in self._policies:
            self._validate(policy, frequencies_khz)

    @staticmethod
    def _describe(folder: Path) -> _Policy:
        saved = {name: read_text(folder / name) or "" for name in _SAVED}
        available = (read_text(folder / "scaling_available_frequencies") or "").split()
        return _Policy(folder, saved,
                       (read_text(folder / "scaling_available_governors") or "").split(),
                       read_int(folder / "cpuinfo_min_freq"), read_int(folder / "cpuinfo_max_freq"),
                       [int(v) for v in available if v.isdigit()])

    def _validate(self, policy: _Policy, frequencies_khz: list[int]) -> None:
        governor = self._governor
        if governor and policy.available_governors and governor not in policy.available_governors:
            raise PinningError(f"--governor {governor} is not available in {policy.folder} "
                               f"(available: {', '.join(policy.available_governors)})")
        for khz in frequencies_khz:
            if policy.available_khz and khz not in policy.available_khz:
                raise PinningError(f"--cpu-freq {khz} is not one of {policy.folder}'s "
                                   f"frequencies (kHz): "
                                   f"{', '.join(map(str, policy.available_khz))}")
            low, high = policy.min_khz, policy.max_khz
            if (low is not None and khz < low) or (high is not None and khz > high):
                raise PinningError(f"--cpu-freq {khz} is outside {policy.folder}'s range "
                                   f"{low}..{high} kHz")
        files = list(_SAVED)
        if frequencies_khz and self._uses_setspeed(policy):
            files.append("scaling_setspeed")
        for name in files:
            _check_writable(policy.folder / name)

    def _uses_setspeed(self, policy: _Policy) -> bool:
        wanted = self._governor or USERSPACE
        return wanted == USERSPACE and USERSPACE in policy.available_governors

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()

    def apply(self, khz: int | None) -> None:
        """Put the case's settings in force: the governor, and the frequency if given
        (through scaling_setspeed under the userspace governor, else min = max = khz)."""
        self._restored = False
        for policy in self._policies:
            folder = policy.folder
            if khz is not None and self._uses_setspeed(policy):
                _write(folder / "scaling_governor", USERSPACE)
                _write(folder / "scaling_setspeed", khz)
                continue
            if self._governor:
                _write(folder / "scaling_governor", self._governor)
            if khz is not None:
                current_max = read_int(folder / "scaling_max_freq") or 0
                order = ("scaling_max_freq", "scaling_min_freq") if khz > current_max else (
                    "scaling_min_freq", "scaling_max_freq")
                for name in order:
                    _write(folder / name, khz)

    def restore(self) -> None:
        """Write back the governor and limits found at construction. Idempotent."""
        if self._restored:
            return
        for policy in self._policies:
            if policy.max_khz is not None:  # widest first: any saved min/max is then valid
                _write(policy.folder / "scaling_max_freq", policy.max_khz)
            for name in ("scaling_governor", "scaling_min_freq", "scaling_max_freq"):
                if policy.saved[name]:
                    _write(policy.folder / name, policy.saved[name])
        self._restored = True
