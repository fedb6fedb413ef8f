"""One case's row fields from its worker processes' pyperf benchmark: latency statistics
over every value, per-worker metadata aggregated as each metric's declaration says (the
worst worker for errors and memory, the median for load times), derived metrics, and the
verdicts of the checks that follow from the workers' results (parity, degenerate
forecasts, a variant's accuracy policy; `core.status.row_status` decides the row's status).
Untimed; pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_rnn_harness.board.environment import measured_environment
from edge_rnn_harness.core.metrics import all_metrics
from edge_rnn_harness.core.percentiles import interval_fields, median_precision_pct
from edge_rnn_harness.core.status import FAILED, INVALID, OK, Finding
from edge_rnn_harness.core.variants import FP32, Variant
from edge_rnn_harness.measure.stability import stability
from edge_rnn_harness.measure.stats import latency_summary_ms


def forecast_verdict(benchmark: Any) -> Finding:
    """The forecasts check: a worker's `accuracy_problem` (constant, NaN/inf, worse than
    persistence) makes the row `invalid` with the reason."""
    problems = [run.get_metadata().get("accuracy_problem") for run in benchmark.get_runs()]
    problem = next((text for text in problems if text), None)
    return Finding("forecasts") if problem is None else \
        Finding("forecasts", INVALID, f"degenerate forecasts: {problem}")


def growth_verdict(fields: Mapping[str, Any], variant: Variant) -> Finding:
    """The accuracy policy check: a variant whose RMSE grew beyond its policy over the
    same backend's fp32 is `invalid` with the reason."""
    why = variant.rmse_growth_reason(fields.get("rmse"), fields.get("fp32_rmse"))
    return Finding("accuracy_policy", INVALID, f"accuracy policy: {why}") if why else \
        Finding("accuracy_policy")


def measurement_fields(benchmark: Any, batch: int) -> dict[str, Any]:
    """Row fields from one case's pyperf benchmark: latency statistics over every value
    of every worker, and per-worker metadata aggregated (memory and errors: the worst
    worker; load and first-run time: the median worker)."""
    values = benchmark.get_values()
    runs = [run.get_metadata() for run in benchmark.get_runs()]

    def gather(key: str) -> list[Any]:
        return [meta[key] for meta in runs if key in meta]

    fields: dict[str, Any] = {"n_values": len(values), **latency_summary_ms(values, batch),
                              **measured_environment(benchmark.get_metadata())}
    for metric in all_metrics():
        if metric.workers is not None:
            fields[metric.column] = metric.aggregate(gather(metric.column))
    fields["settings"] = (gather("settings") or [""])[0]
    notes = sorted(set(gather("counters_note")))
    if notes:
        fields["counters_note"] = "; ".join(notes)
    fields.update(distribution_fields(benchmark))
    page_cache = benchmark.get_metadata().get("page_cache")
    if page_cache:  # a cold start's
        fields["page_cache"] = page_cache
    versions = gather("backend_version")
    if versions and versions[0] != "-":
        fields["backend_version"] = versions[0]
    return fields


def runs_ms(benchmark: Any) -> list[np.ndarray]:
    """Each worker process's timed values (ms), in process order."""
    return [np.asarray(run.values, np.float64) * 1e3 for run in benchmark.get_runs()
            if run.values]


def distribution_fields(benchmark: Any) -> dict[str, Any]:
    """The percentiles' 95% intervals, the median's precision and the stability verdict,
    from every timed value (and each worker's context switches where counted)."""
    runs = runs_ms(benchmark)
    switches = [run.get_metadata().get("context_switches_per_inf")
                for run in benchmark.get_runs() if run.values]
    verdict, why = stability(runs, switches if any(s is not None for s in switches)
                             else None)
    return {**interval_fields(runs), "median_precision_pct": median_precision_pct(runs),
            "stability": verdict, "stability_reason": why}


def derived_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics derived from a row's other fields (declared with `derive`), computed once
    its measurement is in; a figure that cannot be derived (a missing input) is None."""
    derived = {}
    for metric in all_metrics():
        if metric.derive is not None:
            try:
                derived[metric.column] = metric.derive(fields)
            except (KeyError, TypeError, ZeroDivisionError, ValueError):
                derived[metric.column] = None
    return derived


def parity_verdict(benchmark: Any, variant: Variant) -> Finding:
    """The parity check, from the workers' parity checks: every worker must have
    matched the reference within the tolerance, on every output; the reason quotes the
    worker furthest from it. Beyond it an fp32 row
    `failed` (a broken conversion); a reduced-precision row is `invalid` (it ran, but
    strays further than its variant allows). A row that misses the reference but matches
    the second opinion that disputes it is `invalid` with that reason (the reference is in
    doubt, not only the runtime); an ok row notes NaN/inf the reference held."""
    runs = [run.get_metadata() for run in benchmark.get_runs()]
    failing = [meta for meta in runs if meta.get("parity_ok") != 1]
    if runs and not failing:
        return Finding("parity", OK, runs[0].get("reference_non_finite", ""))
    disputes = [meta.get("reference_disputed") for meta in failing]
    if runs and all(disputes):
        return Finding("parity", INVALID, disputes[0])
    worst = max(failing, key=lambda meta: meta.get("parity_output_abs_err", 0.0),
                default={})
    nan = float("nan")
    return Finding("parity", FAILED if variant.name == FP32 else INVALID,
                   f"parity: output {worst.get('parity_output', '?')!r} max_abs_err "
                   f"{worst.get('parity_output_abs_err', nan):.3g}, max_rel_err "
                   f"{worst.get('parity_output_rel_err', nan):.3g} exceed atol "
                   f"{worst.get('parity_atol', nan):g} + rtol "
                   f"{worst.get('parity_rtol', nan):g} x |reference|")
