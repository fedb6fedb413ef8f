"""The CI gate: pass (0), a real regression beyond a threshold (1), or cannot judge (2).

Each gated metric of each case gets one of three verdicts:
- regression: the change is significant and beyond the metric's threshold;
- pass: the data rule out a growth beyond the threshold (for latency: the upper end of the
  ratio's 95% interval is below 1 + threshold; for a single number per case, such as
  memory, size or RMSE: the growth itself is within the threshold);
- inconclusive: neither; the gate says how wide a change this data could resolve and what
  to measure to decide.
It fails closed: an inconclusive metric, or anything it cannot judge (a case missing from
the candidate, a throttled, invalid or baseline-failed row, rows measured under other
settings, malformed latencies), is exit 2, never a pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from edge_rnn_harness.analysis.compare import CaseComparison, Change, Comparison, key_text
from edge_rnn_harness.core.metrics import Metric, default_thresholds, metric_by_column

EXIT_PASS, EXIT_REGRESSION, EXIT_CANNOT_JUDGE = 0, 1, 2
REGRESSION, PASS, INCONCLUSIVE = "regression", "pass", "inconclusive"
#: what to do when latency is inconclusive
MORE_DATA_HINT = ("measure more worker processes (--profile default or rigorous), or use "
                  "interleaved A/B mode (harness ab) or --history")


@dataclass(frozen=True)
class Thresholds:
    """Largest tolerated growth per metric column, as fractions (0.10 = 10%); None: that
    metric is not gated. Defaults come from core.metrics."""

    limits: Mapping[str, float | None] = field(default_factory=default_thresholds)

    def __post_init__(self) -> None:
        for column, value in self.limits.items():
            metric = metric_by_column(column)
            if metric is None or not metric.judged:
                raise ValueError(f"{column!r} is not a gated metric")
            if value is not None and not value >= 0:
                raise ValueError(f"{metric.gate_option} must be >= 0, "
                                 f"got {value}")

    @classmethod
    def with_limits(cls, **limits: float | None) -> Thresholds:
        """The defaults with some limits replaced, by column name."""
        return cls({**default_thresholds(), **limits})

    def for_column(self, column: str) -> float | None:
        """The threshold for a results column, or None when that metric is not gated."""
        return self.limits.get(column)


@dataclass(frozen=True)
class MetricVerdict:
    """One gated metric of one case: its verdict and a line saying why."""

    case: str
    metric: Metric
    verdict: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    detail: str


@dataclass
class Verdict:
    """The gate's decision: exit code, the named regressions, inconclusive metrics and
    unjudgeable cases, and every metric's verdict."""

    regressions: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    metrics: list[MetricVerdict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """2 if anything could not be judged or was inconclusive, else 1 on any
        regression, else 0."""
        if self.problems or self.inconclusive:
            return EXIT_CANNOT_JUDGE
        return EXIT_REGRESSION if self.regressions else EXIT_PASS


def judge_ratio(ratio: float, low: float | None, high: float | None, significant: bool,
                limit: float) -> str:
    """The three-way verdict of a growth `ratio` (candidate / baseline) against `limit`
    (a fraction), given its interval [low, high] (None: a single exact number)."""
    if significant and ratio - 1 > limit:
        return REGRESSION
    if low is None or high is None:
        return PASS if ratio - 1 <= limit else INCONCLUSIVE
    return PASS if high < 1 + limit else INCONCLUSIVE


def _metric_verdict(name: str, change: Change, limit: float) -> MetricVerdict:
    metric = change.metric
    if math.isnan(change.ratio):
        return MetricVerdict(name, metric, INCONCLUSIVE, math.nan, None, None,
                             f"{name}: {metric.label} was measured on one side only")
    interval = metric.percentile is not None or metric.spread is not None
    if interval and change.ci_high is None:
        return MetricVerdict(name, metric, INCONCLUSIVE, change.ratio, None, None,
                             f"{name}: {metric.label} has no raw values to judge (the pyperf "
                             f"JSON beside a CSV is missing or lacks this case)")
    significant = change.significant if interval else True
    verdict = judge_ratio(change.ratio, change.ci_low if interval else None,
                          change.ci_high if interval else None, significant, limit)
    digits = 2 if metric.spread is not None else 1  # counted figures move by hundredths
    growth = f"{metric.label} {(change.ratio - 1) * 100:+.{digits}f}% ({change.base:.6g} -> " \
             f"{change.cand:.6g})"
    if verdict == REGRESSION:
        detail = f"{name}: {growth}, over the {limit * 100:g}% limit"
    elif verdict == PASS:
        detail = f"{name}: {growth}, within the {limit * 100:g}% limit"
    else:
        resolves = (change.ci_high - change.ci_low) / 2 * 100  # type: ignore[operator]
        detail = (f"{name}: {growth}; its 95% interval {change.ci_low:.3f}-"
                  f"{change.ci_high:.3f} does not rule out a growth beyond the "
                  f"{limit * 100:g}% limit (this data resolves changes of about "
                  f"+-{resolves:.0f}%): {MORE_DATA_HINT}")
    return MetricVerdict(name, metric, verdict, change.ratio, change.ci_low if interval
                         else None, change.ci_high if interval else None, detail)


def _case_problems(case: CaseComparison, allow_mismatch: bool) -> list[str]:
    name = key_text(case.key)
    problems = [f"{name}: {problem}" for problem in case.problems]
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


def _case_metrics(case: CaseComparison, thresholds: Thresholds) -> list[MetricVerdict]:
    """The verdict of every gated metric measured on either side."""
    name = key_text(case.key)
    found = []
    for change in case.changes:
        limit = thresholds.for_column(change.metric.column)
        measured = [pd.notna(row[change.metric.column])
                    for row in (case.base_row, case.cand_row)]
        if limit is not None and any(measured):
            verdict = _metric_verdict(name, change, limit)
            unstable = _unstable(case) if verdict.verdict == INCONCLUSIVE else ""
            found.append(dataclasses.replace(verdict, detail=verdict.detail + unstable)
                         if unstable else verdict)
    return found


def _unstable(case: CaseComparison) -> str:
    """Which side's case the stability verdict calls unstable, and why ("" if neither)."""
    said = [f"the {side} is {row.get('stability')} ({row.get('stability_reason')})"
            for side, row in (("baseline", case.base_row), ("candidate", case.cand_row))
            if not pd.isna(row.get("stability")) and row.get("stability") != "stable"]
    return f"; {' and '.join(said)}" if said else ""


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
        if case.cand_row["status"] == "failed":
            verdict.regressions.append(f"{key_text(case.key)}: candidate failed "
                                       f"({case.cand_row['reason']})")
            continue
        metrics = _case_metrics(case, thresholds)
        verdict.metrics.extend(metrics)
        verdict.regressions.extend(m.detail for m in metrics if m.verdict == REGRESSION)
        verdict.inconclusive.extend(m.detail for m in metrics if m.verdict == INCONCLUSIVE)
        if all(m.verdict == PASS for m in metrics):
            verdict.passed.append(key_text(case.key))
    return verdict
