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
    abs_err = np.abs(out64 - ref64)
    if not np.all(np.isfinite(out64)):
        abs_err = np.full_like(ref64, np.inf)
    allowed = tolerance.atol + tolerance.rtol * np.abs(ref64)
    rel_err = abs_err / np.maximum(np.abs(ref64), REL_FLOOR)
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
