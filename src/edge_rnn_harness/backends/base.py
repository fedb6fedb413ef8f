"""The adapter contract every runtime implements: export once, prepare once, run many.

Modelled on onnx.backend: `Backend.export` turns the one PyTorch definition into the
runtime's format (needs the definition side: torch and converters); `Backend.prepare`
loads, compiles and allocates (untimed); `PreparedModel.feed` converts inputs to what the
runtime wants (untimed); `PreparedModel.run` is the one synchronous call the harness times.
Nothing here names a specific backend.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from edge_rnn_harness.core.status import not_installed
from edge_rnn_harness.core.variants import VARIANT_NAMES
from edge_rnn_harness.models.spec import INPUT_NAME, OUTPUT_NAME

#: what an exporter wrote about its variant (tool, what it quantized, what stayed float)
NOTES_FILE = "variant.json"
#: calibration windows: one {input name: array with batch 1} per window
Calibration = Sequence[Mapping[str, np.ndarray]]


class ArtifactError(ValueError):
    """An artifact the runtime cannot load (corrupt, truncated, wrong format)."""


class UnsupportedModel(ValueError):
    """The backend cannot take this model at all (e.g. an ONNX file where the runtime has no
    working ONNX converter); the case is an `unsupported` row, not a failure."""


@dataclass(frozen=True)
class Signature:
    """A model's named inputs (example arrays with batch 1, in call order) and output names
    (in order). Exporters trace with the examples; backends that address tensors by
    position (TFLite, ncnn) use the names to label them."""

    inputs: Mapping[str, np.ndarray]
    outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.inputs or not self.outputs:
            raise ValueError("a signature needs at least one input and one output")


@dataclass(frozen=True)
class RunOptions:
    """How to run a prepared model.

    threads: intra-op threads the runtime may use (>= 1).
    variant: the precision variant being run ("fp32" runs in true fp32 everywhere).
    tuning: backend-specific knobs (e.g. graph optimisation level), as strings.
    input_names, output_names: the model's tensor names in order, for runtimes whose
        files number their tensors instead of naming them.
    module_callable: a `package.module:callable` the user named on the command line, from
        which the PyTorch reference rebuilds a module brought that way (never read from a
        bundle).
    """

    threads: int = 1
    variant: str = "fp32"
    tuning: Mapping[str, str] = field(default_factory=dict)
    input_names: tuple[str, ...] = (INPUT_NAME,)
    output_names: tuple[str, ...] = (OUTPUT_NAME,)
    module_callable: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        if self.variant not in VARIANT_NAMES:
            raise ValueError(f"variant {self.variant!r} is not one of "
                             f"{', '.join(VARIANT_NAMES)}")


class PreparedModel(ABC):
    """A model loaded into a runtime, ready for repeated synchronous calls.

    `settings` holds the effective settings the runtime runs with (threads, precision,
    providers or hints) as read back from the runtime, and under "requested" those it
    cannot report (see `settings_record`); recorded in every results row.
    """

    settings: dict[str, Any]

    @abstractmethod
    def feed(self, inputs: Mapping[str, np.ndarray]) -> object:
        """Convert named numpy inputs into the runtime's own input object. Untimed."""

    @abstractmethod
    def run(self, fed: object) -> dict[str, np.ndarray]:
        """One synchronous inference on `fed`; returns named numpy outputs. Timed by the
        harness (never by the backend), so outputs must be fully materialised here."""

    def close(self) -> None:
        """Release the runtime's resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Backend(ABC):
    """One runtime: exporter and runner of its format. Subclasses are never instantiated."""

    name: ClassVar[str]
    fmt: ClassVar[str]
    #: importable module whose ImportError makes the backend unavailable
    runtime_module: ClassVar[str]
    #: distribution that carries the runtime (for `version()`)
    runtime_dist: ClassVar[str]
    #: distributions whose versions change the exported artifact (part of the cache key)
    export_deps: ClassVar[tuple[str, ...]] = ()
    #: variants this backend produces; every other one is an `unsupported` row
    variants: ClassVar[tuple[str, ...]] = ("fp32",)
    #: variant -> why this backend cannot produce it (shown in its unsupported row)
    unsupported_why: ClassVar[Mapping[str, str]] = {}
    #: rough description shown by `harness backends`
    description: ClassVar[str] = ""
    #: backend-specific options: name -> allowed values, the first being the default
    tuning_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: settings the runtime has no call to report: a prepared model keeps them under
    #: settings["requested"]; every other setting is read back from the loaded runtime
    unreportable_settings: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_tuning(cls, tuning: Mapping[str, str]) -> None:
        """ValueError naming the option and its allowed values for anything not offered."""
        for key, value in tuning.items():
            if key not in cls.tuning_choices:
                offered = ", ".join(cls.tuning_choices) or "none"
                raise ValueError(f"{cls.name} has no option {key!r} (options: {offered})")
            if value not in cls.tuning_choices[key]:
                raise ValueError(f"{cls.name}.{key} must be one of "
                                 f"{', '.join(cls.tuning_choices[key])}, got {value!r}")

    @classmethod
    def tuning_value(cls, options: RunOptions, key: str) -> str:
        """The value of tuning option `key` in `options`, else its default (validated)."""
        cls.check_tuning(options.tuning)
        return options.tuning.get(key, cls.tuning_choices[key][0])

    @classmethod
    def unsupported_reason(cls, variant: str) -> str | None:
        """None if this backend produces `variant`, else why not (one line)."""
        if variant in cls.variants:
            return None
        return cls.unsupported_why.get(variant, f"{cls.name} has no {variant} variant")

    @classmethod
    def runs_here(cls, variant: str) -> str | None:
        """None if this device's runtime can run `variant` as asked, else why not (e.g. a
        CPU without float16 support). Called in the case's child, before measuring."""
        return None

    @classmethod
    def available(cls) -> str | None:
        """None if the runtime imports here, else the ImportError text (a skip reason).
        Imports the runtime: the harness calls it in the case's own child process."""
        try:
            importlib.import_module(cls.runtime_module)
        except ImportError as error:
            return not_installed(cls.runtime_module, str(error))
        return None

    @classmethod
    def installed(cls) -> str | None:
        """None if the runtime's package is present, else why not; imports nothing, so
        the harness process stays light (a present but broken runtime is caught by
        `available()` in the case's child)."""
        return missing_module(cls.runtime_module)

    @classmethod
    def version(cls) -> str:
        """Installed version of the runtime distribution, or "" when it is not installed."""
        return dist_version(cls.runtime_dist)

    @classmethod
    def export_fingerprint(cls) -> str:
        """Versions of everything that shapes the exported file, for the export cache."""
        return ";".join(f"{dist}={dist_version(dist)}" for dist in cls.export_deps)

    @classmethod
    @abstractmethod
    def export(cls, model: Any, signature: Signature, variant: str, out_dir: Path,
               calibration: Calibration | None = None) -> Path:
        """Write the artifact for `model` (a torch module called with the signature's
        inputs in order) in this format and `variant` under `out_dir` and return the path
        the runtime opens. `calibration`: training-split windows for variants that
        calibrate (UnsupportedModel without them). Host side: needs torch and the
        converters."""

    @classmethod
    def import_onnx(cls, onnx_path: Path, signature: Signature, variant: str,
                    out_dir: Path, calibration: Calibration | None = None) -> Path:
        """Turn an ONNX file into this backend's artifact in `variant` under `out_dir`.
        Backends that cannot take ONNX raise UnsupportedModel (the default)."""
        raise UnsupportedModel(f"{cls.name} cannot take an ONNX file")

    @classmethod
    @abstractmethod
    def prepare(cls, artifact: Path, options: RunOptions) -> PreparedModel:
        """Load `artifact` into the runtime, ready to run. Untimed by the runner's clock
        but reported as `load_ms`. Raises ArtifactError for a file it cannot load."""


