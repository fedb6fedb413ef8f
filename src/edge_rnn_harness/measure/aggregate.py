"""One case's row fields from its worker processes' pyperf benchmark: latency statistics
over every value, per-worker metadata aggregated (the worst worker for errors and memory,
the median for load times), and the status verdicts that follow from the workers' checks
(parity, degenerate forecasts, a variant's accuracy policy). Untimed; pure functions."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from edge_rnn_harness.board.environment import measured_environment
from edge_rnn_harness.core.variants import FP32, Variant
from edge_rnn_harness.measure.stats import latency_summary_ms


def quality_verdict(benchmark: Any, variant: Variant) -> dict[str, str]:
    """status and reason from the workers' checks: the parity verdict, then an ok row
    whose forecasts are degenerate (a worker's `accuracy_problem`: constant, NaN/inf,
    worse than persistence) becomes `invalid` with the reason."""
    verdict = parity_verdict(benchmark, variant)
    problems = [run.get_metadata().get("accuracy_problem") for run in benchmark.get_runs()]
    problem = next((text for text in problems if text), None)
    if verdict["status"] != "ok" or problem is None:
        return verdict
    return {"status": "invalid", "reason": f"degenerate forecasts: {problem}"}


def growth_verdict(fields: Mapping[str, Any], variant: Variant) -> dict[str, str]:
    """An ok variant row whose RMSE grew beyond its variant's policy over the same
    backend's fp32 becomes `invalid` with the reason; else nothing."""
    why = variant.rmse_growth_reason(fields.get("rmse"), fields.get("fp32_rmse"))
    if fields.get("status") != "ok" or not why:
        return {}
    return {"status": "invalid", "reason": f"accuracy policy: {why}"}


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
    for key in ("load_ms", "first_run_ms", "runtime_latency_median_ms"):
        fields[key] = statistics.median(gather(key)) if gather(key) else None
    for key in ("peak_rss_mb", "rss_delta_mb", "max_abs_err", "max_rel_err", "rmse", "mae",
                "calibration_windows"):
        fields[key] = max(gather(key)) if gather(key) else None
    fields["settings"] = (gather("settings") or [""])[0]
    versions = gather("backend_version")
    if versions and versions[0] != "-":
        fields["backend_version"] = versions[0]
    return fields


def parity_verdict(benchmark: Any, variant: Variant) -> dict[str, str]:
    """status ok, or the reason, from the workers' parity checks: every worker must have
    matched the reference within the tolerance, on every output; the reason quotes the
    worker furthest from it. Beyond it an fp32 row
    `failed` (a broken conversion); a reduced-precision row is `invalid` (it ran, but
    strays further than its variant allows). A row that misses the reference but matches
    the second opinion that disputes it is `invalid` with that reason (the reference is in
    doubt, not only the runtime); an ok row notes NaN/inf the reference held."""
    runs = [run.get_metadata() for run in benchmark.get_runs()]
    failing = [meta for meta in runs if meta.get("parity_ok") != 1]
    if runs and not failing:
        return {"status": "ok", "reason": runs[0].get("reference_non_finite", "")}
    disputes = [meta.get("reference_disputed") for meta in failing]
    if runs and all(disputes):
        return {"status": "invalid", "reason": disputes[0]}
    worst = max(failing, key=lambda meta: meta.get("parity_output_abs_err", 0.0),
                default={})
    nan = float("nan")
    return {"status": "failed" if variant.name == FP32 else "invalid",
            "reason": (f"parity: output {worst.get('parity_output', '?')!r} max_abs_err "
                       f"{worst.get('parity_output_abs_err', nan):.3g}, max_rel_err "
                       f"{worst.get('parity_output_rel_err', nan):.3g} exceed atol "
                       f"{worst.get('parity_atol', nan):g} + rtol "
                       f"{worst.get('parity_rtol', nan):g} x |reference|")}
