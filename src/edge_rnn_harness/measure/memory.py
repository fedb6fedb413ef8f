"""The one memory definition: resident set from /proc/<pid>/status, never virtual memory.

peak_rss_mb is the worker's VmHWM (its high-water resident set) while it prepares the model,
checks parity and is timed; rss_delta_mb is that minus the worker's VmRSS just before the
runtime was imported and the model prepared. The untimed accuracy pass over the test split
is left out: the high-water mark is read before it and reset after it.
"""

from __future__ import annotations

from pathlib import Path

STATUS_PATH = Path("/proc/self/status")
CLEAR_REFS_PATH = Path("/proc/self/clear_refs")
#: written to clear_refs, resets the process's peak resident set (VmHWM) to its current one
RESET_PEAK_RSS = "5"
KB_PER_MB = 1024.0


def read_status_kb(field: str, status_path: Path = STATUS_PATH) -> int | None:
    """The value of `field` (e.g. "VmRSS", "VmHWM") in kB, or None if absent (non-Linux)."""
    try:
        text = status_path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0])
    return None


def rss_mb(status_path: Path = STATUS_PATH) -> float | None:
    """Current resident set (VmRSS) in MiB, or None where /proc is not available."""
    kb = read_status_kb("VmRSS", status_path)
    return None if kb is None else kb / KB_PER_MB


def peak_rss_mb(status_path: Path = STATUS_PATH) -> float | None:
    """High-water resident set (VmHWM) in MiB, or None where /proc is not available."""
    kb = read_status_kb("VmHWM", status_path)
    return None if kb is None else kb / KB_PER_MB


def reset_peak_rss(clear_refs: Path = CLEAR_REFS_PATH) -> bool:
    """Reset VmHWM to the current resident set (Linux 4.0+); False where that is not
    possible (then the peak keeps what came before)."""
    try:
        clear_refs.write_text(RESET_PEAK_RSS)
    except OSError:
        return False
    return True
