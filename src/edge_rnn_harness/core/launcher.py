"""Child processes for the risky steps (export, measurement): a crash, hang or abort in
a runtime ends that child, never the harness, and becomes a one-line reason."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass

from edge_rnn_harness.core.errors import ERROR_PREFIX

_PYPERF_CRASH = re.compile(r"failed with exit code (-?\d+)")


@dataclass(frozen=True)
class ChildResult:
    """Outcome of one child: ok, else a one-line reason; `output` is its stdout+stderr."""

    ok: bool
    reason: str
    output: str
    returncode: int | None = None


def run_child(cmd: list[str], timeout_s: float, step: str = "") -> ChildResult:
    """Run `cmd` in its own process group; kill the whole group (pyperf workers included)
    after `timeout_s` seconds or on Ctrl-C (which is then re-raised). `step` names what
    the child was doing in the timeout reason (e.g. "measuring")."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        doing = f" while {step}" if step else ""
        return ChildResult(False, f"timeout after {timeout_s:g} s{doing} (--case-timeout)", "")
    except KeyboardInterrupt:
        _kill_group(proc)
        raise
    if proc.returncode == 0:
        return ChildResult(True, "", output, 0)
    return ChildResult(False, failure_reason(output, proc.returncode), output, proc.returncode)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def failure_reason(output: str, returncode: int) -> str:
    """The one-line reason a child failed, most specific first: the child's own
    `HARNESS-ERROR:` line, a crashed pyperf worker's signal, the child's own signal, its
    last output line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if marked:
        return marked[-1][len(ERROR_PREFIX):]
    crash = _PYPERF_CRASH.search(output)
    code = int(crash.group(1)) if crash else returncode
    if code < 0:
        return f"crashed: killed by {_signal_name(-code)}"
    if lines:
        return lines[-1]
    return f"exited with code {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
