"""Training, knowledge distillation and magnitude pruning of the registered forecasters.

CPU, one thread, seeded: the same seed, data and code give the same weights on the same
machine. Each call writes <weights>.pt and a training record <weights>.json.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.board.environment import cpu_name
from edge_rnn_harness.models.baselines import baseline_scores
from edge_rnn_harness.models.data import Dataset, Split, make_splits
from edge_rnn_harness.models.metrics import mae, rmse
from edge_rnn_harness.models.registry import MODELS, ModelEntry

#: called after each epoch with (epoch (1-based), epochs, validation RMSE in data units)
EpochCallback = Callable[[int, int, float], None]
STD_FLOOR = 1e-6


def parameter_count(model: Any) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters()))


def recurrent_sparsity(model: Any) -> float:
    """Fraction of exactly-zero entries in the recurrent (hidden-to-hidden) weights."""
    weights = [p for name, p in model.rnn.named_parameters() if name.startswith("weight_hh")]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def _magnitude_masks(model: Any, amount: float) -> dict[str, Any]:
    """Per recurrent weight matrix, a mask keeping all but its smallest `amount` by |w|."""
    import torch

    masks = {}
    for name, weight in model.rnn.named_parameters():
        if name.startswith("weight_hh"):
            cut = round(amount * weight.numel())
            threshold = weight.detach().abs().flatten().kthvalue(cut).values if cut else -1
            masks[name] = (weight.detach().abs() > threshold).to(torch.float32)
    return masks


def unit_importance(state: Mapping[str, Any], layer: int, num_layers: int) -> Any:
    """Importance of each hidden unit of recurrent `layer`: the L2 norm of every weight
    that carries its output onward (its column of the layer's hidden-to-hidden matrix and
    of the next layer's input matrix, or of the head for the last layer)."""
    outgoing = [state[f"rnn.weight_hh_l{layer}"]]
    outgoing.append(state[f"rnn.weight_ih_l{layer + 1}"] if layer + 1 < num_layers
                    else state["head.weight"])
    return sum((w ** 2).sum(dim=0) for w in outgoing).sqrt()


def structured_state(state: Mapping[str, Any], hidden: int, keep: int,
                     num_layers: int, gates: int) -> tuple[dict[str, Any], list[list[int]]]:
    """`state` (a forecaster's state dict with `hidden` units per layer) cut to the `keep`
    most important units of each layer: rows of every gate, columns of the hidden-to-hidden
    matrix, of the next layer's input matrix and of the head. Returns the new state and
    the kept unit indices per layer (ascending)."""
    import torch

    new = {name: tensor.clone() for name, tensor in state.items()}
    kept = []
    for layer in range(num_layers):
        order = unit_importance(state, layer, num_layers).argsort(descending=True)
        units = order[:keep].sort().values
        kept.append(units.tolist())
        rows = torch.cat([units + g * hidden for g in range(gates)])
        for name in (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}",
                     f"bias_hh_l{layer}"):
            new[f"rnn.{name}"] = new[f"rnn.{name}"][rows]
        new[f"rnn.weight_hh_l{layer}"] = new[f"rnn.weight_hh_l{layer}"][:, units]
        following = f"rnn.weight_ih_l{layer + 1}" if layer + 1 < num_layers else "head.weight"
        new[following] = new[following][:, units]
    return new, kept


