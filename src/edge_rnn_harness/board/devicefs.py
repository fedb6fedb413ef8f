"""The one way the harness reads the device it runs on: every sysfs/procfs path goes through
one root directory, every device command (e.g. `vcgencmd`) through one runner.

Tests point both elsewhere: HARNESS_SYSFS_ROOT=/tmp/fake makes `/sys/class/hwmon/...` read
`/tmp/fake/sys/class/hwmon/...`, and a fake `vcgencmd` early on PATH answers the commands.
Nothing here is timed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: environment variable naming the directory that stands for "/" (default "/")
SYSFS_ROOT_ENV = "HARNESS_SYSFS_ROOT"
#: a device command that takes longer than this has failed (seconds)
COMMAND_TIMEOUT_S = 5.0
#: longest sysfs file read (bytes); sysfs attributes are a page at most
MAX_READ_BYTES = 65536


class CommandFailed(OSError):
    """A device command is missing, timed out or exited non-zero (one-line message)."""


def root() -> Path:
    """The directory that stands for "/" when reading the device."""
    return Path(os.environ.get(SYSFS_ROOT_ENV) or "/")


def device_path(absolute: str) -> Path:
    """`absolute` (e.g. "/sys/class/hwmon") under the device root."""
    return root() / absolute.lstrip("/")


def read_text(path: Path) -> str | None:
    """A sysfs/procfs file's text, stripped of whitespace and NULs; None if unreadable."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_READ_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", "replace").strip().strip("\x00").strip()


def read_int(path: Path) -> int | None:
    """A sysfs file holding one integer; None if unreadable or not an integer."""
    text = read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def run_command(argv: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run a device command (found on PATH) and return its stdout.

    Raises CommandFailed when it is not installed, times out or exits non-zero.
    """
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise CommandFailed(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{' '.join(argv)} timed out after {timeout_s:g} s") from None
    except OSError as error:
        raise CommandFailed(f"{argv[0]}: {error.strerror or error}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CommandFailed(f"{' '.join(argv)} exited with {done.returncode}"
                            + (f": {detail[-1]}" if detail else ""))
    return done.stdout
