"""Plant, one at a time, nine plausible bugs in the core decisions, and check
that the tests catch each: a wrong number must not pass the harness's own tests.

    python tools/planted_bugs.py            # all nine (about ten minutes here)
    python tools/planted_bugs.py --bug p99  # one

Like tools/mutation.py it works on a copy of the tracked files (imported through
PYTHONPATH, children included), never on this checkout. For each bug it prints whether the
named tests failed (caught) and the first failing test. Exit 1 if any bug survives.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import copy_checkout  # the sibling tool's copy of the checkout


@dataclass(frozen=True)
class Bug:
    """One planted bug: replace `old` by `new` in `path`, then run `tests`."""

    key: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


CORE = "tests/test_core_logic.py"
BUGS = (
    Bug("significance", "compare: significance decided by effect size alone",
        "src/edge_rnn_harness/analysis/compare.py",
        "significant = p_value < alpha and not low <= 1 <= high and abs(ratio - 1) >= min_effect",
        "significant = abs(ratio - 1) >= min_effect",
        (CORE, "tests/test_compare_gate.py")),
    Bug("skipped", "gate: a skipped or unsupported candidate no longer refuses to judge",
        "src/edge_rnn_harness/analysis/gate.py",
        'elif case.cand_row["status"] in ("skipped", "unsupported"):',
        'elif case.cand_row["status"] in ():',
        (CORE, "tests/test_compare_gate.py", "tests/test_gate_verdicts.py")),
    Bug("speedup", "gate: speedups counted as regressions",
        "src/edge_rnn_harness/analysis/gate.py",
        "if significant and ratio - 1 > limit:",
        "if significant and abs(ratio - 1) > limit:",
        (CORE, "tests/test_compare_gate.py", "tests/test_gate_verdicts.py")),
    Bug("exit-order", "gate: regression exit code checked before 'cannot judge'",
        "src/edge_rnn_harness/analysis/gate.py",
        "        if self.problems or self.inconclusive:\n            return EXIT_CANNOT_JUDGE\n"
        "        return EXIT_REGRESSION if self.regressions else EXIT_PASS",
        "        if self.regressions:\n            return EXIT_REGRESSION\n"
        "        return EXIT_CANNOT_JUDGE if self.problems or self.inconclusive else EXIT_PASS",
        (CORE, "tests/test_compare_gate.py", "tests/test_gate_verdicts.py")),
    Bug("parity", "parity: the allowed error made 100x looser",
        "src/edge_rnn_harness/core/parity.py",
        "allowed = tolerance.atol + tolerance.rtol * np.where(finite, np.abs(ref64), 0.0)",
        "allowed = 100 * (tolerance.atol + tolerance.rtol * np.where(finite, np.abs(ref64), "
        "0.0))",
        (CORE, "tests/test_stats_parity_memory.py")),
    Bug("best-worker", "runner: the best worker's parity error reported instead of the worst",
        "src/edge_rnn_harness/measure/aggregate.py",
        "fields[metric.column] = metric.aggregate(gather(metric.column))",
        'fields[metric.column] = (min if metric.column.startswith("max_") else '
        "metric.aggregate)(gather(metric.column)) if gather(metric.column) else None",
        (CORE,)),
    Bug("clock", "clock: process_time_ns instead of perf_counter_ns",
        "src/edge_rnn_harness/measure/clock.py",
        "fed: object,\n               clock: Clock = time.perf_counter_ns",
        "fed: object,\n               clock: Clock = time.process_time_ns",
        (CORE, "tests/test_clock.py")),
    Bug("p99", "stats: p99 computed as p90", "src/edge_rnn_harness/measure/stats.py",
        "np.percentile(ms, 99)", "np.percentile(ms, 90)",
        (CORE, "tests/test_stats_parity_memory.py")),
    Bug("ctrl-c", "Ctrl-C: the children's process group not killed",
        "src/edge_rnn_harness/core/launcher.py",
        "    except KeyboardInterrupt:\n        _kill_group(proc)\n        raise",
        "    except KeyboardInterrupt:\n        raise",
        ("tests/test_cli.py::test_ctrl_c_keeps_the_rows_already_measured",)),
)


def plant(work: Path, bug: Bug) -> str:
    """Apply `bug` to the copy; return the original text to restore."""
    path = work / bug.path
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"tools/planted_bugs.py: {bug.key}: the code to change is not "
                         f"found once in {bug.path}; update the bug's text")
    path.write_text(text.replace(bug.old, bug.new))
    return text


def first_failure(output: str) -> str:
    """The first FAILED/ERROR test id in pytest's -q -rfE summary."""
    found = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - |$)", output, re.MULTILINE)
    return found.group(1) if found else "(no test id: see the output)"


def main() -> int:
    """Plant each chosen bug in a copy, run its tests, print caught or survived."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bug", action="append", choices=[b.key for b in BUGS],
                        help="plant only this bug (repeatable; default: all nine)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harness-planted-")) / "copy"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy_checkout(work))}
    chosen = [bug for bug in BUGS if not args.bug or bug.key in args.bug]
    tests = sorted({test for bug in chosen for test in bug.tests})
    baseline = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *tests], cwd=work, env=env, capture_output=True, text=True,
                              check=False)
    if baseline.returncode != 0:  # else a "caught" would mean nothing
        print(f"tools/planted_bugs.py: the tests fail without a planted bug:\n"
              f"{baseline.stdout[-3000:]}", file=sys.stderr)
        return 2
    print(f"unplanted: {baseline.stdout.strip().splitlines()[-1]}", flush=True)
    survived = 0
    for bug in chosen:
        original = plant(work, bug)
        try:
            result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rfE",
                                     "-p", "no:cacheprovider", *bug.tests], cwd=work, env=env,
                                    capture_output=True, text=True, check=False)
        finally:
            (work / bug.path).write_text(original)
        caught = result.returncode == 1
        survived += not caught
        verdict = f"caught by {first_failure(result.stdout)}" if caught else \
            f"SURVIVED (pytest exit {result.returncode})"
        print(f"{bug.key:<13} {bug.what}: {verdict}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
