"""Board farms: devices reserved through a labgrid coordinator, so that a team shares its
boards and two runs never measure on one board at once. The one module that knows labgrid.

A labgrid *place* is a device here: its `NetworkService` resource (exported by the
labgrid exporter on the host the board hangs off) gives the address, port and user to reach
the board over SSH, and the rest is the remote path of inventory devices (host keys
verified the same way; python, workdir, known_hosts and the key from the inventory's
`[defaults]`). The place's tags go into the rows (`device_tags`).

`Farm` is a context manager: every place it acquired is released when it exits, on success,
on an error and on Ctrl-C; a place someone else holds is never released by it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from edge_rnn_harness.fleet.inventory import NAME_PATTERN, Device, device_of

#: how `--on` names places of a farm: labgrid:PLACE[,PLACE..] or labgrid:KEY=VALUE[,..]
FARM_PREFIX = "labgrid:"
#: the coordinator's environment variable (labgrid's own)
COORDINATOR_ENV = "LG_COORDINATOR"
#: longest wait for a connection to the coordinator
CONNECT_TIMEOUT_S = 10.0
#: how often a place someone else holds is looked at again while waiting for it
POLL_S = 0.5
#: longest --wait
MAX_WAIT_S = 24 * 3600.0
_TAG = re.compile(r"[a-z][a-z0-9_]*")


class FarmError(ValueError):
    """The farm cannot be used as asked (no coordinator, an unknown place, a place without a
    NetworkService); the CLI turns it into one line and exit code 2."""


@dataclass(frozen=True)
class FarmSelection:
    """Which places a run wants: by name, or every place whose tags hold all of `tags`."""

    names: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


def parse_farm_spec(text: str) -> FarmSelection | None:
    """`labgrid:PLACE[,PLACE..]` or `labgrid:KEY=VALUE[,KEY=VALUE..]`; None for any other
    `--on` value (inventory devices); FarmError for a malformed one."""
    if not text.startswith(FARM_PREFIX):
        return None
    parts = [part.strip() for part in text[len(FARM_PREFIX):].split(",") if part.strip()]
    if not parts:
        raise FarmError(f"--on {text}: name places (labgrid:PLACE[,PLACE..]) or tags "
                        f"(labgrid:KEY=VALUE[,..])")
    tags = [part.partition("=") for part in parts if "=" in part]
    names = [part for part in parts if "=" not in part]
    if tags and names:
        raise FarmError(f"--on {text}: give place names or tags, not both")
    for key, _, value in tags:
        if not _TAG.fullmatch(key) or not NAME_PATTERN.fullmatch(value):
            raise FarmError(f"--on {text}: {key}={value} is not a tag KEY=VALUE (lower-case "
                            f"key, plain-word value)")
    for name in names:
        if not NAME_PATTERN.fullmatch(name):
            raise FarmError(f"--on {text}: {name!r} is not a place name")
    return FarmSelection(tuple(dict.fromkeys(names)),
                         tuple((key, value) for key, _, value in tags))


@dataclass(frozen=True)
class Place:
    """One place as the coordinator knows it: its tags, who holds it ("host/user", or
    None), and its NetworkService's address, port and user (None when it has none)."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    held_by: str | None = None
    address: str | None = None
    port: int = 22
    user: str | None = None

    @property
    def tag_text(self) -> str:
        """The tags as the rows carry them: KEY=VALUE;KEY=VALUE, sorted."""
        return ";".join(f"{key}={value}" for key, value in sorted(self.tags.items()))

    def device(self, defaults: dict[str, Any], inventory: Path,
               identity: str | None = None) -> Device:
        """This place as a device of the remote path, with the inventory's defaults (and
        `identity`, the key, when given); its work folder is a subfolder named after the
        place, so two places on one host never share run folders. FarmError for a place
        without a NetworkService, InventoryError for defaults that cannot be used."""
        if self.address is None:
            raise FarmError(f"place {self.name} has no NetworkService resource: its exporter "
                            f"must export one (address, username, port) for the board")
        address = f"[{self.address}]" if ":" in self.address else self.address
        host = f"{self.user + '@' if self.user else ''}{address}:{self.port}"
        device = device_of(self.name, host, defaults, inventory)
        return dataclasses.replace(device, workdir=f"{device.workdir.rstrip('/')}/{self.name}",
                                   identity=identity or device.identity)


def coordinator_address(given: str | None) -> str:
    """--coordinator, else LG_COORDINATOR; FarmError when neither names one."""
    address = given or os.environ.get(COORDINATOR_ENV)
    if not address:
        raise FarmError(f"no labgrid coordinator: give --coordinator HOST[:PORT] or set "
                        f"{COORDINATOR_ENV}")
    return address


