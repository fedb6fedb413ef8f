"""`harness tune`: find a backend's fastest setting (tuning options x thread counts) for a
model on this device, and say how sure that is against the default.

Pass 1 measures every combination with the quick profile and keeps those within `margin`
of the best (the default always stays). Pass 2 measures the survivors with the chosen
profile in alternating rounds (A B C A B C: a drifting machine falls on all alike) and
compares the best with the default by a bootstrap interval of the median ratio over their
worker processes. Each measurement is a real `harness run` in its own process; its CSV and
pyperf JSON are kept in the output folder.

A tune file (`--write`) is JSON: {"tune_file": 1, "backend", "model", "threads", "tuning":
{option: value}, "median_ms", "default_median_ms", "ratio_ci": [low, high],
"significant"}: the best setting when it was significantly faster than the default, else
the default; `harness run --tune-file FILE` applies its tuning and thread count to that
backend's cases.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_rnn_harness.backends.registry import backend_names, get_backend
from edge_rnn_harness.core.launcher import child_argv
from edge_rnn_harness.core.results import read_results
from edge_rnn_harness.measure.stats import bootstrap_ratio_ci, raw_values

TUNE_FILE_VERSION = 1
#: largest tune file read
MAX_TUNE_FILE_BYTES = 64 << 10
#: settings slower than the best by more than this after pass 1 are dropped
DEFAULT_MARGIN = 0.25
#: most settings measured in pass 2 (the default included)
MAX_FINALISTS = 4
#: alternating rounds of pass 2
ROUNDS = 2


@dataclass(frozen=True)
class Setting:
    """One combination: a thread count and a value for every tuning option."""

    threads: int
    tuning: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """e.g. "threads=1 call=iobinding graph_level=all"."""
        return " ".join([f"threads={self.threads}", *(f"{k}={v}" for k, v in self.tuning)])

    def tune_args(self, backend: str) -> list[str]:
        """The `harness run` options that select this setting."""
        args = ["--threads", str(self.threads)]
        for key, value in self.tuning:
            args += ["--tune", f"{backend}.{key}={value}"]
        return args


def settings_of(choices: dict[str, tuple[str, ...]], threads: list[int]) -> list[Setting]:
    """Every combination; the first is the default (first thread count, first value of
    each option)."""
    keys = sorted(choices)
    return [Setting(n, tuple(zip(keys, values)))
            for n in threads for values in itertools.product(*(choices[k] for k in keys))]


@dataclass
class Measured:
    """A setting's timed values: per worker process, seconds, over every run of it."""

    setting: Setting
    runs: list[np.ndarray] = field(default_factory=list)
    failure: str = ""

    @property
    def median_ms(self) -> float:
        """Median over every value, ms (inf when nothing was measured)."""
        return float(np.median(np.concatenate(self.runs))) * 1e3 if self.runs else np.inf


@dataclass(frozen=True)
class TuneJob:
    """What `harness tune` runs: the backend, the `harness run` options naming the model and
    bundle, the profile of pass 2, and the folder for every run's files."""

    backend: str
    source_args: list[str]
    profile: str
    out_dir: Path
    margin: float = DEFAULT_MARGIN


def measure(job: TuneJob, setting: Setting, profile: str, name: str, into: Measured) -> None:
    """One `harness run` of `setting`; its values are added to `into` (or its failure)."""

    out = job.out_dir / f"{name}.csv"
    done = subprocess.run([*child_argv("edge_rnn_harness", "run"), *job.source_args,
                           "--backends", job.backend, "--profile", profile, "--power", "none",
                           "--no-accuracy", *setting.tune_args(job.backend), "--out", str(out)],
                          capture_output=True, text=True, check=False)
    if not out.is_file():
        into.failure = (done.stderr.strip().splitlines() or ["no results"])[-1][:300]
        return
    rows = read_results(out)
    if len(rows) != 1 or rows["status"].iloc[0] != "ok":
        reason = rows["reason"].iloc[0] if len(rows) else "no row"
        into.failure = f"{rows['status'].iloc[0] if len(rows) else 'failed'}: {reason}"
        return
    for runs in raw_values(out.with_suffix(".json")).values():
        into.runs.extend(runs)


def finalists(first: list[Measured], margin: float) -> list[Measured]:
    """The default (first) and the settings within `margin` of pass 1's best, fastest first,
    at most MAX_FINALISTS."""
    best = min(m.median_ms for m in first)
    kept = sorted((m for m in first[1:] if m.median_ms <= best * (1 + margin)),
                  key=lambda m: m.median_ms)
    return [first[0], *kept[:MAX_FINALISTS - 1]]


