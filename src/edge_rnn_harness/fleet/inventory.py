"""The device inventory: a small TOML file naming the boards a workstation runs on.

    [defaults]                     # optional; every device inherits these
    known_hosts = "~/.ssh/known_hosts"
    identity = "~/.ssh/id_ed25519" # optional: else the SSH agent and the default keys

    [devices.pi5]
    host = "pi@192.168.1.20"       # user@host[:port]; port 22 by default
    python = "~/.edge-rnn-harness/venv/bin/python"   # the default: what `devices setup` makes
    workdir = "~/.edge-rnn-harness"                  # bundles and runs on the device
    tags = ["arm64", "pi"]

The file is user input: its size is bounded, unknown keys are refused (a typo must not
silently change where a run goes), a password is refused (keys or an agent only), names are
plain words, and every remote path is kept as a separate argument, never shell text.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

#: the inventory read when --inventory is not given
DEFAULT_INVENTORY = Path("devices.toml")
#: an inventory larger than this is refused unread
MAX_INVENTORY_BYTES = 1 << 20
DEFAULT_PYTHON = "~/.edge-rnn-harness/venv/bin/python"
DEFAULT_WORKDIR = "~/.edge-rnn-harness"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]{0,63})@)?"
                   r"(?P<host>[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?")
_DEVICE_KEYS = {"host", "python", "workdir", "tags", "known_hosts", "identity",
                "connect_timeout", "setup_python"}
_SECRET_KEYS = {"password", "passphrase", "passwd"}


class InventoryError(ValueError):
    """An inventory that cannot be used (unreadable, malformed, an unknown key, a password);
    the CLI turns it into one line and exit code 2."""


@dataclass(frozen=True)
class Device:
    """One board of the inventory.

    python: the interpreter on the device that has (or, after `devices setup`, will have)
    the harness; a path under the home folder may start with `~/`. setup_python: the
    interpreter `devices setup` creates that virtualenv with. workdir: where bundles and
    run folders live on the device. known_hosts: the workstation's file its host key must be
    in. identity: a private key file on the workstation (None: agent and default keys).
    connect_timeout_s: seconds to wait for the connection and login.
    """

    name: str
    host: str
    user: str | None = None
    port: int = 22
    python: str = DEFAULT_PYTHON
    setup_python: str = "python3"
    workdir: str = DEFAULT_WORKDIR
    tags: tuple[str, ...] = field(default_factory=tuple)
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    identity: str | None = None
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    @property
    def address(self) -> str:
        """user@host:port, for messages."""
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


def remote_path(path: str) -> str:
    """A device path as SSH commands and SFTP take it: `~/x` becomes `x` (both start in the
    home folder); anything else is kept as it is."""
    if path == "~":
        return "."
    return path.removeprefix("~/")


def _text(value: object, key: str, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value or "\n" in value:
        raise InventoryError(f"{where}: {key} must be a non-empty one-line string, "
                             f"got {value!r}")
    return value


def parse_host(text: str, where: str) -> tuple[str | None, str, int]:
    """(user, host, port) of `user@host[:port]`; InventoryError for anything else."""
    match = _HOST.fullmatch(text)
    port = int(match["port"]) if match and match["port"] else 22
    if match is None or not 0 < port < 65536:
        raise InventoryError(f"{where}: host {text!r} is not user@host[:port] (e.g. "
                             f"pi@192.168.1.20 or pi@pi5.local:2222)")
    return match["user"], match["host"].strip("[]"), port


def _device(name: str, table: object, defaults: dict, path: Path) -> Device:
    where = f"{path}: device {name!r}"
    if not NAME_PATTERN.fullmatch(name):
        raise InventoryError(f"{path}: device name {name!r} must be letters, digits, '.', "
                             f"'_' or '-' (at most 64)")
    if not isinstance(table, dict):
        raise InventoryError(f"{where} must be a table ([devices.{name}])")
    merged = {**defaults, **table}
    secrets = _SECRET_KEYS & set(merged)
    if secrets:
        raise InventoryError(f"{where}: a {min(secrets)} is not kept in the inventory; "
                             f"use a key (identity = \"~/.ssh/id_ed25519\") or an SSH agent")
    unknown = set(merged) - _DEVICE_KEYS
    if unknown:
        raise InventoryError(f"{where}: unknown key {min(unknown)!r} (known: "
                             f"{', '.join(sorted(_DEVICE_KEYS))})")
    if "host" not in merged:
        raise InventoryError(f"{where} has no host = \"user@host[:port]\"")
    user, host, port = parse_host(_text(merged["host"], "host", where), where)
    tags = merged.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and NAME_PATTERN.fullmatch(t)
                                             for t in tags):
        raise InventoryError(f"{where}: tags must be a list of plain words, got {tags!r}")
    timeout = merged.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not 0 < timeout <= 600:
        raise InventoryError(f"{where}: connect_timeout must be seconds in (0, 600], "
                             f"got {timeout!r}")
    texts = {key: _text(merged[key], key, where)
             for key in ("python", "setup_python", "workdir", "known_hosts", "identity")
             if key in merged}
    return Device(name=name, host=host, user=user, port=port, tags=tuple(tags),
                  connect_timeout_s=float(timeout), **texts)


def _read(path: Path) -> dict:
    """The inventory file's tables; InventoryError (one line, naming the file)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_INVENTORY_BYTES:
            raise InventoryError(f"{path}: no inventory there (a TOML file of at most "
                                 f"{MAX_INVENTORY_BYTES >> 10} KiB listing [devices.NAME] "
                                 f"tables; give --inventory FILE)")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InventoryError(f"{path}: cannot read the inventory "
                             f"({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InventoryError(f"{path}: not valid TOML ({error})") from None
    unknown = set(data) - {"defaults", "devices"}
    if unknown:
        raise InventoryError(f"{path}: unknown table {min(unknown)!r} (an inventory "
                             f"has [defaults] and [devices.NAME] tables)")
    if not isinstance(data.get("defaults", {}), dict) \
            or not isinstance(data.get("devices", {}), dict):
        raise InventoryError(f"{path}: [defaults] and [devices.NAME] must be tables")
    return data


def load_inventory(path: Path) -> dict[str, Device]:
    """The devices of an inventory file, in file order; InventoryError (one line, naming
    the file) for anything that cannot be used."""
    data = _read(path)
    defaults, devices = data.get("defaults", {}), data.get("devices", {})
    if not devices:
        raise InventoryError(f"{path}: no devices (add a [devices.NAME] table with a host)")
    return {name: _device(name, table, defaults, path) for name, table in devices.items()}


def load_defaults(path: Path) -> dict:
    """The inventory's [defaults] table (what devices of a board farm inherit too); {}
    when there is no inventory file."""
    return _read(path).get("defaults", {}) if path.exists() else {}


def device_of(name: str, host: str, defaults: dict, path: Path) -> Device:
    """A device reached at `host` (user@host[:port]) with the inventory's defaults, checked
    as an inventory device is; InventoryError naming what is wrong."""
    return _device(name, {"host": host}, defaults, path)


def select_devices(inventory: dict[str, Device], names: list[str], path: Path
                   ) -> list[Device]:
    """The devices `--on NAME[,NAME..]|all` (or tag:T) names, in the order given;
    InventoryError for a name the inventory lacks."""
    chosen: dict[str, Device] = {}
    for name in names:
        if name == "all":
            chosen.update(inventory)
        elif name.startswith("tag:"):
            tagged = {n: d for n, d in inventory.items() if name[4:] in d.tags}
            if not tagged:
                raise InventoryError(f"{path}: no device has tag {name[4:]!r}")
            chosen.update(tagged)
        elif name in inventory:
            chosen[name] = inventory[name]
        else:
            raise InventoryError(f"{path}: no device {name!r} (devices: "
                                 f"{', '.join(inventory)})")
    return list(chosen.values())
