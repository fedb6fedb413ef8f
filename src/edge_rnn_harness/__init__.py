"""edge-rnn-harness: one recurrent forecaster, every edge runtime, measured the same way.

The public face, for scripts and plugins (everything else is private by convention):

- `read_results(path)`: a results CSV as a pandas DataFrame with typed columns (any schema
  version from 1 on; a file that is not results raises ValueError naming what is wrong).
- `SCHEMA_VERSION`: the results schema this harness writes; `results_columns()`: every
  column and its type, in the CSV's order.
- `Backend`, `PreparedModel`, `RunOptions`, `ArtifactError`, `UnsupportedModel`: the
  adapter contract a backend plugin implements (see the docs' layout page: a plugin
  registers in the entry-point group `edge_rnn_harness.backends`).
- `Metric`, `declared`: a metric declaration, and declaring one while a block runs.

Kept import-light on purpose: worker processes import this package before measuring the
resident set, so nothing heavy (pandas, rich, runtimes) is imported here; each name above
is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "read_results": "edge_rnn_harness.core.results",
    "SCHEMA_VERSION": "edge_rnn_harness.core.results",
    "results_columns": "edge_rnn_harness.core.results",
    "Backend": "edge_rnn_harness.backends.base",
    "PreparedModel": "edge_rnn_harness.backends.base",
    "RunOptions": "edge_rnn_harness.backends.base",
    "ArtifactError": "edge_rnn_harness.backends.base",
    "UnsupportedModel": "edge_rnn_harness.backends.base",
    "Metric": "edge_rnn_harness.core.metrics",
    "declared": "edge_rnn_harness.core.metrics",
}
__all__ = ["SCHEMA_VERSION", "ArtifactError", "Backend", "Metric", "PreparedModel", "RunOptions",
           "UnsupportedModel", "__version__", "declared", "read_results", "results_columns"]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edge_rnn_harness' has no attribute {name!r}")
    attribute = "columns" if name == "results_columns" else name
    value = getattr(importlib.import_module(_PUBLIC[name]), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
