"""Mutation testing of the harness's core modules and its measuring and device modules with
cosmic-ray: how many small plausible
bugs (a flipped comparison, an off-by-one constant, `and` for `or`) the tests catch.

    pip install -e ".[all,test,mutation]"
    python tools/mutation.py                  # every module listed (about two hours here)
    python tools/mutation.py --module gate    # one module
    python tools/mutation.py --resume --work DIR            # go on after an interruption
    python tools/mutation.py --resume --recheck --work DIR  # survivors against new tests

It never touches this checkout: the tracked files are copied to a work folder, the copy is
imported through PYTHONPATH (ahead of the editable install), and cosmic-ray mutates the
copy one mutant at a time, running the module's fast tests against each. It prints, per
module, the mutants killed and survived and the score (killed / (killed + survived), timeouts
count as killed), then every survivor not listed in tools/mutation_equivalent.toml with the
reason it changes nothing observable.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = ROOT / "tools" / "mutation_equivalent.toml"
PYTEST = "python -m pytest -x -q -p no:cacheprovider"
CORE = "tests/test_core_logic.py"

#: module -> the tests run against each of its mutants (fast, in process)
TARGETS: dict[str, str] = {
    "stats": f"{PYTEST} {CORE} tests/test_stats_parity_memory.py -k 'statistic or value "
             f"or latency_summary'",
    "clock": f"{PYTEST} tests/test_clock.py {CORE} -k 'clock or feeding or time_'",
    "parity": f"{PYTEST} {CORE} tests/test_stats_parity_memory.py "
              f"tests/test_reference_doubts.py -k 'parity or tolerance or output or "
              f"non_finite or dispute or opinion'",
    "aggregate": f"{PYTEST} {CORE} -k 'worker or parity or accuracy_from or degenerate or "
                 f"growth or version or reference_held'",
    "gate": f"{PYTEST} {CORE} -k 'not deny_significance'",
    "compare": f"{PYTEST} {CORE}",
    "results": f"{PYTEST} tests/test_results.py",
    # the measuring and device side
    "status": f"{PYTEST} {CORE} tests/test_results.py -k 'status or could_not_run'",
    "memory": f"{PYTEST} tests/test_stats_parity_memory.py -k 'memory or rss or status'",
    "energy": f"{PYTEST} tests/test_power_thermal.py -k 'energy or loop'",
    "meters": f"{PYTEST} tests/test_power_thermal.py",
    "csvlog": f"{PYTEST} tests/test_power_thermal.py -k 'csv or log'",
    "thermal": f"{PYTEST} tests/test_power_thermal.py -k 'throttl or temperature or "
               f"device_facts or max_start_temp'",
    "cpufreq": f"{PYTEST} tests/test_power_thermal.py -k 'pinning or cpufreq or freq'",
    "tune": f"{PYTEST} tests/test_tuning.py -k 'settings_put or finalists or proven or "
            f"keep_it or tune_file'",
    "history": f"{PYTEST} tests/test_gate_verdicts.py tests/test_history_store.py -k "
               f"'history or change_points'",
    "interleave": f"{PYTEST} tests/test_ab.py -k 'abba or paired_interval'",
}
#: module -> its file
MODULE_PATHS: dict[str, str] = {
    "stats": "src/edge_rnn_harness/measure/stats.py",
    "clock": "src/edge_rnn_harness/measure/clock.py",
    "parity": "src/edge_rnn_harness/core/parity.py",
    "aggregate": "src/edge_rnn_harness/measure/aggregate.py",
    "gate": "src/edge_rnn_harness/analysis/gate.py",
    "compare": "src/edge_rnn_harness/analysis/compare.py",
    "results": "src/edge_rnn_harness/core/results.py",
    "status": "src/edge_rnn_harness/core/status.py",
    "memory": "src/edge_rnn_harness/measure/memory.py",
    "energy": "src/edge_rnn_harness/measure/energy.py",
    "meters": "src/edge_rnn_harness/board/power/base.py",
    "csvlog": "src/edge_rnn_harness/board/power/csvlog.py",
    "thermal": "src/edge_rnn_harness/board/thermal.py",
    "cpufreq": "src/edge_rnn_harness/board/cpufreq.py",
    "tune": "src/edge_rnn_harness/measure/tune.py",
    "history": "src/edge_rnn_harness/analysis/history.py",
    "interleave": "src/edge_rnn_harness/measure/interleave.py",
}
#: seconds one mutant's tests may take before it counts as killed (a hang)
TIMEOUT_S = 120
#: the output recorded for a mutant skipped because it lies in a type annotation
ANNOTATION = "type annotation (never evaluated)"
#: ... and for one that turns an arithmetic operator into a bitwise or shift operator
BITWISE = "arithmetic to bitwise operator (left out)"
ARITHMETIC_TO_BITWISE = re.compile(
    r"core/ReplaceBinaryOperator_(Add|Sub|Mul|Div|FloorDiv|Mod|Pow)_"
    r"(BitOr|BitAnd|BitXor|LShift|RShift)")


@dataclass(frozen=True)
class Outcome:
    """One module's mutants: counts and the survivors (line, operator, occurrence, diff);
    skipped untested: `annotations` (equivalent) and `bitwise` (left out)."""

    module: str
    killed: int
    survived: list[tuple[int, str, int, str]]
    incompetent: int
    annotations: int = 0
    bitwise: int = 0

    @property
    def score(self) -> float:
        """killed / (killed + survived), as a fraction."""
        total = self.killed + len(self.survived)
        return self.killed / total if total else 1.0


def copy_checkout(work: Path) -> Path:
    """Copy the tracked files into `work` ; return the folder to put on PYTHONPATH (its src/)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return work / "src"


