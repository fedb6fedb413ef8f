"""A real OpenSSH server on 127.0.0.1 for the remote-run tests: started on a free port with
a freshly generated host key, accepting one generated client key, stopped (or killed
mid-run) by the test. Nothing of the transport is mocked."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SSHD = Path("/usr/sbin/sshd")


def sshd_missing() -> str | None:
    """Why no test server can run here (None: it can)."""
    if not SSHD.exists():
        return "OpenSSH's sshd is not installed (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed (apt-get install openssh-client)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    """A new ed25519 key pair at `path` (+ .pub), no passphrase."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


@dataclass
class SshServer:
    """One sshd on 127.0.0.1:port that accepts `client_key` for the current user."""

    folder: Path
    client_key: Path
    port: int = 0
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host_key = self.folder / "host_ed25519"
        if not self.host_key.exists():
            keygen(self.host_key)
        self.port = self.port or _free_port()
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
        authorized = self.folder / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        authorized.chmod(0o600)
        (self.folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"UsePAM no\nStrictModes no\nPidFile {self.folder / 'sshd.pid'}\n"
            f"LogLevel ERROR\nSubsystem sftp internal-sftp\n")

    def known_hosts_line(self) -> str:
        """This server's line for a known_hosts file."""
        public = Path(f"{self.host_key}.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n"

    def start(self) -> SshServer:
        """Start sshd in the foreground (-D) and wait until it accepts connections (a
        server already running is left as it is)."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.folder / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=(self.folder / "sshd.log").open("ab"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 20 s")

    def kill(self) -> None:
        """Kill the server and every session it serves (a board losing its network), but not
        the processes those sessions detached (they go on, as on a real device)."""
        if self.process is None:
            return
        try:
            sessions = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            sessions = []
        for process in [psutil.Process(self.process.pid), *sessions]:
            try:
                if process.pid == self.process.pid or process.name().startswith("sshd"):
                    process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=10)
        self.process = None
