"""Plant, one at a time, plausible bugs in the core decisions (nine) or in the measuring
and device modules (sixteen, `--set device`), and check that the tests catch each: a wrong
number must not pass the harness's own tests.

    python tools/planted_bugs.py                 # the core set (about ten minutes here)
    python tools/planted_bugs.py --set device    # the measuring and device set
    python tools/planted_bugs.py --bug p99       # one

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

POWER = "tests/test_power_thermal.py"
#: the measuring and device modules' planted bugs (`--set device`): one plausible bug each
DEVICE_BUGS = (
    Bug("net-energy", "energy: net energy per inference without the idle subtracted",
        "src/edge_rnn_harness/measure/energy.py",
        "(self.busy_w - self.idle_w) * seconds_per_inf", "self.busy_w * seconds_per_inf",
        (POWER,)),
    Bug("log-window", "csv meter: a reading at the window's end left out",
        "src/edge_rnn_harness/board/power/csvlog.py",
        "if start_s <= stamp_s <= end_s:", "if start_s <= stamp_s < end_s:", (POWER,)),
    Bug("negative-watts", "meters: a negative reading accepted",
        "src/edge_rnn_harness/board/power/base.py",
        "and 0 <= watts <= MAX_PLAUSIBLE_W", "and -MAX_PLAUSIBLE_W <= watts <= MAX_PLAUSIBLE_W",
        (POWER,)),
    Bug("sticky-flags", "thermal: a sticky flag set before the case counts as new",
        "src/edge_rnn_harness/board/thermal.py",
        "new = after.throttled_bits >> STICKY_SHIFT & ~((before.throttled_bits or 0)\n"
        "                                                        >> STICKY_SHIFT)",
        "new = after.throttled_bits >> STICKY_SHIFT", (POWER,)),
    Bug("governor", "cpufreq: the governor not restored",
        "src/edge_rnn_harness/board/cpufreq.py",
        'for name in ("scaling_governor", "scaling_min_freq", "scaling_max_freq"):',
        'for name in ("scaling_min_freq", "scaling_max_freq"):', (POWER,)),
    Bug("peak-memory", "memory: the virtual peak (VmPeak) for the resident peak",
        "src/edge_rnn_harness/measure/memory.py",
        'kb = read_status_kb("VmHWM", status_path)', 'kb = read_status_kb("VmPeak", status_path)',
        ("tests/test_stats_parity_memory.py",)),
    Bug("tune-choice", "tune: the best setting saved without proof it is faster",
        "src/edge_rnn_harness/measure/tune.py",
        "return best if proven_faster(ratio_ci) else default", "return best",
        ("tests/test_tuning.py",)),
    Bug("history-copies", "history: copies of one run counted as several runs",
        "src/edge_rnn_harness/analysis/history.py",
        'return kept.drop_duplicates(subset=["run_id", *KEY_COLUMNS], keep="last")',
        "return kept", ("tests/test_gate_verdicts.py", "tests/test_history_store.py")),
    Bug("history-own", "history: the candidate's own run counted as history",
        "src/edge_rnn_harness/analysis/history.py",
        '& ~history["run_id"].astype(str).isin(own)]', "]",
        ("tests/test_gate_verdicts.py", "tests/test_history_store.py")),
    Bug("abba", "interleave: every round in the same order (AB AB, not ABBA)",
        "src/edge_rnn_harness/measure/interleave.py",
        "if round_index % 2 == 0 else reversed(range(len(calls)))",
        "if round_index % 2 == 0 else range(len(calls))", ("tests/test_ab.py",)),
    Bug("exit-rule", "status: a board down forgiven like a missing runtime",
        "src/edge_rnn_harness/core/status.py",
        'return status == SKIPPED and _NOT_INSTALLED not in str(row.get("reason") or "")',
        "return False", (CORE, "tests/test_results.py")),
    Bug("resume-loss", "remote: rows measured again dropped when the run stops early",
        "src/edge_rnn_harness/fleet/remote.py",
        "left = [row for row in self._pending if case_key(row) not in replaced]", "left = []",
        ("tests/test_remote.py::test_rows_measured_again_are_kept_until_replaced",)),
    Bug("resume-identity", "resume: rows of another model kept",
        "src/edge_rnn_harness/cli/remote_options.py",
        "    if found == expected:\n        return", "    if True:\n        return",
        ("tests/test_remote.py::test_resume_refuses_rows_of_another_model_in_one_line",)),
    Bug("damage-size", "bundle: a file checked by its size only, not its sha256",
        "src/edge_rnn_harness/bundle/reader.py",
        "if path.stat().st_size != item.size_bytes or file_sha256(path) != item.sha256:",
        "if path.stat().st_size != item.size_bytes:", ("tests/test_bundle.py",)),
    Bug("bool-read", "results: a boolean's unknown text read as empty",
        "src/edge_rnn_harness/core/results.py",
        "    if len(bad):\n        raise ValueError", "    if False:\n        raise ValueError",
        ("tests/test_results.py",)),
    Bug("pipe", "cli: a reader gone from stdout ends the command",
        "src/edge_rnn_harness/cli/main.py",
        "            except BrokenPipeError:\n                self._reader_gone()\n"
        "        return len(text)",
        "            except BrokenPipeError:\n                raise\n        return len(text)",
        ("tests/test_compare_gate.py",)),
)
#: the sets of planted bugs, by name
BUG_SETS = {"core": BUGS, "device": DEVICE_BUGS}


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
    parser.add_argument("--set", choices=sorted(BUG_SETS), default="core",
                        help="which bugs: core (the core decisions, default) or device (the "
                             "measuring and device modules)")
    parser.add_argument("--bug", action="append",
                        choices=[b.key for bugs in BUG_SETS.values() for b in bugs],
                        help="plant only this bug of the set (repeatable; default: all)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harness-planted-")) / "copy"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy_checkout(work))}
    chosen = [bug for bug in BUG_SETS[args.set] if not args.bug or bug.key in args.bug]
    tests = sorted({test for bug in chosen for test in bug.tests})
    baseline = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *tests], cwd=work, env=env, capture_output=True, text=True,
                              check=False)
    if baseline.returncode != 0:  # else a "caught" would mean nothing
        print(f"tools/planted_bugs.py: the tests fail without a planted bug:\n"
              f"{baseline.stdout[-3000:]}", file=sys.stderr)
        return 2
    print(f"unplanted: {baseline.stdout.strip().splitlines()[-1]}", flush=True)
    survived = total = 0
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
        total += 1
        verdict = f"caught by {first_failure(result.stdout)}" if caught else \
            f"SURVIVED (pytest exit {result.returncode})"
        print(f"{bug.key:<16} {bug.what}: {verdict}", flush=True)
    print(f"caught {total - survived} of {total} ({(total - survived) / max(total, 1):.0%})")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
