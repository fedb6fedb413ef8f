"""The CI gate: pass (0), a real regression beyond a threshold (1), or cannot judge (2).

It fails closed: anything it cannot judge (a case missing from the candidate, a throttled,
invalid or baseline-failed row, rows measured under other settings) is exit 2, never a pass.
A regression needs both a significant change (see harness.compare) and a growth beyond that
metric's threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from edge_rnn_harness.compare import CaseComparison, Comparison, key_text
from edge_rnn_harness.metrics import METRIC_BY_COLUMN, default_thresholds

EXIT_PASS, EXIT_REGRESSION, EXIT_CANNOT_JUDGE = 0, 1, 2


@dataclass(frozen=True)
class Thresholds:
    """Largest tolerated growth per metric column, as fractions (0.10 = 10%); None: that
    metric is not gated. Defaults come from harness.metrics."""

    limits: Mapping[str, float | None] = field(default_factory=default_thresholds)

    def __post_init__(self) -> None:
        for column, value in self.limits.items():
            if column not in METRIC_BY_COLUMN:
                raise ValueError(f"{column!r} is not a gated metric")
            if value is not None and not value >= 0:
                raise ValueError(f"{METRIC_BY_COLUMN[column].gate_option} must be >= 0, "
                                 f"got {value}")

    @classmethod
    def with_limits(cls, **limits: float | None) -> Thresholds:
        """The defaults with some limits replaced, by column name."""
        return cls({**default_thresholds(), **limits})

    def for_column(self, column: str) -> float | None:
        """The threshold for a results column, or None when that metric is not gated."""
        return self.limits.get(column)


@dataclass
class Verdict:
    """The gate's decision: exit code, and the named regressions and unjudgeable cases."""

    regressions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """2 if anything could not be judged, else 1 on any regression, else 0."""
        if self.problems:
            return EXIT_CANNOT_JUDGE
        return EXIT_REGRESSION if self.regressions else EXIT_PASS


def _case_problems(case: CaseComparison, allow_mismatch: bool) -> list[str]:
    name = key_text(case.key)
    problems = []
    for side, row in (("baseline", case.base_row), ("candidate", case.cand_row)):
        if row["throttled"] is True:
            problems.append(f"{name}: {side} was thermally throttled; re-measure it")
        if row["status"] == "invalid":
            problems.append(f"{name}: {side} row is invalid ({row['reason']})")
    if case.base_row["status"] != "ok":
        problems.append(f"{name}: baseline status is {case.base_row['status']}; "
                        f"nothing to compare against")
    elif case.cand_row["status"] in ("skipped", "unsupported"):
        problems.append(f"{name}: candidate was skipped ({case.cand_row['reason']})")
    if case.mismatches and not allow_mismatch:
        problems.append(f"{name}: measured under different settings ("
                        + "; ".join(case.mismatches) + "); use --allow-mismatch to compare")
    return problems


def _case_regressions(case: CaseComparison, thresholds: Thresholds) -> list[str]:
    name = key_text(case.key)
    if case.cand_row["status"] == "failed":
        return [f"{name}: candidate failed ({case.cand_row['reason']})"]
    found = []
    for change in case.changes:
        limit = thresholds.for_column(change.metric.column)
        if limit is None or pd.isna(change.ratio) or not change.significant:
            continue
        if change.ratio - 1 > limit:
            found.append(f"{name}: {change.metric.label} +{(change.ratio - 1) * 100:.1f}% "
                         f"({change.base:.6g} -> {change.cand:.6g}), over the "
                         f"{limit * 100:g}% limit")
    return found


def judge(comparison: Comparison, thresholds: Thresholds,
          allow_mismatch: bool = False) -> Verdict:
    """Apply the thresholds to a comparison."""
    verdict = Verdict()
    for key in comparison.only_base:
        verdict.problems.append(f"{key_text(key)}: missing from the candidate")
    if not comparison.cases and not comparison.only_base:
        verdict.problems.append("no cases to compare")
    for case in comparison.cases:
        problems = _case_problems(case, allow_mismatch)
        verdict.problems.extend(problems)
        if problems:
            continue
        regressions = _case_regressions(case, thresholds)
        verdict.regressions.extend(regressions)
        if not regressions:
            verdict.passed.append(key_text(case.key))
    return verdict
