"""The one definition of a precision variant: what it is, whether it calibrates, how far its
outputs may stray from the fp32 reference (its parity policy) and when its forecasts are
not a result at all (its accuracy policy). Adapters, the exporter, the worker, the CLI and
the report read variants from here only.

A variant names what was asked for; each adapter records in its `settings` what its
runtime really did with it (which layers its quantizer touched, what stayed in float), and
a pair a runtime cannot do is an `unsupported` row with the reason, never a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_rnn_harness.core.parity import Tolerance

#: training-split windows a calibrating variant's quantizer sees, unless told otherwise
DEFAULT_CALIBRATION_WINDOWS = 128
#: predictions whose spread (max - min) is below this fraction of the targets' spread
#: count as constant
CONSTANT_SPREAD = 1e-6


@dataclass(frozen=True)
class Variant:
    """A precision variant.

    name: the --variants name. summary: words for people.
    calibrated: its quantizer needs calibration windows (training split only).
    float_precision: what the float parts compute in ("fp32" or "fp16"): adapters set their
        precision flags from it (OpenVINO's hint, ncnn's fp16 options).
    parity: the largest difference from the fp32 reference's outputs on the parity
        windows; beyond it an fp32 row is `failed` (a broken conversion) and any other
        variant's row `invalid` (it strays further than its precision allows).
    max_rmse_growth: accuracy policy: a variant whose test RMSE exceeds the same
        backend's fp32 RMSE by more than this fraction is `invalid`: its forecasts are no
        longer the model's (None: not judged, fp32 itself).
    max_rmse_vs_persistence: accuracy policy: a variant whose test RMSE exceeds this
        multiple of the persistence forecast's is `invalid` (it forecasts worse than
        repeating the last hour; None for fp32, whose accuracy is the model's own, however
        poor: an untrained model is measured, not refused). Constant or non-finite
        predictions are always invalid.
    """

    name: str
    summary: str
    calibrated: bool
    parity: Tolerance
    float_precision: str = "fp32"
    max_rmse_growth: float | None = None
    max_rmse_vs_persistence: float | None = 1.0

    def rmse_growth_reason(self, rmse: float | None, fp32_rmse: float | None) -> str:
        """Why this variant's RMSE is too far above its backend's fp32 RMSE, or ""."""
        if self.max_rmse_growth is None or rmse is None or not fp32_rmse:
            return ""
        if rmse <= (1 + self.max_rmse_growth) * fp32_rmse:  # at the limit: within
            return ""
        growth = rmse / fp32_rmse - 1
        return (f"RMSE {rmse:.4g} is {growth:.0%} above this backend's fp32 {fp32_rmse:.4g} "
                f"({self.name} allows {self.max_rmse_growth:.0%})")


FP32 = "fp32"

VARIANTS: dict[str, Variant] = {variant.name: variant for variant in (
    Variant(FP32, "float32 weights and arithmetic", calibrated=False,
            parity=Tolerance(atol=1e-5, rtol=1e-5), max_rmse_vs_persistence=None),
    Variant("fp16", "float16 weights, float16 arithmetic where the runtime has it",
            calibrated=False, parity=Tolerance(atol=1e-2, rtol=1e-2), float_precision="fp16",
            max_rmse_growth=0.05),
    Variant("int8-dynamic", "int8 weights, activations quantized on the fly or kept float",
            calibrated=False, parity=Tolerance(atol=0.1, rtol=0.1), max_rmse_growth=0.05),
    Variant("int8-static", "int8 weights and activations, ranges from calibration windows",
            calibrated=True, parity=Tolerance(atol=0.1, rtol=0.1), max_rmse_growth=0.05),
)}

VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)


def get_variant(name: str) -> Variant:
    """The variant `name`; ValueError naming the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose from: "
                         f"{', '.join(VARIANT_NAMES)}") from None


def degenerate_reason(predictions: np.ndarray, targets: np.ndarray | None,
                      baseline_rmse: float | None, variant: Variant) -> str:
    """Why these forecasts are not a result, or "" when they are one.

    predictions: the model's outputs over the windows (n, ...). targets: the true values
    (None: judged on the outputs alone). baseline_rmse: the persistence forecast's RMSE
    on the same windows (None: not judged against it). Untimed; numpy only.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    if not np.all(np.isfinite(predictions)):
        bad = int(np.sum(~np.isfinite(predictions)))
        return f"{bad} of {predictions.size} predictions are NaN or infinite"
    spread = float(np.ptp(predictions)) if predictions.size else 0.0
    scale = float(np.ptp(targets)) if targets is not None and targets.size else \
        float(np.max(np.abs(predictions), initial=1.0))
    if len(predictions) > 1 and spread <= CONSTANT_SPREAD * max(scale, 1e-12):
        return (f"constant output: every window predicts {float(predictions.flat[0]):.6g} "
                f"(spread {spread:.3g})")
    limit = variant.max_rmse_vs_persistence
    if targets is not None and baseline_rmse is not None and limit is not None:
        diff = predictions - np.asarray(targets, dtype=np.float64).reshape(predictions.shape)
        rmse = float(np.sqrt(np.mean(diff ** 2)))
        if rmse > limit * baseline_rmse:
            return (f"RMSE {rmse:.4g} is worse than the persistence forecast's "
                    f"{baseline_rmse:.4g}")
    return ""
