"""The one place that lists the runtimes. Adding a backend = one module + one line here."""

from __future__ import annotations

from edge_rnn_harness.backends.base import Backend
from edge_rnn_harness.backends.litert import LitertBackend
from edge_rnn_harness.backends.ncnn_net import NcnnBackend
from edge_rnn_harness.backends.openvino_ir import OpenvinoBackend
from edge_rnn_harness.backends.ort import OrtBackend
from edge_rnn_harness.backends.torch_ref import TorchBackend

BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (
        TorchBackend,
        OrtBackend,
        LitertBackend,
        OpenvinoBackend,
        NcnnBackend,
    )
}


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
