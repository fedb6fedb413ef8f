"""The SSH transport to a device (asyncssh): connect with the host key verified, run a
command built from quoted arguments, copy files over SFTP. Nothing else knows asyncssh.

Security: the device's host key must be in the inventory's known_hosts file (an unknown or
changed key is refused, never accepted on first use); authentication is by public key only
(the inventory's identity file, the SSH agent or the default keys): no password is asked for
or stored; every command is `shlex.join` of its arguments, so no argument reaches the
device's shell as shell text.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from edge_rnn_harness.fleet.inventory import Device

#: a dead connection is noticed after keepalive_interval * count_max seconds of silence
KEEPALIVE_INTERVAL_S = 5.0
KEEPALIVE_COUNT_MAX = 3
#: asyncssh's errors and the OS's that mean "the link to the device is gone"
LINK_ERRORS = (asyncssh.Error, OSError, EOFError, asyncio.TimeoutError)


class HostKeyRefused(Exception):
    """The device's host key is unknown or changed: nothing may run there."""


class Unreachable(Exception):
    """The device cannot be reached or logged into (the reason is the message)."""


@dataclass(frozen=True)
class Completed:
    """A finished remote command: exit code (None if killed by a signal), its output."""

    exit_status: int | None
    stdout: str
    stderr: str


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


async def connect(device: Device) -> asyncssh.SSHClientConnection:
    """An authenticated connection to `device`. HostKeyRefused for an unknown or changed
    host key (or no known_hosts file), Unreachable for anything else that fails."""
    known_hosts = Path(os.path.expanduser(device.known_hosts))
    if not known_hosts.is_file():
        raise HostKeyRefused(f"device {device.name} ({device.address}): known_hosts file "
                             f"{known_hosts} does not exist; log in once with ssh, check the "
                             f"host key fingerprint and accept it, or set known_hosts")
    keys = [os.path.expanduser(device.identity)] if device.identity else ()
    try:
        return await asyncssh.connect(
            device.host, port=device.port, username=device.user, known_hosts=str(known_hosts),
            client_keys=keys or (), preferred_auth="publickey", password_auth=False,
            kbdint_auth=False, connect_timeout=device.connect_timeout_s,
            login_timeout=device.connect_timeout_s,
            keepalive_interval=KEEPALIVE_INTERVAL_S, keepalive_count_max=KEEPALIVE_COUNT_MAX)
    except asyncssh.HostKeyNotVerifiable as error:
        raise HostKeyRefused(f"device {device.name} ({device.address}): host key not "
                             f"verified against {known_hosts} ({_one_line(error)}): the key "
                             f"is unknown or changed; check its fingerprint before "
                             f"accepting it") from None
    except asyncssh.PermissionDenied as error:
        raise Unreachable(f"login refused ({_one_line(error)}): add your public key to the "
                          f"device's authorized_keys, or set identity") from None
    except (*LINK_ERRORS, ValueError) as error:
        raise Unreachable(f"unreachable ({_one_line(error)})") from None


def command_line(argv: list[str]) -> str:
    """The command text sent to the device: every argument quoted for a POSIX shell."""
    return shlex.join(argv)


async def run(conn: asyncssh.SSHClientConnection, argv: list[str], timeout_s: float,
              stdin: str | None = None) -> Completed:
    """Run `argv` on the device (quoted); asyncio.TimeoutError after timeout_s. Link errors
    (asyncssh.Error, OSError) propagate."""
    result = await asyncio.wait_for(
        conn.run(command_line(argv), input=stdin, check=False), timeout_s)
    return Completed(result.exit_status, str(result.stdout or ""), str(result.stderr or ""))


async def put_atomic(sftp: asyncssh.SFTPClient, local: Path, remote: str) -> None:
    """Copy `local` to `remote` under a temporary name, then rename it into place, so a
    dropped connection never leaves half a file under the real name."""
    tmp = f"{remote}.part"
    await sftp.put(str(local), tmp)
    await sftp.posix_rename(tmp, remote)


async def read_file(sftp: asyncssh.SFTPClient, remote: str, max_bytes: int,
                    offset: int = 0) -> bytes | None:
    """Up to max_bytes of `remote` from `offset` (None when it does not exist)."""
    try:
        async with sftp.open(remote, "rb") as handle:
            await handle.seek(offset)
            return await handle.read(max_bytes)
    except asyncssh.SFTPNoSuchFile:
        return None


async def list_dir(sftp: asyncssh.SFTPClient, remote: str) -> list[str]:
    """The names in a device folder ([] when it does not exist)."""
    try:
        return [str(name) for name in await sftp.listdir(remote) if name not in (".", "..")]
    except asyncssh.SFTPNoSuchFile:
        return []
