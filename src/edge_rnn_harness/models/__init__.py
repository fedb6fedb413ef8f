"""The network definitions and the registry of named models.

Nothing here knows any runtime. `torch` is imported only by `models.forecaster`, so the
spec and the registry can be read on a device that has no PyTorch.
"""

from edge_rnn_harness.models.registry import MODELS, ModelEntry, get_entry, model_names
from edge_rnn_harness.models.spec import ModelSpec

__all__ = ["MODELS", "ModelEntry", "ModelSpec", "get_entry", "model_names"]
