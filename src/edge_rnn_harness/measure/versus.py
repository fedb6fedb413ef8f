"""Child program: a variant against its own backend's fp32,
`python -P -m edge_rnn_harness.measure.versus JOB.json --fp32-artifact PATH -o OUT.json`.

Run by the runner after a non-fp32 case was measured, in its own process so that loading
a second model changes none of the case's memory figures. Both artifacts are prepared by
the same backend and run on the same windows (the test split's where the bundle has it,
else the parity windows); untimed. Writes {"fp32_max_abs_err": ..., "fp32_rmse": ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.bundle.reader import load_reference, load_windows
from edge_rnn_harness.core.errors import error_line
from edge_rnn_harness.measure.worker import WorkerJob, open_model, predict_windows
from edge_rnn_harness.models.metrics import rmse


def _outputs(model: Any, windows: list, testset: tuple | None) -> np.ndarray:
    """The model's forecasts on the test windows, else its first output on the parity
    windows."""

    if testset is not None:
        xs, ys = testset
        return predict_windows(model, xs, ys.shape[1])
    name = next(iter(windows[0][1]))
    return np.stack([np.asarray(model.run(model.feed(inputs))[name], np.float64)
                     for inputs, _ in windows])


def versus_fp32(job: Any, fp32_artifact: Path) -> dict[str, float]:
    """fp32_max_abs_err: largest |variant - fp32| over the windows; fp32_rmse: the fp32
    artifact's RMSE on the test windows (absent without them)."""

    windows = load_reference(Path(job.reference))
    testset = load_windows(Path(job.testset)) if job.testset else None
    results = []
    for candidate in (job, dataclasses.replace(
            job, artifact=str(fp32_artifact), case={**job.case, "variant": "fp32"})):
        with open_model(candidate, windows) as model:
            results.append(_outputs(model, windows, testset))
    variant, fp32 = results
    fields = {"fp32_max_abs_err": float(np.max(np.abs(variant - fp32), initial=0.0))}
    if testset is not None:
        fields["fp32_rmse"] = rmse(fp32, testset[1])
    return fields


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors are one HARNESS-ERROR line on stderr and exit 1."""

    parser = argparse.ArgumentParser(prog="python -m edge_rnn_harness.measure.versus")
    parser.add_argument("job", type=Path, help="the variant case's job JSON")
    parser.add_argument("--fp32-artifact", type=Path, required=True)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        args.out.write_text(json.dumps(versus_fp32(WorkerJob.load(args.job),
                                                   args.fp32_artifact)))
    except Exception as error:  # noqa: BLE001 -- any runtime error is this step's reason
        print(error_line(error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
