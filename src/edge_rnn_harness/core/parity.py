"""Parity: how far a runtime's outputs are from the reference's on the same inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: |ref| below this counts as this, so relative error stays finite near zero
REL_FLOOR = 1e-6


class ParityError(ValueError):
    """Outputs that cannot be compared with the reference (missing, other element count)."""


@dataclass(frozen=True)
class Tolerance:
    """Element-wise |out - ref| <= atol + rtol * |ref| (numpy.allclose's rule)."""

    atol: float
    rtol: float

    def __post_init__(self) -> None:
        if not (0 <= self.atol < math.inf and 0 <= self.rtol < math.inf):
            raise ValueError(f"tolerances must be finite numbers >= 0, got atol={self.atol} "
                             f"rtol={self.rtol}")


@dataclass(frozen=True)
class OutputError:
    """Errors of one named output over all its elements."""

    max_abs_err: float
    max_rel_err: float
    within: bool


@dataclass(frozen=True)
class ParityResult:
    """Worst errors over every output; `worst_output` names the output furthest beyond (or
    closest to) its tolerance, and `outputs` holds each output's own errors."""

    max_abs_err: float
    max_rel_err: float
    worst_output: str
    within: bool
    outputs: dict[str, OutputError]


def _output_error(out: np.ndarray, ref: np.ndarray, name: str,
                  tolerance: Tolerance) -> tuple[OutputError, float]:
    """The output's errors and its worst element's error / allowed error."""
    ref64 = np.asarray(ref, dtype=np.float64)
    out64 = np.asarray(out, dtype=np.float64)
    if out64.size != ref64.size:
        raise ParityError(f"output {name!r} has {out64.size} elements, the reference "
                          f"{ref64.size}")
    out64 = out64.reshape(ref64.shape)
    finite = np.isfinite(out64) & np.isfinite(ref64)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        abs_err = np.where(finite, np.abs(out64 - ref64), np.inf)
    abs_err[matching_non_finite(out64, ref64)] = 0.0
    allowed = tolerance.atol + tolerance.rtol * np.where(finite, np.abs(ref64), 0.0)
    rel_err = abs_err / np.maximum(np.where(finite, np.abs(ref64), 0.0), REL_FLOOR)
    excess = float(np.max(abs_err / np.maximum(allowed, np.finfo(float).tiny), initial=0.0))
    return OutputError(float(abs_err.max(initial=0.0)), float(rel_err.max(initial=0.0)),
                       bool(np.all(abs_err <= allowed))), excess


def compare_outputs(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                    tolerance: Tolerance) -> ParityResult:
    """Compare every reference output with the same-named output.

    Raises ParityError if an output is missing or has another number of elements.
    max_rel_err is max |out - ref| / max(|ref|, 1e-6) element-wise.
    """
    errors: dict[str, OutputError] = {}
    excess: dict[str, float] = {}
    for name, ref in reference.items():
        if name not in outputs:
            raise ParityError(f"output {name!r} missing; the runtime returned {sorted(outputs)}")
        errors[name], excess[name] = _output_error(outputs[name], ref, name, tolerance)
    worst = max(excess, key=excess.__getitem__)
    return ParityResult(max(e.max_abs_err for e in errors.values()),
                        max(e.max_rel_err for e in errors.values()), worst,
                        all(e.within for e in errors.values()), errors)


def matching_non_finite(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mask of the elements where the reference is NaN or infinite and the output is the
    same: NaN for NaN, the same infinity. Those elements agree (error 0); any other
    non-finite element, on either side, is an infinite error."""
    return (np.isnan(out) & np.isnan(ref)) | (np.isinf(ref) & (out == ref))


def non_finite_count(reference: Mapping[str, np.ndarray]) -> dict[str, int]:
    """How many NaN or infinite elements each reference output has (outputs with none are
    left out)."""
    counts = {name: int(np.size(ref) - np.count_nonzero(np.isfinite(ref)))
              for name, ref in reference.items()}
    return {name: count for name, count in counts.items() if count}


@dataclass(frozen=True)
class SecondOpinion:
    """A second implementation's outputs for the reference windows, kept where the reference
    came from an evaluator (not from shipped expected outputs) and the two disagree: the
    disputed outputs only, stacked over windows. `reference_by` and `by` name the two."""

    reference_by: str
    by: str
    outputs: dict[str, np.ndarray]


def reference_dispute(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                      opinion: SecondOpinion, tolerance: Tolerance) -> str | None:
    """When a runtime misses the reference: the reason text if it matches the second
    opinion on every disputed output (and the reference on the rest), i.e. it is the
    reference that is in doubt, not the runtime; else None."""
    if not opinion.outputs:
        return None
    judged = compare_outputs(outputs, {**reference, **opinion.outputs}, tolerance)
    if not judged.within:
        return None
    disputed = [name for name in opinion.outputs
                if not compare_outputs({name: outputs[name]}, {name: reference[name]},
                                       tolerance).within]
    if not disputed:
        return None
    name = disputed[0]
    gap = compare_outputs({name: opinion.outputs[name]}, {name: reference[name]},
                          tolerance).max_abs_err
    return (f"reference disagrees: output {name!r}: the reference ({opinion.reference_by}) "
            f"and {opinion.by} differ by max_abs_err {gap:.3g}, and this runtime matches "
            f"{opinion.by} (max_abs_err {judged.outputs[name].max_abs_err:.3g}): the "
            f"reference is in doubt, not (only) the runtime; give the expected outputs "
            f"(test_data_set_N/output_K.pb) to judge it")
