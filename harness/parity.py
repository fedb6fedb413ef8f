"""Parity: how far a runtime's outputs are from the reference's on the same inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: |ref| below this counts as this, so relative error stays finite near zero
REL_FLOOR = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """Element-wise |out - ref| <= atol + rtol * |ref| (numpy.allclose's rule)."""

    atol: float
    rtol: float

    def __post_init__(self) -> None:
        if self.atol < 0 or self.rtol < 0:
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol} rtol={self.rtol}")


#: per variant; fp32 runtimes must agree with PyTorch to float32 round-off
TOLERANCES: dict[str, Tolerance] = {"fp32": Tolerance(atol=1e-5, rtol=1e-5)}


@dataclass(frozen=True)
class ParityResult:
    """Worst errors over every output element; `worst_output` names where max abs occurs."""

    max_abs_err: float
    max_rel_err: float
    worst_output: str
    within: bool


def compare_outputs(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                    tolerance: Tolerance) -> ParityResult:
    """Compare every reference output with the same-named output.

    Raises ValueError if an output is missing or has another number of elements.
    max_rel_err is max |out - ref| / max(|ref|, 1e-6) element-wise.
    """
    max_abs, max_rel, worst, within = 0.0, 0.0, "", True
    for name, ref in reference.items():
        if name not in outputs:
            raise ValueError(f"output {name!r} missing; the runtime returned {sorted(outputs)}")
        ref64 = np.asarray(ref, dtype=np.float64)
        out64 = np.asarray(outputs[name], dtype=np.float64)
        if out64.size != ref64.size:
            raise ValueError(f"output {name!r} has {out64.size} elements, "
                             f"the reference {ref64.size}")
        out64 = out64.reshape(ref64.shape)
        abs_err = np.abs(out64 - ref64)
        if not np.all(np.isfinite(out64)):
            abs_err = np.full_like(ref64, np.inf)
        rel_err = abs_err / np.maximum(np.abs(ref64), REL_FLOOR)
        if float(abs_err.max(initial=0.0)) >= max_abs:
            max_abs, worst = float(abs_err.max(initial=0.0)), name
        max_rel = max(max_rel, float(rel_err.max(initial=0.0)))
        within &= bool(np.all(abs_err <= tolerance.atol + tolerance.rtol * np.abs(ref64)))
    return ParityResult(max_abs, max_rel, worst, within)
