"""`harness train`: fit the registered models, write weights and training records."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge_rnn_harness.cli.inputs import check_data_fits, load_dataset_arg
from edge_rnn_harness.cli.options import (
    EXIT_OK,
    add_dataset_args,
    check_writable_dir,
    name_list,
    positive_int,
    request_from,
    resolve_names,
    user_path,
)
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.core.table import table_console
from edge_rnn_harness.models.registry import MODELS, WEIGHTS_DIR


@dataclass(frozen=True)
class TrainRequest:
    """`harness train`'s options, typed."""
    models: list[str] = field(default_factory=list)
    dataset: Path | None = None
    column: str | None = None
    time_column: str | None = None
    out: Path | None = None
    epochs: int | None = None


def cmd_train(args: argparse.Namespace) -> int:
    """`harness train`: its typed request, run."""
    return train_command(request_from(TrainRequest, args))


def train_command(request: TrainRequest) -> int:
    """`harness train`: fit models, write weights and training records."""
    from edge_rnn_harness.models.train import train_model

    trainable = [name for name, entry in MODELS.items() if entry.train is not None]
    names = resolve_names(request.models, trainable, "trainable model", "train")
    if request.dataset is not None and request.out is None:
        raise UsageError("harness train: --dataset needs --out DIR, so the committed weights "
                         "are not replaced by weights fitted to other data")
    check_writable_dir(request.out or WEIGHTS_DIR, "train")
    dataset = load_dataset_arg(request, "train")
    check_data_fits(dataset, [MODELS[name] for name in names], "train")
    out_dir = request.out or WEIGHTS_DIR
    console = Console(stderr=True, soft_wrap=True)
    records = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"train {name}", total=None)

            def on_epoch(epoch: int, epochs: int, val_rmse: float, task: Any = task,
                         name: str = name) -> None:
                progress.update(task, completed=epoch, total=epochs,
                                description=f"train {name}: val RMSE {val_rmse:.4f}")
            try:
                record = train_model(MODELS[name], dataset, out_dir, on_epoch,
                                     epochs=request.epochs)
            except ValueError as error:
                raise UsageError(f"harness train: {name}: {error}") from None
            progress.remove_task(task)
            console.print(f"trained {name}: test RMSE {record['test_rmse']:.4f} "
                          f"{record['units']} in {record['train_seconds']} s")
            records.append(record)
    table_console().print(_records_table(records, f"Trained into {out_dir}"))
    return EXIT_OK


def _records_table(records: list[dict], title: str) -> Any:
    table = Table(title=title, header_style="bold")
    for column in ("model", "params", "recurrent sparsity", "best epoch", "val RMSE",
                   "test RMSE", "test MAE", "train s"):
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(r["model"], f"{r['params']:,}", f"{r['recurrent_sparsity']:.0%}",
                      f"{r['best_epoch']}/{r['epochs']}", f"{r['val_rmse']:.4f}",
                      f"{r['test_rmse']:.4f}", f"{r['test_mae']:.4f}",
                      f"{r['train_seconds']}")
    return table


def add_parser(commands: Any) -> None:
    """The `harness train` subcommand."""
    train = commands.add_parser("train", help="train models and write weights + records",
                                description="Train registered models on the dataset (CPU, "
                                "deterministic for the entry's seed), keeping the epoch with "
                                "the lowest validation RMSE; writes <model>.pt and its training "
                                "record <model>.json. A distilled or pruned model reads its "
                                "teacher or source from the same folder.")
    train.add_argument("--model", "--models", dest="models", type=name_list, required=True,
                       metavar="LIST", help="comma-separated trainable models, or 'all' "
                       "(in registry order, so teachers come before students)")
    add_dataset_args(train, "to train on")
    train.add_argument("--out", type=user_path, default=None, metavar="DIR",
                       help="where to write weights (default: the committed models/weights; "
                            "required with --dataset so committed weights are not replaced)")
    train.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                       help="override every model's epoch count (for quick checks)")
    train.set_defaults(handler=cmd_train)