def _apply_masks(model: Any, masks: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, weight in model.rnn.named_parameters():
            if name in masks:
                weight.mul_(masks[name])


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _fit_standardisation(model: Any, train: Split) -> None:
    import torch

    features = train.x.reshape(-1, train.x.shape[-1]).astype(np.float64)
    targets = train.y.astype(np.float64)
    model.set_standardisation(
        torch.tensor(features.mean(0), dtype=torch.float32),
        torch.tensor(np.maximum(features.std(0), STD_FLOOR), dtype=torch.float32),
        torch.tensor(targets.mean(0), dtype=torch.float32),
        torch.tensor(np.maximum(targets.std(0), STD_FLOOR), dtype=torch.float32))


def _trained(name: str, out_dir: Path, dataset: Dataset,
             models: Mapping[str, ModelEntry]) -> ModelEntry:
    """A teacher or pruning source: from `out_dir` if trained there, else the committed
    weights if their record says they were trained on this same data."""
    if name not in models:
        raise ValueError(f"unknown model {name!r}; train it first: harness train --model "
                         f"{name}")
    local = models[name].with_weights_dir(out_dir)
    if local.weights_path() is not None and local.weights_path().is_file():
        return local
    committed = models[name]
    record = committed.record() or {}
    if record.get("data_sha256") == dataset.digest():
        return committed
    raise ValueError(f"needs a trained {name} on this data in {out_dir}; train it first: "
                     f"harness train --model {name} --out {out_dir}")


def train_model(entry: ModelEntry, dataset: Dataset, out_dir: Path,
                on_epoch: EpochCallback | None = None, epochs: int | None = None,
                models: Mapping[str, ModelEntry] = MODELS) -> dict[str, Any]:
    """Train `entry` on `dataset` and write its weights and record into `out_dir`.

    A teacher or pruning source named by the entry is read from `out_dir`, else from the
    committed weights when those were trained on the same data; names are looked up in
    `models` (the registry). `epochs` overrides the entry's (for quick pipeline checks).
    Returns the training record.
    """
    import torch

    from edge_rnn_harness.models.forecaster import build

    if entry.train is None or entry.weights is None:
        raise ValueError(f"model {entry.name} is a seeded initialisation; it has no training")
    config = entry.train
    epochs = epochs or config.epochs
    splits = make_splits(dataset, entry.features, entry.spec.seq_len, entry.spec.horizon)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start_s = time.monotonic()
    try:
        model = build(entry.spec, seed=config.seed)
        _fit_standardisation(model, splits.train)
        masks: dict[str, Any] = {}
        pruning: dict[str, Any] = {}
        if config.prune_from:
            source = _trained(config.prune_from, out_dir, dataset, models)
            if config.prune_units:
                pruning = _prune_units(model, source)
            else:
                model.load_state_dict(source.load().state_dict())
                masks = _magnitude_masks(model, config.prune_amount)
                _apply_masks(model, masks)
        teacher_y = None
        if config.teacher:
            teacher_y = _predict(_trained(config.teacher, out_dir, dataset, models).load(),
                                 splits.train.x)
        best_val, best_epoch, best_state = _fit(model, splits, config, epochs, masks,
                                                teacher_y, on_epoch)
        model.load_state_dict(best_state)
        model.eval()
    finally:
        torch.set_num_threads(previous_threads)
    prediction = _predict(model, splits.test.x)
    record = {
        "model": entry.name, "dataset": dataset.name, "units": dataset.units,
        "data_sha256": dataset.digest(), "features": list(entry.features),
        "split_windows": {"train": len(splits.train.y), "val": len(splits.val.y),
                          "test": len(splits.test.y)},
        "seed": config.seed, "epochs": epochs, "best_epoch": best_epoch,
        "lr": config.lr, "batch_size": config.batch_size,
        "teacher": config.teacher, "distill_alpha": config.distill_alpha if config.teacher
        else None, "prune_from": config.prune_from, **pruning,
        "params": parameter_count(model), "recurrent_sparsity": recurrent_sparsity(model),
        "val_rmse": best_val, "test_rmse": rmse(prediction, splits.test.y),
        "test_mae": mae(prediction, splits.test.y),
        "baselines_test_rmse": {name: scores["rmse"]
                                for name, scores in baseline_scores(splits).items()},
        "train_seconds": round(time.monotonic() - start_s, 1),
        **training_platform(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / entry.weights)
    (out_dir / entry.weights).with_suffix(".json").write_text(json.dumps(record, indent=2))
    return record


def _prune_units(model: Any, source: ModelEntry) -> dict[str, Any]:
    """Load `source`'s weights into the smaller `model`, keeping its most important hidden
    units; the record's fields describing the cut."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[model.spec.cell]
    spec = source.spec
    if (spec.cell, spec.num_layers, spec.input_features) != \
            (model.spec.cell, model.spec.num_layers, model.spec.input_features) or \
            model.spec.hidden_size >= spec.hidden_size:
        raise ValueError(f"structured pruning needs a smaller hidden size of the same cell "
                         f"and layers than {source.name}")
    state, kept = structured_state(source.load().state_dict(), spec.hidden_size,
                                   model.spec.hidden_size, spec.num_layers, gates)
    model.load_state_dict(state)
    return {"pruning": f"structured: kept {model.spec.hidden_size} of {spec.hidden_size} "
                       f"hidden units per layer by outgoing-weight L2 norm",
            "kept_units": kept}


def training_platform() -> dict[str, str]:
    """The CPU and library builds the weights were trained with: bit-identical weights
    are reproducible only on the same CPU and builds (across CPUs, to about 1e-6)."""
    import platform

    import torch

    return {"torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "cpu": cpu_name(),
            "machine": platform.machine()}


def _fit(model: Any, splits: Any, config: Any, epochs: int, masks: dict[str, Any],
         teacher_y: np.ndarray | None,
         on_epoch: EpochCallback | None) -> tuple[float, int, dict[str, Any]]:
    """Adam with cosine annealing; returns (best val RMSE, its epoch, its state dict)."""
    import torch
    from torch.nn.functional import mse_loss

    def standardise_y(y: np.ndarray) -> Any:
        return (torch.from_numpy(y) - model.output_mean) / model.output_std

    x = (torch.from_numpy(splits.train.x) - model.input_mean) / model.input_std
    y = standardise_y(splits.train.y)
    soft = standardise_y(teacher_y) if teacher_y is not None else None
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    generator = torch.Generator().manual_seed(config.seed)
    best: tuple[float, int, dict[str, Any]] = (float("inf"), 0, {})
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for first in range(0, len(x), config.batch_size):
            batch = order[first:first + config.batch_size]
            prediction = model.standardised_forward(x[batch])
            loss = mse_loss(prediction, y[batch])
            if soft is not None:
                loss = config.distill_alpha * loss + \
                    (1 - config.distill_alpha) * mse_loss(prediction, soft[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            _apply_masks(model, masks)
        schedule.step()
        model.eval()
        val_rmse = rmse(_predict(model, splits.val.x), splits.val.y)
        if val_rmse < best[0]:
            best = (val_rmse, epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(epoch, epochs, val_rmse)
    return best