def tune(job: TuneJob, choices: dict[str, tuple[str, ...]], threads: list[int],
         say: Callable[[str], None]) -> tuple[Measured, Measured, tuple[float, float]]:
    """Run both passes: (the default, the best, the 95% interval of best/default median
    latency). ValueError when the default itself cannot be measured."""

    job.out_dir.mkdir(parents=True, exist_ok=True)
    first = [Measured(s) for s in settings_of(choices, threads)]
    for index, measured in enumerate(first):
        measure(job, measured.setting, "quick", f"pass1-{index}", measured)
        say(f"pass 1 [{index + 1}/{len(first)}] {measured.setting.label}: "
            + (f"median {measured.median_ms:.4f} ms" if measured.runs else measured.failure))
    if not first[0].runs:
        raise ValueError(f"the default setting could not be measured: {first[0].failure}")
    final = [Measured(m.setting) for m in finalists(first, job.margin)]
    say(f"pass 2: {len(final)} setting(s) within {job.margin:.0%} of the best (the default "
        f"included), profile {job.profile}, {ROUNDS} alternating rounds")
    for round_index in range(ROUNDS):
        for index, measured in enumerate(final):
            measure(job, measured.setting, job.profile, f"pass2-r{round_index}-{index}",
                    measured)
    final = [m for m in final if m.runs and not m.failure] or final[:1]
    default = final[0] if final[0].setting == first[0].setting else Measured(first[0].setting)
    best = min(final, key=lambda m: m.median_ms)
    low, high = bootstrap_ratio_ci(default.runs, best.runs, 50) if best is not default \
        else (1.0, 1.0)
    return default, best, (low, high)


def proven_faster(ratio_ci: tuple[float, float]) -> bool:
    """Whether the best setting is significantly faster than the default: the whole 95%
    interval of best/default median latency lies below 1."""
    return ratio_ci[1] < 1.0


def chosen(default: Measured, best: Measured, ratio_ci: tuple[float, float]) -> Measured:
    """The setting a tune file saves: the best only when it is proven faster, else the
    default (a gain the data cannot show is not worth a change)."""
    return best if proven_faster(ratio_ci) else default


def tune_file_text(job: TuneJob, model: str, default: Measured, best: Measured,
                   ratio_ci: tuple[float, float]) -> str:
    """The JSON a tune file holds: the `chosen` setting and the evidence."""
    saved = chosen(default, best, ratio_ci)
    return json.dumps({"tune_file": TUNE_FILE_VERSION, "backend": job.backend, "model": model,
                       "threads": saved.setting.threads, "tuning": dict(saved.setting.tuning),
                       "median_ms": saved.median_ms, "default_median_ms": default.median_ms,
                       "ratio_ci": list(ratio_ci), "significant": proven_faster(ratio_ci)},
                      indent=1)


def read_tune_file(path: Path) -> tuple[str, int, dict[str, str]]:
    """(backend, threads, tuning) of a tune file; ValueError naming what is wrong (the
    backend and options are checked against the registry)."""

    try:
        if path.stat().st_size > MAX_TUNE_FILE_BYTES:
            raise ValueError("larger than 64 KiB")
        data = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"{path}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise ValueError(f"{path}: not a tune file ({error})") from None
    if not isinstance(data, dict) or data.get("tune_file") != TUNE_FILE_VERSION:
        raise ValueError(f"{path}: not a tune file of version {TUNE_FILE_VERSION} (write one "
                         f"with harness tune --write)")
    backend, threads, tuning = data.get("backend"), data.get("threads"), data.get("tuning")
    if backend not in backend_names():
        raise ValueError(f"{path}: unknown backend {backend!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
        raise ValueError(f"{path}: threads must be a whole number from 1 to 1024")
    if not isinstance(tuning, dict) or not all(isinstance(v, str) for v in tuning.values()):
        raise ValueError(f"{path}: tuning must map option names to values")
    get_backend(backend).check_tuning(tuning)
    return backend, threads, {str(k): v for k, v in tuning.items()}


def summary_lines(backend: str, default: Measured, best: Measured,
                  ratio_ci: tuple[float, float]) -> list[str]:
    """What tune concludes, in words."""
    lines = [f"default: {default.setting.label}: median {default.median_ms:.4f} ms",
             f"best:    {best.setting.label}: median {best.median_ms:.4f} ms"]
    if best.setting == default.setting:
        return [*lines, f"{backend}: no setting was faster than the default in pass 2; keep it"]
    low, high = ratio_ci
    verdict = (f"significantly faster: best/default median ratio 95% CI {low:.3f}-{high:.3f}"
               if proven_faster(ratio_ci) else
               f"not significantly faster than the default (ratio 95% CI {low:.3f}-"
               f"{high:.3f} includes 1): the default is as good as far as this machine can "
               f"tell")
    return [*lines, f"{backend}: {verdict}"]
