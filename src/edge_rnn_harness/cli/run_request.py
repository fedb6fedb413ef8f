"""What `harness run` was asked to do, as a typed request: built from the command line at
the command's entrance (`from_namespace`), or read from a JSON file (`--request FILE`: how
a fleet run hands each device its request as data). Nothing below the CLI sees argparse.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_rnn_harness.cli.device_options import (
    celsius_arg,
    counter_names,
    frequencies_khz_arg,
    precision_pct,
    seconds_arg,
)
from edge_rnn_harness.cli.options import (
    batches,
    case_timeout_arg,
    cold_samples,
    intervals,
    name_list,
    paced_calls,
    positive_int,
    request_from,
    scenario_names,
    seq_lens,
    thread_counts,
    user_path,
)
from edge_rnn_harness.cli.remote_options import device_name_arg, wait_seconds
from edge_rnn_harness.core.errors import UsageError
from edge_rnn_harness.fleet.inventory import DEFAULT_INVENTORY
from edge_rnn_harness.measure.energy import DEFAULT_IDLE_S, DEFAULT_LOOP_S
from edge_rnn_harness.measure.runner import (
    DEFAULT_CASE_TIMEOUT_S,
    DEFAULT_COLD_SAMPLES,
    DEFAULT_PACED_CALLS,
)

#: largest request file read
MAX_REQUEST_BYTES = 1 << 20


def _listed(check: Callable[[str], list]) -> Callable[[Any], tuple]:
    """A JSON list checked by the command line's own type for a comma-separated option."""
    def read(value: Any) -> tuple:
        if not isinstance(value, list) or not value or \
                not all(isinstance(item, (str, int)) and not isinstance(item, bool)
                        for item in value):
            raise ValueError("is not a non-empty list of names or whole numbers")
        parsed = check(",".join(str(item) for item in value))
        if [str(item) for item in parsed] != [str(item) for item in value]:
            raise ValueError(f"{value!r} does not read back as itself")
        return tuple(parsed)
    return read


