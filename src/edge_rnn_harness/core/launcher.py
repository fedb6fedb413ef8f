"""The one launcher of child programs, and running them for the risky steps (export,
measurement): a crash, hang or abort in a runtime ends that child, never the harness, and
becomes a one-line reason.

Every child program is a module of this package started as `python -P -m MODULE`: `-P`
keeps the current folder off `sys.path`, so a user's own `backends` or `models` folder can
never shadow ours. `CHILD_PROGRAMS` lists them; each says "Child program" in its docstring.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import NoReturn

from edge_rnn_harness.core.errors import ERROR_PREFIX

#: the modules started as child programs (`python -P -m MODULE`), and what each does
CHILD_PROGRAMS: dict[str, str] = {
    "edge_rnn_harness": "the harness itself (a detached run on a device, tune's runs)",
    "edge_rnn_harness.measure.worker": "one case's pyperf manager and its workers",
    "edge_rnn_harness.measure.interleave": "one A/B worker: both sides' calls alternated",
    "edge_rnn_harness.measure.energy": "a case's energy step under the power meter",
    "edge_rnn_harness.measure.callgrind": "a case's instruction count under callgrind",
    "edge_rnn_harness.measure.versus": "a variant against its backend's fp32",
    "edge_rnn_harness.measure.cold_start": "one cold forecast: a fresh process, as cron starts it",
    "edge_rnn_harness.bundle.export": "one artifact's export",
    "edge_rnn_harness.bundle.sources.torch_callable": "the probe of a user's callable",
    "edge_rnn_harness.fleet.agent": "the device half of a remote run, over SSH",
}


def child_program_args(module: str) -> tuple[str, ...]:
    """The interpreter options that start child program `module` (for pyperf's
    `program_args`, or after a Python of another machine); ValueError for a module that is
    not one."""
    if module not in CHILD_PROGRAMS:
        raise ValueError(f"{module} is not a child program ({', '.join(CHILD_PROGRAMS)})")
    return ("-P", "-m", module)


def child_argv(module: str, *args: object, python: str = sys.executable) -> list[str]:
    """The command line of child program `module` with `args`, run by `python`."""
    return [python, *child_program_args(module), *map(str, args)]


_PYPERF_CRASH = re.compile(r"failed with exit code (-?\d+)")


@dataclass(frozen=True)
class ChildResult:
    """Outcome of one child: ok, else a one-line reason; `output` is its stdout+stderr."""

    ok: bool
    reason: str
    output: str
    returncode: int | None = None


def run_child(cmd: list[str], timeout_s: float, step: str = "",
              env: dict[str, str] | None = None) -> ChildResult:
    """Run `cmd` in its own process group; kill the whole group (pyperf workers included)
    after `timeout_s` seconds or on Ctrl-C (which is then re-raised). `step` names what
    the child was doing in the timeout reason (e.g. "measuring"); `env` adds variables to
    the child's environment."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                            env={**os.environ, **env} if env else None)
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


def exit_without_teardown(code: int) -> NoReturn:
    """End a child program whose result is written: flush its output and exit at once,
    skipping the runtimes' slow teardown at interpreter exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
