"""How often the gate cries wolf and how often it catches a real slowdown, in A/B mode and
with separate runs, on this machine.

    python benchmarks/gate_error_rates.py [--pairs 20] [--ab-profile quick]
        [--separate-pairs 10] [--separate-profile default]

Same code: `lstm` against itself. Real slowdown: `lstm-h76` (hidden 76 instead of 64, about
15% slower on onnxruntime here) against `lstm`. Only median latency is gated (size and
RMSE differ between the two models by construction and are switched off). A/B mode:
`harness ab` (calls interleaved in each worker). Separate runs: two `harness run`s one
after the other, then `harness gate`. Prints, per experiment, how many pairs gave exit 0
(pass), 1 (regression) and 2 (inconclusive or cannot judge), and the median ratios seen.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HARNESS = [sys.executable, "-m", "edge_rnn_harness"]
ONLY_LATENCY = ["--max-size-growth", "off", "--max-rmse-growth", "off",
                "--max-memory-growth", "off"]
_RATIO = re.compile(r"median latency\s+([+-][0-9.]+)%")


def harness(*args: str) -> subprocess.CompletedProcess:
    """The harness CLI in a subprocess."""
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, check=False)


def ab_pair(bundle: Path, cand_model: str, out: Path, profile: str) -> tuple[int, str]:
    """One `harness ab`: (exit code, its stdout)."""
    done = harness("ab", "--bundle", str(bundle), "--model", "lstm", "--cand-model",
                   cand_model, "--backends", "onnxruntime", "--profile", profile,
                   "--no-accuracy", "--out", str(out), *ONLY_LATENCY)
    return done.returncode, done.stdout


def separate_pair(bundle: Path, cand_model: str, folder: Path, profile: str) -> tuple[int, str]:
    """Two `harness run`s one after the other, then `harness gate`: (exit code, stdout)."""
    paths = []
    for side, model in (("base", "lstm"), ("cand", cand_model)):
        path = folder / f"{side}.csv"
        run = harness("run", "--bundle", str(bundle), "--model", model, "--backends",
                      "onnxruntime", "--profile", profile, "--no-accuracy", "--out", str(path))
        if run.returncode != 0:
            raise SystemExit(run.stderr)
        paths.append(path)
    done = harness("gate", str(paths[0]), str(paths[1]), "--rename-model",
                   f"{cand_model}=lstm", *ONLY_LATENCY)
    return done.returncode, done.stdout


def main() -> None:
    """Run every experiment and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="A/B pairs per experiment")
    parser.add_argument("--ab-profile", default="quick")
    parser.add_argument("--separate-pairs", type=int, default=10,
                        help="pairs of separate runs per experiment")
    parser.add_argument("--separate-profile", default="default")
    args = parser.parse_args()
    experiments = {"A/B, same code": ("ab", "lstm"), "A/B, +15% model": ("ab", "lstm-h76"),
                   "separate runs, same code": ("separate", "lstm"),
                   "separate runs, +15% model": ("separate", "lstm-h76")}
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        bundle = tmp / "bundle"
        for model in ("lstm", "lstm-h76"):
            subprocess.run([*HARNESS, "export", "--model", model, "--backends", "onnxruntime",
                            "--no-accuracy", "--out", str(bundle)], check=True,
                           capture_output=True)
        counts = {name: collections.Counter() for name in experiments}
        changes: dict[str, list[float]] = {name: [] for name in experiments}
        for index in range(max(args.pairs, args.separate_pairs)):
            for name, (mode, cand) in experiments.items():  # interleaved across experiments
                if index >= (args.pairs if mode == "ab" else args.separate_pairs):
                    continue
                folder = tmp / f"{index}-{mode}-{cand}"
                folder.mkdir()
                code, stdout = (ab_pair(bundle, cand, folder / "ab.csv", args.ab_profile)
                                if mode == "ab" else
                                separate_pair(bundle, cand, folder, args.separate_profile))
                counts[name][code] += 1
                found = _RATIO.search(stdout)
                if found:
                    changes[name].append(float(found.group(1)))
            print(f"pair {index + 1}: " + "; ".join(
                f"{name} {dict(sorted(c.items()))}" for name, c in counts.items()), flush=True)
    print("\n| experiment | pairs, profile | exit 0 pass | exit 1 regression | exit 2 "
          "inconclusive | median change | range of changes |")
    print("|---|---|---|---|---|---|---|")
    for name, count in counts.items():
        seen = changes[name]
        spread = f"{min(seen):+.1f}% .. {max(seen):+.1f}%" if seen else "-"
        middle = f"{statistics.median(seen):+.1f}%" if seen else "-"
        setup = (f"{args.pairs}, {args.ab_profile}" if experiments[name][0] == "ab"
                 else f"{args.separate_pairs}, {args.separate_profile}")
        print(f"| {name} | {setup} | {count[0]} | {count[1]} | {count[2]} | {middle} | "
              f"{spread} |")


if __name__ == "__main__":
    main()