class Farm:
    """A session with a labgrid coordinator: the places, and acquiring and releasing them.
    Use it as a context manager; it releases what it acquired when it exits."""

    def __init__(self, address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.address, self.timeout_s = address, timeout_s
        self.acquired: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None

    def __enter__(self) -> Self:
        try:
            from labgrid.remote.client import ClientSession, Error
            from labgrid.util.proxy import proxymanager
        except ImportError as error:
            raise FarmError(f"board farms need labgrid ({error}); install the [farm] "
                            f"extra") from None

        self._loop = asyncio.new_event_loop()
        target = proxymanager.get_grpc_address(self.address, default_port=20408)
        args = argparse.Namespace(place=None, allow_unmatched=True, kick=False)
        async def open_session() -> Any:  # made inside its loop: grpc.aio binds to it
            session = ClientSession(target, self._loop, args=args)
            await asyncio.wait_for(session.start(), self.timeout_s)
            return session

        try:
            self._session = self._call(open_session())
        except (Error, TimeoutError, OSError, ValueError) as error:
            self._close()
            raise FarmError(f"labgrid coordinator {self.address} cannot be reached "
                            f"({_first_line(error)})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for name in list(self.acquired):
                self.release(name)
        finally:
            self._close()

    def places(self) -> list[Place]:
        """Every place the coordinator has, with its tags, holder and NetworkService."""
        services = self._network_services()
        found = []
        for name, place in sorted(self._session.places.items()):
            service = next((services[path] for path in services
                            if any(match.ismatch(path) for match in place.matches)), {})
            found.append(Place(name, dict(place.tags), place.acquired or None,
                               service.get("address"), int(service.get("port") or 22),
                               service.get("username")))
        return found

    def select(self, selection: FarmSelection) -> list[Place]:
        """The places of `selection`; FarmError for an unknown name or a tag nobody has."""
        places = {place.name: place for place in self.places()}
        if selection.names:
            unknown = [name for name in selection.names if name not in places]
            if unknown:
                raise FarmError(f"labgrid coordinator {self.address} has no place "
                                f"{unknown[0]!r}; places: {', '.join(places) or 'none'}")
            return [places[name] for name in selection.names]
        chosen = [place for place in places.values()
                  if all(place.tags.get(key) == value for key, value in selection.tags)]
        if not chosen:
            wanted = ",".join(f"{key}={value}" for key, value in selection.tags)
            raise FarmError(f"no place of labgrid coordinator {self.address} has the tags "
                            f"{wanted}")
        return chosen

    @property
    def me(self) -> str:
        """How the coordinator names this client as a holder: host/user."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    def acquire_all(self, names: list[str], wait_s: float = 0.0) -> dict[str, str]:
        """Acquire every place of `names`, waiting up to `wait_s` in all for those someone
        else holds; {place: why not (who holds it)} for those that stayed held."""
        deadline = time.monotonic() + wait_s
        held = {}
        for name in names:
            reason = self.acquire(name, deadline)
            if reason:
                said = f" after waiting {wait_s:g} s" if wait_s else \
                    "; give --wait SECONDS to wait for it"
                held[name] = reason + said
        return held

    def acquire(self, name: str, deadline: float | None = None) -> str | None:
        """Acquire place `name`, waiting until `deadline` (time.monotonic(); None: no wait)
        while someone else holds it; None when it is ours, else who holds it."""
        from labgrid.remote.client import Error

        deadline = time.monotonic() if deadline is None else deadline
        while True:
            holder = self._session.places[name].acquired
            if not holder:
                try:
                    self._call(self._acquire(name))
                    self.acquired.append(name)
                    return None
                except Error as error:  # taken between our look and our request
                    holder = self._session.places[name].acquired or _first_line(error)
            if time.monotonic() >= deadline:
                return f"place {name} is held by {holder} (labgrid)"
            self._call(asyncio.sleep(POLL_S))
            self._call(self._session.sync_with_coordinator())

    def release(self, name: str) -> None:
        """Release a place this Farm acquired (never one someone else holds)."""
        if name not in self.acquired:
            raise ValueError(f"place {name} was not acquired by this run")
        self.acquired.remove(name)
        place = self._session.places.get(name)
        if place is None or place.acquired != self.me:
            return  # already released, or taken from us (release-from by its owner)
        self._session.args.place = name
        self._call(self._session.release())

    async def _acquire(self, name: str) -> None:
        self._session.args.place = name
        await self._session.acquire()

    def _network_services(self) -> dict[tuple[str, str, str, str], dict]:
        """(exporter, group, class, name) -> params of every NetworkService resource."""
        return {(exporter, group_name, resource.cls, resource_name): dict(resource.params)
                for exporter, groups in self._session.resources.items()
                for group_name, group in groups.items()
                for resource_name, resource in group.items()
                if resource.cls == "NetworkService"}

    def _call(self, awaitable: Any) -> Any:
        """Run one step of the session on its own event loop, with labgrid's own logging
        and prints (stdout) kept off the terminal: the harness says what happened."""
        assert self._loop is not None
        with _quiet():
            return self._loop.run_until_complete(awaitable)

    def _close(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            if self._session is not None:
                self._call(self._session.stop())
                self._call(self._session.close())
        self._loop.close()
        self._loop = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].removeprefix("Error: ")
