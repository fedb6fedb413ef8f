"""The one place that knows which runtimes exist: every backend, the built-in five and any
third party's, is registered through the entry-point group `edge_rnn_harness.backends`
(`name = "package.module:BackendClass"`). Adding a backend = one module and one entry point
in its package's metadata; nothing here changes.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

from edge_rnn_harness.backends.base import Backend

#: the entry-point group backends register in
ENTRY_POINT_GROUP = "edge_rnn_harness.backends"
#: the built-in backends, in run order; any other registered backend follows, by name
BUILTIN_ORDER = ("torch", "onnxruntime", "tflite", "openvino", "ncnn")


def _warn(message: str) -> None:
    """One line on stderr: a plugin left out, and why (the built-in backends still run)."""
    print(f"harness: warning: {message}", file=sys.stderr)


def _registered() -> dict[str, type[Backend]]:
    """Every backend registered in the entry-point group, loaded (no runtime is imported:
    a backend module imports its runtime only when it prepares or exports). An entry point
    that does not load, or does not name a Backend of its own name, is left out with a
    warning naming it."""
    found: dict[str, type[Backend]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            backend = point.load()
        except Exception as error:  # noqa: BLE001 -- a third party's module may raise anything
            _warn(f"backend plugin {point.name!r} ({point.value}) did not load: "
                  f"{type(error).__name__}: {error}")
            continue
        if not (isinstance(backend, type) and issubclass(backend, Backend)
                and getattr(backend, "name", None) == point.name):
            _warn(f"backend plugin {point.name!r} ({point.value}) is not a Backend "
                  f"subclass named {point.name!r}; left out")
            continue
        found.setdefault(point.name, backend)
    order = [name for name in BUILTIN_ORDER if name in found]
    return {name: found[name] for name in order + sorted(set(found) - set(order))}


BACKENDS: dict[str, type[Backend]] = _registered()


def backend_names() -> list[str]:
    """Registered backend names, in registry (and run) order."""
    return list(BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The backend class called `name`; ValueError naming the valid ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; choose from: {', '.join(BACKENDS)} (or 'all')"
        ) from None
