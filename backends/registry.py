"""The one place that lists the runtimes. Adding a backend = one module + one line here."""

from __future__ import annotations

from backends.base import Backend
from backends.litert import LitertBackend
from backends.ncnn_net import NcnnBackend
from backends.openvino_ir import OpenvinoBackend
from backends.ort import OrtBackend
from backends.torch_ref import TorchBackend

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

REFERENCE_BACKEND = TorchBackend.name


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
