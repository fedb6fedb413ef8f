"""Named models: architecture, input features, where the weights come from, how to train.

Trained weights are committed under models/weights/<name>.pt with a training record
<name>.json beside them, so `harness run` never trains; `harness train --model NAME`
reproduces them. An entry with `weights=None` is a seeded initialisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_rnn_harness.models.features import COVARIATES, TARGET
from edge_rnn_harness.models.spec import ModelSpec

if TYPE_CHECKING:
    from edge_rnn_harness.models.forecaster import Forecaster

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: target plus every covariate of the default dataset
ALL_FEATURES = (TARGET, *COVARIATES)


@dataclass(frozen=True)
class TrainConfig:
    """How `harness train` fits a model (CPU, deterministic for a given seed).

    epochs, batch_size, lr (Adam, cosine-annealed), seed. The weights kept are those of
    the epoch with the lowest validation RMSE.
    teacher, distill_alpha: knowledge distillation; the loss is alpha x MSE to the targets
        + (1 - alpha) x MSE to the teacher's forecasts.
    prune_from, prune_amount: magnitude pruning; start from that trained model, zero the
        smallest `prune_amount` of each recurrent weight matrix, fine-tune with the mask.
    prune_units: structured pruning instead: start from `prune_from` and keep, per
        recurrent layer, the entry's hidden_size most important hidden units (whole rows
        and columns removed, so the network really shrinks), then fine-tune.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    teacher: str | None = None
    distill_alpha: float = 0.5
    prune_from: str | None = None
    prune_amount: float = 0.0
    prune_units: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"epochs, batch_size and lr must be positive: {self}")
        if not 0 <= self.distill_alpha <= 1 or not 0 <= self.prune_amount < 1:
            raise ValueError(f"distill_alpha must be in [0, 1], prune_amount in [0, 1): {self}")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    features: input columns, target first (see models.data). weights: file name under
    weights_dir, or None for a seeded initialisation. train: how to reproduce the weights.
    """

    name: str
    spec: ModelSpec
    description: str
    features: tuple[str, ...] = (TARGET,)
    weights: str | None = None
    train: TrainConfig | None = None
    seed: int = 0
    weights_dir: Path = WEIGHTS_DIR

    def __post_init__(self) -> None:
        if not self.features or self.features[0] != TARGET:
            raise ValueError(f"{self.name}: features must start with {TARGET!r}")
        if len(self.features) != self.spec.input_features:
            raise ValueError(f"{self.name}: {len(self.features)} features but the spec has "
                             f"input_features={self.spec.input_features}")

    def weights_path(self) -> Path | None:
        """The weights file, or None for a seeded initialisation."""
        return self.weights_dir / self.weights if self.weights else None

    def record_path(self) -> Path | None:
        """The training record (JSON) beside the weights, or None."""
        path = self.weights_path()
        return path.with_suffix(".json") if path else None

    def record(self) -> dict[str, Any] | None:
        """The training record, or None when there is none."""
        path = self.record_path()
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text())

    def with_weights_dir(self, weights_dir: Path) -> ModelEntry:
        """The same entry reading (and training into) another weights folder."""
        return dataclasses.replace(self, weights_dir=Path(weights_dir))

    def identity(self) -> str:
        """Hash of everything that defines the network's numbers: spec, features and the
        weights file's bytes (or the seed). Needs no torch. ValueError if weights are
        declared but missing."""
        digest = hashlib.sha256(self.spec.to_json().encode())
        digest.update(",".join(self.features).encode())
        path = self.weights_path()
        if path is None:
            digest.update(f"seed:{self.seed}".encode())
        elif not path.is_file():
            raise ValueError(f"model {self.name}: weights {path} are missing; create them "
                             f"with: harness train --model {self.name}")
        else:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def load(self) -> Forecaster:
        """The PyTorch module with its weights, in eval mode (imports torch)."""
        import torch

        from edge_rnn_harness.models.forecaster import build

        model = build(self.spec, seed=self.seed)
        path = self.weights_path()
        if path is not None:
            self.identity()  # clear error when missing
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()


_LSTM_64 = ModelSpec(cell="lstm", hidden_size=64, input_features=len(ALL_FEATURES))

MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("lstm", _LSTM_64,
                   "default: 1-layer LSTM, hidden 64; 24 h of demand + covariates -> next hour",
                   ALL_FEATURES, "lstm.pt", TrainConfig()),
        ModelEntry("gru", dataclasses.replace(_LSTM_64, cell="gru"),
                   "1-layer GRU, hidden 64", ALL_FEATURES, "gru.pt", TrainConfig()),
        ModelEntry("rnn", dataclasses.replace(_LSTM_64, cell="rnn"),
                   "1-layer vanilla (tanh) RNN, hidden 64", ALL_FEATURES, "rnn.pt",
                   TrainConfig()),
        ModelEntry("lstm-teacher", dataclasses.replace(_LSTM_64, hidden_size=128, num_layers=2),
                   "distillation teacher: 2-layer LSTM, hidden 128", ALL_FEATURES,
                   "lstm-teacher.pt", TrainConfig()),
        ModelEntry("lstm-student", dataclasses.replace(_LSTM_64, hidden_size=48),
                   "distilled from lstm-teacher: 1-layer LSTM, hidden 48", ALL_FEATURES,
                   "lstm-student.pt",
                   TrainConfig(epochs=60, teacher="lstm-teacher", distill_alpha=0.2)),
        ModelEntry("lstm-pruned", _LSTM_64,
                   "lstm with 50% of recurrent weights zeroed by magnitude, fine-tuned",
                   ALL_FEATURES, "lstm-pruned.pt",
                   TrainConfig(epochs=10, lr=1e-3, prune_from="lstm", prune_amount=0.5)),
        ModelEntry("lstm-structured", dataclasses.replace(_LSTM_64, hidden_size=32),
                   "lstm with half its hidden units removed (64 -> 32, by importance), "
                   "fine-tuned: structured pruning that shrinks the network",
                   ALL_FEATURES, "lstm-structured.pt",
                   TrainConfig(epochs=40, lr=3e-3, prune_from="lstm", prune_units=True)),
        ModelEntry("lstm-uni", dataclasses.replace(_LSTM_64, input_features=1),
                   "lstm on the target alone (no covariates): fits any CSV series", (TARGET,),
                   "lstm-uni.pt", TrainConfig()),
        ModelEntry("lstm-x4", dataclasses.replace(_LSTM_64, hidden_size=256),
                   "lstm with 4x the hidden size, seeded (untrained): a known-slower "
                   "candidate for checking that the gate catches a real slowdown",
                   ALL_FEATURES),
        ModelEntry("lstm-h76", dataclasses.replace(_LSTM_64, hidden_size=76),
                   "lstm with hidden 76, seeded (untrained): about 15% slower than lstm on "
                   "onnxruntime here; the candidate of the gate's error-rate benchmark",
                   ALL_FEATURES),
        ModelEntry("lstm-h65", dataclasses.replace(_LSTM_64, hidden_size=65),
                   "lstm with hidden 65, seeded (untrained): about 4% more instructions per "
                   "inference than lstm on onnxruntime; the counter gate's candidate",
                   ALL_FEATURES),
        ModelEntry("tiny", ModelSpec(cell="lstm", hidden_size=8),
                   "smoke-test LSTM, hidden 8, seeded (untrained); used by the tests"),
    )
}

DEFAULT_MODEL = "lstm"


def model_names() -> list[str]:
    """Registered model names, in registry order."""
    return list(MODELS)


def get_entry(name: str, weights_dir: Path | None = None) -> ModelEntry:
    """The registered model `name` (reading weights from `weights_dir` if given);
    ValueError naming the valid ones otherwise."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}") from None
    return entry.with_weights_dir(weights_dir) if weights_dir is not None else entry
