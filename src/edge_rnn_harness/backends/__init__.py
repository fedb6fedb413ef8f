"""Runtime adapters: one module per runtime, each both exporter and runner of its format."""

from edge_rnn_harness.backends.base import ArtifactError, Backend, PreparedModel, RunOptions
from edge_rnn_harness.backends.registry import BACKENDS, backend_names, get_backend

__all__ = [
           "BACKENDS",
           "ArtifactError",
           "Backend",
           "PreparedModel",
           "RunOptions",
           "backend_names",
           "get_backend",
]