#: the key of a row's settings under which values stand that were asked of the runtime but
#: that it cannot report back
REQUESTED = "requested"


def settings_record(read: Mapping[str, Any],
                    requested: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A row's `settings`: the values read back from the runtime after loading (what it
    really runs with), and under "requested" the values it was asked for but has no way to
    report, so the row never presents a request as a reading."""
    return {**read, **({REQUESTED: dict(requested)} if requested else {})}


def dtype_counts(dtypes: list[str]) -> str:
    """Element types and how many tensors have each, e.g. "float32:12,int8:4"."""
    from collections import Counter

    return ",".join(f"{dtype}:{count}" for dtype, count in sorted(Counter(dtypes).items()))


def write_notes(out_dir: Path, notes: Mapping[str, Any]) -> None:
    """Record what the exporter did for a variant (tool, layers quantized, layers left in
    float, calibration windows); the exporter moves it into the bundle's manifest and
    every row of the artifact carries it in `settings`."""
    (out_dir / NOTES_FILE).write_text(json.dumps(dict(notes), sort_keys=True))


def take_notes(out_dir: Path) -> dict[str, Any]:
    """The notes an exporter wrote in `out_dir` (removed from it: they travel in the
    bundle's manifest, not as a file of the artifact); {} when there are none."""
    path = out_dir / NOTES_FILE
    if not path.is_file():
        return {}
    notes = json.loads(path.read_text())
    path.unlink()
    return notes


def require_calibration(backend: str, variant: str,
                        calibration: Calibration | None) -> Calibration:
    """The calibration windows, or UnsupportedModel saying none came with the model."""
    if not calibration:
        raise UnsupportedModel(f"{backend} {variant} needs calibration windows and this model "
                               f"has none (a registered model takes them from its dataset's "
                               f"training split, which --no-accuracy leaves out; an ONNX file "
                               f"from --inputs NPZ or its test_data_set_N folders)")
    return calibration


def missing_module(name: str) -> str | None:
    """None if the top-level package of module `name` can be found (not imported), else
    "<name> is not installed"."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        return not_installed(name, f"No module named {name.split('.')[0]!r}")
    return None


def dist_version(dist: str) -> str:
    """Installed version of a distribution, or "" when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
