"""Child program: the device half of a remote run, the few one-shot commands the
workstation runs over SSH (`python -P -m edge_rnn_harness.fleet.agent ACTION ...`). No
daemon stays behind: `start` detaches one `harness run` and returns; the workstation then
reads the run's files.

    info                 JSON: harness version, Python, each backend's version or why not
    hash ROOT            JSON {path: sha256} of the files named on stdin (a JSON list of
                         paths relative to ROOT) that exist there as regular files
    start RUNDIR ARGS..  start `harness ARGS` detached (its own session; working folder the
                         session's, the home folder), output to RUNDIR/log;
                         RUNDIR/pid holds its process group, RUNDIR/rc its exit code
                         once it ends. Prints JSON {"pgid": N}
    stop RUNDIR          SIGINT to the run's process group (as Ctrl-C: rows are kept)

A run folder outlives the SSH connection: rows measured after a connection drops are still
written there, for `harness devices fetch`. Arguments arrive as separate, quoted words;
nothing here passes them through a shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

from edge_rnn_harness import __version__
from edge_rnn_harness.backends.registry import BACKENDS
from edge_rnn_harness.core.launcher import child_argv

#: the files of a run folder
LOG, PGID, RC, PROGRESS = "log", "pid", "rc", "progress.jsonl"
RESULTS_CSV, RESULTS_JSON = "results.csv", "results.json"
#: longest list of paths `hash` accepts on stdin
MAX_HASH_REQUEST_BYTES = 16 << 20


def info() -> dict[str, object]:
    """What this device has: the harness version, Python, and per backend its runtime
    version or the reason it cannot run here."""
    import platform

    backends: dict[str, dict[str, str | None]] = {}
    for name, backend in BACKENDS.items():
        why_not = backend.installed()
        backends[name] = {"version": None if why_not else backend.version(), "why_not": why_not}
    return {"harness": __version__, "python": platform.python_version(),
            "machine": platform.machine(), "backends": backends}


def _inside(root: Path, relative: str) -> Path | None:
    """root/relative when `relative` is a plain relative path staying inside root."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\0" in relative:
        return None
    return root / pure


def file_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of each of `paths` (relative to root) that is a regular file, not a symlink,
    inside root; the others are left out (the workstation sends them)."""
    hashes = {}
    for relative in paths:
        path = _inside(root, relative)
        if path is None or path.is_symlink() or not path.is_file():
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
        hashes[relative] = digest.hexdigest()
    return hashes


def start(rundir: Path, harness_args: list[str]) -> int:
    """Start `python -m edge_rnn_harness ARGS` detached from this SSH session (a new
    session, stdin from /dev/null, output to rundir/log); return its process group id once
    rundir/pid holds it. A waiting process writes rundir/rc when the run ends."""
    rundir.mkdir(parents=True, exist_ok=True)
    for name in (PGID, RC):
        (rundir / name).unlink(missing_ok=True)
    if os.fork() == 0:  # child: new session, then the waiter in it
        try:
            os.setsid()
            if os.fork() == 0:
                _wait_for_run(rundir, harness_args)
        finally:
            os._exit(0)
    os.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = (rundir / PGID).read_text() if (rundir / PGID).exists() else ""
        if text.strip().isdigit():
            return int(text)
        time.sleep(0.02)
    raise RuntimeError(f"the run did not start within 30 s (see {rundir / LOG})")


def _wait_for_run(rundir: Path, harness_args: list[str]) -> None:
    """In the detached session: run the harness, then write its exit code."""
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(rundir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(child_argv("edge_rnn_harness", *harness_args),
                               env=env)
    for number in (signal.SIGINT, signal.SIGHUP):  # after the start: the run keeps defaults
        signal.signal(number, signal.SIG_IGN)  # the run handles them; the waiter outlives it
    _write_atomic(rundir / PGID, str(os.getpgrp()))
    code = process.wait()
    _write_atomic(rundir / RC, str(code if code >= 0 else 128 - code))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def stop(rundir: Path) -> bool:
    """SIGINT to the run's process group, as Ctrl-C; False if it is not running."""
    text = (rundir / PGID).read_text().strip() if (rundir / PGID).exists() else ""
    if not text.isdigit() or (rundir / RC).exists():
        return False
    try:
        os.killpg(int(text), signal.SIGINT)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str]) -> int:
    """The command line above; prints JSON on stdout, errors as one line on stderr."""
    action, rest = (argv[0], argv[1:]) if argv else ("", [])
    if action == "info" and not rest:
        print(json.dumps(info()))
    elif action == "hash" and len(rest) == 1:
        request = sys.stdin.read(MAX_HASH_REQUEST_BYTES + 1)
        paths = json.loads(request) if len(request) <= MAX_HASH_REQUEST_BYTES else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            print("agent hash: stdin must be a JSON list of relative paths",
                  file=sys.stderr)
            return 2
        print(json.dumps(file_hashes(Path(rest[0]), paths)))
    elif action == "start" and len(rest) >= 2:
        print(json.dumps({"pgid": start(Path(rest[0]), rest[1:])}))
    elif action == "stop" and len(rest) == 1:
        print(json.dumps({"stopped": stop(Path(rest[0]))}))
    else:
        print(f"usage: python -m edge_rnn_harness.fleet.agent info | hash ROOT | "
              f"start RUNDIR ARGS.. | stop RUNDIR (got {argv!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