def run_module(module: str, work: Path, env: dict[str, str]) -> Outcome:
    """Initialise and execute one cosmic-ray session for one module of MODULE_PATHS."""
    config = work / f"mutation-{module}.toml"
    session = work / f"mutation-{module}.sqlite"
    if session.exists():  # an interrupted mutant leaves its file changed: put it back
        shutil.copy2(ROOT / MODULE_PATHS[module], work / MODULE_PATHS[module])
    config.write_text(f"""[cosmic-ray]
module-path = "{MODULE_PATHS[module]}"
timeout = {TIMEOUT_S}
excluded-modules = []
test-command = "{TARGETS[module]}"

[cosmic-ray.distributor]
name = "local"
""")
    if not session.exists():  # else --resume: its pending mutants only
        baseline = subprocess.run(TARGETS[module], shell=True, cwd=work, env=env,
                                  capture_output=True, text=True, check=False)
        if baseline.returncode != 0:
            raise SystemExit(f"tools/mutation.py: the tests of {module} fail unmutated:\n"
                             f"{baseline.stdout[-2000:]}")
        subprocess.run(["cosmic-ray", "init", str(config), str(session)], cwd=work, env=env,
                       check=True, stdout=subprocess.DEVNULL)
    skip_mutants(work / MODULE_PATHS[module], session)
    subprocess.run(["cosmic-ray", "exec", str(config), str(session)], cwd=work, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return read_session(module, session)


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of every type annotation in a module that never evaluates
    them (`from __future__ import annotations`); [] for any other module."""
    tree = ast.parse(path.read_text())
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and
                    any(alias.name == "annotations" for alias in node.names)
                    for node in tree.body)
    if not postponed:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            found.append(node.returns)
    return [((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0))
            for n in found]


def skip_mutants(path: Path, session: Path) -> None:
    """Mark as skipped, before any test runs: the mutants inside a type annotation
    (equivalent: the annotation is a string nothing evaluates), and those that replace an
    arithmetic operator with a bitwise or shift one (left out: the arithmetic replacements
    of the same expression are kept, and on floats these only raise TypeError)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans = annotation_spans(path)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutation = item.mutations[0]
            if any(start <= tuple(mutation.start_pos) and tuple(mutation.end_pos) <= end
                   for start, end in spans):
                why = ANNOTATION
            elif ARITHMETIC_TO_BITWISE.fullmatch(mutation.operator_name):
                why = BITWISE
            else:
                continue
            db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                  output=why))


def recheck(module: str, work: Path, env: dict[str, str]) -> int:
    """Test every surviving mutant of the module's session again, against this checkout's
    tests as they are now (copied into the work folder first), and record the new outcome;
    returns how many the new tests kill. A mutant once killed stays killed, as tests are
    only ever added."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    shutil.copytree(ROOT / "tests", work / "tests", dirs_exist_ok=True)
    # an interrupted recheck leaves its mutant in the copy: put the module back
    shutil.copy2(ROOT / MODULE_PATHS[module], work / MODULE_PATHS[module])
    killed_now = 0
    previous, os.environ["PYTHONPATH"] = os.environ.get("PYTHONPATH"), env["PYTHONPATH"]
    cwd = Path.cwd()
    os.chdir(work)  # the mutation's module path is relative to the copy
    try:
        with use_db(str(work / f"mutation-{module}.sqlite"), WorkDB.Mode.open) as db:
            for item, result in list(db.completed_work_items):
                if result.test_outcome != TestOutcome.SURVIVED:
                    continue
                again = mutate_and_test(item.mutations, TARGETS[module], TIMEOUT_S)
                db.set_result(item.job_id, again)
                killed_now += again.test_outcome == TestOutcome.KILLED
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return killed_now


def read_session(module: str, session: Path) -> Outcome:
    """Count a finished session's outcomes."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    killed, incompetent, annotations, bitwise, survived = 0, 0, 0, 0, []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            mutation = item.mutations[0]
            if result.output == ANNOTATION:
                annotations += 1
            elif ARITHMETIC_TO_BITWISE.fullmatch(mutation.operator_name):
                bitwise += 1  # left out, whether or not an older run tested it
            elif result.test_outcome == TestOutcome.KILLED:
                killed += 1  # a failing test, or a timeout
            elif result.test_outcome == TestOutcome.SURVIVED:
                survived.append((mutation.start_pos[0], mutation.operator_name,
                                 mutation.occurrence, result.diff or ""))
            else:  # the mutant could not be applied or tested: not counted
                incompetent += 1
    return Outcome(module, killed, sorted(survived), incompetent, annotations, bitwise)


