"""Compare two runs case by case: what changed, by how much, and whether it is real.

Counted figures (instructions per inference) are judged against their own measured
spread, never resampled. Latency changes are judged on the raw per-inference values in
the pyperf JSON beside each CSV: a Mann-Whitney U rank test, and a bootstrap confidence interval of the median (or
p90) ratio that resamples worker processes first and values within them, since values of
one process share its memory layout and are not independent. A change smaller than
`min_effect` is never significant. Other metrics are single numbers per case: a change is
significant when it is at least `min_effect`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from edge_rnn_harness.board.environment import EMULATED_MARK
from edge_rnn_harness.core.metrics import Metric, judged_metrics
from edge_rnn_harness.core.plan import bench_name, case_label, legacy_bench_name
from edge_rnn_harness.core.results import KEY_COLUMNS, read_results
from edge_rnn_harness.measure.stats import (
    bootstrap_ratio_ci,
    paired_ratio_ci,
    raw_values,
)

#: columns that must agree for two rows to be comparable
SETTINGS_COLUMNS = ("device", "cpu", "cores", "backend_version", "settings")


@dataclass(frozen=True)
class Change:
    """One metric of one case: baseline, candidate, candidate/baseline ratio, and the test.

    p_value and the CI are None where raw values were not available or do not apply.
    """

    metric: Metric
    base: float
    cand: float
    ratio: float
    significant: bool
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    note: str = ""


@dataclass(frozen=True)
class CaseComparison:
    """A case present in both runs."""

    key: tuple
    base_row: Mapping[str, object]
    cand_row: Mapping[str, object]
    changes: list[Change]
    mismatches: list[str]
    #: what makes the rows unfit to judge (e.g. an ok row without latency, a CSV that
    #: disagrees with its pyperf JSON)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """Every joined case, the keys present on one side only, and notes on what the two
    sides measured (`identity_notes`: models or artifacts that differ)."""

    cases: list[CaseComparison]
    only_base: list[tuple] = field(default_factory=list)
    only_cand: list[tuple] = field(default_factory=list)
    identity_notes: list[str] = field(default_factory=list)


def key_text(key: tuple) -> str:
    """A case key as text (the case's one label)."""
    return case_label(dict(zip(KEY_COLUMNS, key)))


def resolve_pair(path: Path) -> tuple[Path, Path]:
    """(CSV, pyperf JSON) for a path to either one; ValueError when the CSV is missing."""
    csv = path.with_suffix(".csv") if path.suffix == ".json" else path
    if not csv.is_file():
        raise ValueError(f"{path}: no results CSV at {csv}")
    return csv, csv.with_suffix(".json")


def _latency_change(metric: Metric, base: float, cand: float, base_runs: list[np.ndarray],
                    cand_runs: list[np.ndarray], min_effect: float, alpha: float,
                    paired: bool) -> Change:
    from scipy.stats import mannwhitneyu, wilcoxon

    ratio = cand / base
    if len(base_runs) == len(cand_runs) and all(
            np.array_equal(b, c) for b, c in zip(base_runs, cand_runs)):
        # one measurement on both sides (a file against itself): nothing was sampled twice
        return Change(metric, base, cand, ratio, False, 1.0, 1.0, 1.0,
                      note="identical measurements")
    if paired:  # signed-rank test on the log ratio of calls timed side by side
        p_value = float(wilcoxon(np.log(np.concatenate(cand_runs))
                                 - np.log(np.concatenate(base_runs))).pvalue)
        low, high = paired_ratio_ci(base_runs, cand_runs, float(metric.percentile))  # type: ignore[arg-type]
    else:
        p_value = float(mannwhitneyu(np.concatenate(cand_runs), np.concatenate(base_runs),
                                     alternative="two-sided").pvalue)
        low, high = bootstrap_ratio_ci(base_runs, cand_runs, float(metric.percentile))  # type: ignore[arg-type]
    significant = p_value < alpha and not low <= 1 <= high and abs(ratio - 1) >= min_effect
    return Change(metric, base, cand, ratio, significant, p_value, low, high,
                  note="paired: interleaved calls" if paired else "")


#: the least run-to-run spread a counted figure is judged with (instructions per inference
#: under callgrind moved 0.03% between two runs of the same code here; see docs/measured)
MIN_COUNT_SPREAD = 0.001


def count_change(metric: Metric, base: float, cand: float, spreads: list[object]) -> Change:
    """A counted, deterministic figure's change, judged against its measured spread: the
    ratio's interval is ratio x (1 +- the larger of the rows' spreads and
    MIN_COUNT_SPREAD); significant when the change exceeds that spread."""
    noise = max([MIN_COUNT_SPREAD, *(float(s) / 100 for s in spreads
                                     if s is not None and not pd.isna(s))])
    ratio = cand / base
    return Change(metric, base, cand, ratio, abs(ratio - 1) > noise, None,
                  ratio * (1 - noise), ratio * (1 + noise),
                  note=f"counted; judged against a spread of {noise:.2%}")


def _change(metric: Metric, base_row: Mapping, cand_row: Mapping,
            runs: tuple[list[np.ndarray], list[np.ndarray]], min_effect: float,
            alpha: float) -> Change:
    base, cand = base_row[metric.column], cand_row[metric.column]
    if pd.isna(base) or pd.isna(cand) or float(base) <= 0:
        return Change(metric, np.nan, np.nan, np.nan, False, note="not measured")
    base, cand = float(base), float(cand)
    if metric.spread is not None:
        return count_change(metric, base, cand,
                            [base_row.get(metric.spread), cand_row.get(metric.spread)])
    if metric.percentile is not None and runs[0] and runs[1]:
        return _latency_change(metric, base, cand, runs[0], runs[1], min_effect, alpha,
                               interleaved_pair(base_row, cand_row, runs))
    note = "no raw values: effect size only" if metric.percentile is not None else ""
    return Change(metric, base, cand, cand / base, abs(cand / base - 1) >= min_effect,
                  note=note)


def interleaved_pair(base_row: Mapping, cand_row: Mapping,
                     runs: tuple[list[np.ndarray], list[np.ndarray]]) -> bool:
    """Whether the two rows were timed call by call in the same worker processes (one
    interleaved A/B run): then value i of each side's process p are neighbours."""
    return (base_row["interleaving"] == cand_row["interleaving"] == "calls"
            and base_row["run_id"] == cand_row["run_id"]
            and [len(r) for r in runs[0]] == [len(r) for r in runs[1]])


def _mismatches(base_row: Mapping, cand_row: Mapping) -> list[str]:
    found = []
    names = (base_row["device_name"], cand_row.get(MEASURED_ON, cand_row["device_name"]))
    if not any(pd.isna(name) for name in names) and str(names[0]) != str(names[1]):
        found.append(f"device_name: {names[0]} vs {names[1]} (rows from different devices)")
    found += [f"{column}: {base_row[column]!s} vs {cand_row[column]!s}"
             for column in SETTINGS_COLUMNS
             if not (pd.isna(base_row[column]) and pd.isna(cand_row[column]))
             and str(base_row[column]) != str(cand_row[column])]
    meters = {str(base_row["power_meter"]), str(cand_row["power_meter"])}
    if len(meters) == 2 and not meters & {"none", "<NA>"}:  # two meters measure two things
        found.append(f"power_meter: {base_row['power_meter']} vs {cand_row['power_meter']}")
    return found


def device_problems(base_row: Mapping, cand_row: Mapping) -> list[str]:
    """Why two rows cannot be judged against each other whatever --allow-mismatch says: one
    measured under emulation, the other on a real device."""
    emulated = [str(row["device"]).endswith(EMULATED_MARK) for row in (base_row, cand_row)]
    if emulated[0] == emulated[1]:
        return []
    return [(f"device mismatch: baseline measured on {base_row['device']}, candidate on "
            f"{cand_row['device']}; an emulated row's latency says nothing about a real "
            f"device, so emulated rows are compared only with emulated rows")]


def bench_name_in(raw: Mapping[str, list[np.ndarray]], row: Mapping) -> str:
    """The row's benchmark name in `raw`: the current one, or the one older runs used."""
    name = bench_name(row)
    return name if name in raw or legacy_bench_name(row) not in raw else legacy_bench_name(row)


#: largest relative difference between a CSV's median latency and its JSON's (the CSV keeps
#: 9 significant digits)
CSV_JSON_TOLERANCE = 1e-6


def row_problems(row: Mapping, runs: list[np.ndarray], side: str) -> list[str]:
    """Why an `ok` row's latency cannot be judged: missing, not a positive finite number,
    or not what the raw values beside it give."""
    if row["status"] != "ok":
        return []
    median = row["latency_median_ms"]
    if pd.isna(median):
        return [f"{side} row is ok but its latency_median_ms is empty"]
    if not np.isfinite(float(median)) or float(median) <= 0:
        return [f"{side} row is ok but its latency_median_ms is {median!s}: not a positive number"]
    if runs:
        values = np.concatenate(runs)
        if not np.all(np.isfinite(values)):  # pyperf itself refuses values <= 0
            return [f"{side} pyperf JSON holds latencies that are not finite numbers"]
        raw_ms = float(np.median(values)) * 1e3
        if abs(raw_ms / float(median) - 1) > CSV_JSON_TOLERANCE:
            return [(f"{side} CSV says median {float(median):.6g} ms but its pyperf JSON's "
                     f"values give {raw_ms:.6g} ms; the two files do not belong together")]
    return []


#: the candidate column keeping its own device_name when align_devices joins it to another's
MEASURED_ON = "measured_on"


def align_devices(base: pd.DataFrame, cand: pd.DataFrame) -> None:
    """When each run comes from one device (a local run: no device_name; a fleet run of one
    device: its name) and the two differ, join the candidate's rows to the baseline's
    device, keeping the candidate's own name in MEASURED_ON: the rows are compared, and
    `_mismatches` says they come from different devices. Runs of several devices join per
    device."""
    names = [set(frame["device_name"].astype(object).where(frame["device_name"].notna(), None))
             for frame in (base, cand)]
    cand[MEASURED_ON] = cand["device_name"]
    if len(names[0]) == 1 and len(names[1]) == 1 and names[0] != names[1]:
        cand["device_name"] = base["device_name"].iloc[0] if len(base) else pd.NA
        cand["device_name"] = cand["device_name"].astype("string")


def _keyed(frame: pd.DataFrame, path: Path) -> dict[tuple, dict]:
    rows: dict[tuple, dict] = {}
    for record in frame.to_dict("records"):
        key = tuple(record[column] for column in KEY_COLUMNS)
        if key in rows:
            raise ValueError(f"{path}: case {key_text(key)} appears twice")
        rows[key] = record
    return rows


def compare_runs(base_path: Path, cand_path: Path, min_effect: float = 0.05,
                 alpha: float = 0.01, rename: Mapping[str, str] | None = None,
                 rename_variants: Mapping[str, str] | None = None) -> Comparison:
    """Join the two runs on the case key and compare every metric of every joined case.

    rename maps candidate model names to baseline ones (to compare two models as one case);
    rename_variants does the same for variants (a quantized candidate against fp32).
    Raises ValueError for unreadable or foreign files.
    """
    base_csv, base_json = resolve_pair(base_path)
    cand_csv, cand_json = resolve_pair(cand_path)
    base_frame, cand_frame = read_results(base_csv), read_results(cand_csv)
    base_raw, cand_raw = raw_values(base_json), raw_values(cand_json)
    cand_frame["bench_name"] = [bench_name_in(cand_raw, r) for r in cand_frame.to_dict("records")]
    for column, mapping in (("model", rename), ("variant", rename_variants)):
        if mapping:
            cand_frame[column] = cand_frame[column].replace(dict(mapping))
    align_devices(base_frame, cand_frame)
    base_rows, cand_rows = _keyed(base_frame, base_csv), _keyed(cand_frame, cand_csv)
    cases = []
    for key, base_row in base_rows.items():
        if key not in cand_rows:
            continue
        cand_row = cand_rows[key]
        runs = (base_raw.get(bench_name_in(base_raw, base_row), []),
                cand_raw.get(cand_row["bench_name"], []))
        problems = row_problems(base_row, runs[0], "baseline") + \
            row_problems(cand_row, runs[1], "candidate") + device_problems(base_row, cand_row)
        changes = [] if problems else [_change(metric, base_row, cand_row, runs, min_effect,
                                               alpha) for metric in judged_metrics()]
        cases.append(CaseComparison(key, base_row, cand_row, changes,
                                    _mismatches(base_row, cand_row), problems))
    return Comparison(cases,
                      only_base=[k for k in base_rows if k not in cand_rows],
                      only_cand=[k for k in cand_rows if k not in base_rows],
                      identity_notes=identity_notes(cases))


def _identity(row: Mapping, column: str) -> str | None:
    value = row.get(column)
    return None if value is None or pd.isna(value) else str(value)


def identity_notes(cases: list[CaseComparison]) -> list[str]:
    """What the two sides measured, where it differs: per model, a model identity that
    differs (two models compared, not two runs of one), else per case an artifact that
    differs (the same model exported again); rows without identity (results schema before
    8) say nothing."""
    notes: dict[str, str] = {}
    for case in cases:
        model = str(case.base_row["model"])
        base, cand = (_identity(case.base_row, "model_id"),
                      _identity(case.cand_row, "model_id"))
        if base and cand and base != cand:
            notes.setdefault(model, f"{model}: the baseline measured model {base[:12]}, the "
                                    f"candidate model {cand[:12]} (two models compared, not "
                                    f"two runs of one)")
            continue
        artifacts = (_identity(case.base_row, "artifact_id"),
                     _identity(case.cand_row, "artifact_id"))
        if all(artifacts) and artifacts[0] != artifacts[1] and model not in notes:
            notes[key_text(case.key)] = (f"{key_text(case.key)}: the same model, another "
                                         f"artifact (exported again: converter or settings)")
    return list(notes.values())
