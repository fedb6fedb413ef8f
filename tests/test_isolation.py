"""Child processes: a crash, a hang or an error becomes one line, never a harness crash."""

from __future__ import annotations

import sys
import time

from edge_rnn_harness.core.launcher import failure_reason, run_child


def test_abort_in_child_is_a_reason() -> None:
    result = run_child([sys.executable, "-c", "import os; os.abort()"], timeout_s=60)
    assert not result.ok
    assert result.reason == "crashed: killed by SIGABRT"


def test_hang_is_killed_after_timeout() -> None:
    start = time.monotonic()
    result = run_child([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    assert not result.ok
    assert result.reason.startswith("timeout")
    assert time.monotonic() - start < 30


def test_marked_error_line_wins() -> None:
    output = "Traceback...\nHARNESS-ERROR: ArtifactError: cannot load x.onnx\nRuntimeError: " \
             "/usr/bin/python3 failed with exit code 1\n"
    assert failure_reason(output, 1) == "ArtifactError: cannot load x.onnx"


def test_pyperf_worker_segfault_is_named() -> None:
    output = "RuntimeError: /venv/bin/python failed with exit code -11\n"
    assert failure_reason(output, 1) == "crashed: killed by SIGSEGV"


def test_success() -> None:
    result = run_child([sys.executable, "-c", "print('fine')"], timeout_s=60)
    assert result.ok and result.output.strip() == "fine"