def equivalents() -> dict[tuple[str, int, str, int], str]:
    """(module, line, operator, occurrence) -> why that surviving mutant is equivalent."""
    if not EQUIVALENT_FILE.is_file():
        return {}
    data = tomllib.loads(EQUIVALENT_FILE.read_text())
    return {(item["module"], item["line"], item["operator"], item["occurrence"]): item["why"]
            for item in data.get("mutant", [])}


def report(outcomes: list[Outcome]) -> int:
    """Print the scores and unexplained survivors; 1 if any survivor is unexplained."""
    known = equivalents()
    unexplained = 0
    print("mutants: tested (killed + survived); skipped untested: annotation (inside a type "
          "annotation: equivalent) and bitwise (arithmetic to bitwise/shift: left out); "
          "equivalent: survivors listed in tools/mutation_equivalent.toml")
    print(f"{'module':<10} {'mutants':>7} {'killed':>7} {'survived':>8} {'annotation':>10} "
          f"{'bitwise':>7} {'equivalent':>10} {'score':>7} {'score w/o equiv.':>16}")
    for outcome in outcomes:
        equivalent = [s for s in outcome.survived if (outcome.module, *s[:3]) in known]
        total = outcome.killed + len(outcome.survived)
        adjusted = outcome.killed / (total - len(equivalent)) if total > len(equivalent) else 1
        print(f"{outcome.module:<10} {total:>7} {outcome.killed:>7} "
              f"{len(outcome.survived):>8} {outcome.annotations:>10} {outcome.bitwise:>7} "
              f"{len(equivalent):>10} "
              f"{outcome.score:>7.1%} {adjusted:>16.1%}")
    killed = sum(o.killed for o in outcomes)
    total = killed + sum(len(o.survived) for o in outcomes)
    equivalent = sum(1 for o in outcomes for s in o.survived if (o.module, *s[:3]) in known)
    annotations = sum(o.annotations for o in outcomes)
    bitwise = sum(o.bitwise for o in outcomes)
    print(f"{'all':<10} {total:>7} {killed:>7} {total - killed:>8} {annotations:>10} "
          f"{bitwise:>7} {equivalent:>10} {killed / total:>7.1%} "
          f"{killed / (total - equivalent):>16.1%}")
    for outcome in outcomes:
        for line, operator, occurrence, diff in outcome.survived:
            if (outcome.module, line, operator, occurrence) in known:
                continue
            unexplained += 1
            print(f"\nSURVIVED {MODULE_PATHS[outcome.module]}:{line} {operator} #{occurrence}")
            print("\n".join(d for d in diff.splitlines() if d[:1] in "+-" and d[:3] not in
                            ("+++", "---")))
    return 1 if unexplained else 0


def main() -> int:
    """Parse the options, mutate each chosen module in a copy, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS),
                        help="mutate only this module (repeatable; default: all)")
    parser.add_argument("--work", type=Path, default=None,
                        help="work folder for the copy and the sessions (default: a new "
                             "folder under /tmp); must not exist unless --resume")
    parser.add_argument("--recheck", action="store_true",
                        help="with --resume: test the survivors again against the tests as "
                             "they are now (after adding tests to kill them)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the sessions in --work (e.g. after Ctrl-C): only "
                             "the mutants not yet tested run; the copy must match this "
                             "checkout's core modules")
    args = parser.parse_args()
    if shutil.which("cosmic-ray") is None:
        print("tools/mutation.py: cosmic-ray is not installed; pip install -e "
              "'.[all,test,mutation]'", file=sys.stderr)
        return 2
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="harness-mutation-")) / "copy"
    if args.recheck and not args.resume:
        print("tools/mutation.py: --recheck goes with --resume --work DIR", file=sys.stderr)
        return 2
    if args.resume:
        if args.work is None or not (work / "src").is_dir():
            print("tools/mutation.py: --resume needs the --work folder of an earlier run",
                  file=sys.stderr)
            return 2
        env = {**os.environ, "PYTHONPATH": str(work / "src")}
    elif work.exists():
        print(f"tools/mutation.py: {work} exists; give a new --work folder (or --resume)",
              file=sys.stderr)
        return 2
    else:
        work.mkdir(parents=True)
        env = {**os.environ, "PYTHONPATH": str(copy_checkout(work))}
    outcomes = []
    for module in args.module or list(TARGETS):
        if args.recheck:
            print(f"re-testing the survivors of {MODULE_PATHS[module]} ...", flush=True)
            print(f"  killed now: {recheck(module, work, env)}", flush=True)
            outcomes.append(read_session(module, work / f"mutation-{module}.sqlite"))
            continue
        print(f"mutating {MODULE_PATHS[module]} ...", flush=True)
        outcomes.append(run_module(module, work, env))
    print(f"(sessions in {work})")
    return report(outcomes)


if __name__ == "__main__":
    raise SystemExit(main())