def _single(check: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A JSON number or string checked by the command line's own type."""
    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError("is not a number or a string")
        return check(str(value))
    return read


def _of_type(kind: type) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise ValueError(f"is not a {kind.__name__}")
        if kind is str and "\0" in value:
            raise ValueError("holds a NUL character")
        return value
    return read


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and "\0" not in item
                                              for item in value):
        raise ValueError("is not a list of strings")
    return tuple(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("is not a number")
    return float(value)


def _sent(read: Callable[[Any], Any]) -> dict[str, Any]:
    """A field's metadata: how a JSON value is read and checked; a fleet run sends it to
    every device."""
    return {"read": read, "device": True}


def _kept(read: Callable[[Any], Any]) -> dict[str, Any]:
    """A field's metadata: how a JSON value is read and checked; it stays on this
    machine (a fleet run sets a device's own where it runs)."""
    return {"read": read, "device": False}


_NAMES = _listed(name_list)
_SECONDS = _single(seconds_arg)
_PATH = _single(user_path)


@dataclass(frozen=True)
class RunRequest:
    """`harness run`'s options, typed. Lists are tuples; None means "not given". Fields
    marked `device` travel to every device of a fleet run (`--on`)."""

    backends: tuple[str, ...] = field(default=("all",), metadata=_sent(_NAMES))
    models: tuple[str, ...] | None = field(default=None, metadata=_sent(_NAMES))
    variants: tuple[str, ...] = field(default=("fp32",), metadata=_sent(_NAMES))
    threads: tuple[int, ...] | None = field(default=None,
                                            metadata=_sent(_listed(thread_counts)))
    profile: str = field(default="default", metadata=_sent(_of_type(str)))
    scenario: tuple[str, ...] | None = field(default=None,
                                             metadata=_sent(_listed(scenario_names)))
    seq_len: tuple[int, ...] | None = field(default=None, metadata=_sent(_listed(seq_lens)))
    batch: tuple[int, ...] = field(default=(1,), metadata=_sent(_listed(batches)))
    cold_samples: int = field(default=DEFAULT_COLD_SAMPLES,
                              metadata=_sent(_single(cold_samples)))
    interval: tuple[str, ...] | None = field(default=None, metadata=_sent(_listed(intervals)))
    paced_calls: int = field(default=DEFAULT_PACED_CALLS, metadata=_sent(_single(paced_calls)))
    drop_caches: bool = field(default=False, metadata=_sent(_of_type(bool)))
    atol: float | None = field(default=None, metadata=_sent(_number))
    rtol: float | None = field(default=None, metadata=_sent(_number))
    case_timeout: float = field(default=DEFAULT_CASE_TIMEOUT_S,
                                metadata=_sent(_single(case_timeout_arg)))
    tune: tuple[str, ...] = field(default=(), metadata=_sent(_texts))
    no_accuracy: bool = field(default=False, metadata=_sent(_of_type(bool)))
    power: str = field(default="auto", metadata=_sent(_of_type(str)))
    energy_seconds: float = field(default=DEFAULT_LOOP_S, metadata=_sent(_SECONDS))
    idle_seconds: float = field(default=DEFAULT_IDLE_S, metadata=_sent(_SECONDS))
    cooldown: float = field(default=0.0, metadata=_sent(_SECONDS))
    max_start_temp: float | None = field(default=None,
                                         metadata=_sent(_single(celsius_arg)))
    cpu_freq: tuple[int, ...] | None = field(
        default=None, metadata=_sent(_listed(frequencies_khz_arg)))
    governor: str | None = field(default=None, metadata=_sent(_of_type(str)))
    counters: tuple[str, ...] | None = field(default=None,
                                             metadata=_sent(_listed(counter_names)))
    target_precision: float | None = field(default=None,
                                           metadata=_sent(_single(precision_pct)))
    max_time: float = field(default=120.0, metadata=_sent(_SECONDS))
    # where: the bundle, the results, the export cache, a tune file
    bundle: Path | None = field(default=None, metadata=_kept(_PATH))
    out: Path | None = field(default=None, metadata=_kept(_PATH))
    bundle_dir: Path | None = field(default=None, metadata=_kept(_PATH))
    tune_file: Path | None = field(default=None, metadata=_kept(_PATH))
    store: Path | None = field(default=None, metadata=_kept(_PATH))
    # the host's models and data
    inputs: Path | None = field(default=None, metadata=_kept(_PATH))
    shape: tuple[str, ...] = field(default=(), metadata=_kept(_texts))
    dataset: Path | None = field(default=None, metadata=_kept(_PATH))
    column: str | None = field(default=None, metadata=_kept(_of_type(str)))
    time_column: str | None = field(default=None, metadata=_kept(_of_type(str)))
    weights_dir: Path | None = field(default=None, metadata=_kept(_PATH))
    calibration_windows: int | None = field(default=None,
                                            metadata=_kept(_single(positive_int)))
    # devices over SSH, and what a fleet run sets on each device
    on: str | None = field(default=None, metadata=_kept(_of_type(str)))
    inventory: Path = field(default=DEFAULT_INVENTORY, metadata=_kept(_PATH))
    resume: Path | None = field(default=None, metadata=_kept(_PATH))
    device_name: str | None = field(default=None, metadata=_kept(_single(device_name_arg)))
    progress_file: Path | None = field(default=None, metadata=_kept(_PATH))
    coordinator: str | None = field(default=None, metadata=_kept(_of_type(str)))
    wait: float = field(default=0.0, metadata=_kept(_single(wait_seconds)))
    identity: Path | None = field(default=None, metadata=_kept(_PATH))
    cases: Path | None = field(default=None, metadata=_kept(_PATH))

    @property
    def threads_given(self) -> bool:
        """Whether --threads was given (else a tune file's thread count may apply)."""
        return self.threads is not None

    @property
    def thread_counts(self) -> list[int]:
        """The thread counts to measure (default 1)."""
        return list(self.threads or (1,))

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> RunRequest:
        """The request of a parsed `harness run` command line (lists become tuples)."""
        request = request_from(cls, args)
        return dataclasses.replace(request, **{
            name: tuple(value) for name, value in vars(request).items()
            if isinstance(value, list)})

    def for_device(self, **where: Any) -> dict[str, Any]:
        """The JSON object a fleet run sends a device: the fields marked `device`, plus
        `where` (bundle, out, progress_file, device_name, cases on that device)."""
        chosen = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                  if item.metadata["device"]}
        return {name: _jsonable(value) for name, value in {**chosen, **where}.items()}

    @classmethod
    def from_json(cls, path: Path) -> RunRequest:
        """The request in a JSON file (what `for_device` wrote); UsageError naming the
        field for anything unknown, of the wrong type or out of bounds."""
        where = f"harness run: --request {path}"
        try:
            if path.stat().st_size > MAX_REQUEST_BYTES:
                raise UsageError(f"{where} is larger than {MAX_REQUEST_BYTES >> 20} MiB")
            raw = json.loads(path.read_text())
        except OSError as error:
            raise UsageError(f"{where}: cannot read it ({error.strerror or error})") from None
        except ValueError as error:
            raise UsageError(f"{where} is not JSON ({error})") from None
        if not isinstance(raw, dict):
            raise UsageError(f"{where} is not a JSON object of run options")
        return cls(**_read_fields(raw, where))


def _read_fields(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {item.name: item for item in dataclasses.fields(RunRequest)}
    values = {}
    for name, value in raw.items():
        if name not in known:
            raise UsageError(f"{where}: unknown option {name!r}")
        if value is None and known[name].default is not None:
            raise UsageError(f"{where}: {name} must not be null")
        try:
            values[name] = None if value is None else known[name].metadata["read"](value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
            raise UsageError(f"{where}: {name}: {error}") from None
    return values


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value
