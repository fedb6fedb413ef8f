"""A remote run over SSH against a local run of the same bundle on the same machine: do the
medians agree (harness compare), and what does the remote path cost (copy, start, fetch)?

    python benchmarks/remote_vs_local.py --bundle B [--rounds 2] [--profile default]

Starts an OpenSSH server on 127.0.0.1 (tests/sshd.py: needs /usr/sbin/sshd and root), so
the "device" is this machine reached over SSH. Per round, alternating: `harness run
--bundle B` here, then `harness run --bundle B --on dev` through the server; prints each
run's wall time, the remote path's step times (from the run's notes), and `harness
compare` of the first local run against the first remote run (and local against local, as
the noise floor).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sshd import SshServer, keygen

HARNESS = [sys.executable, "-m", "edge_rnn_harness"]


def timed(args: list[str]) -> tuple[float, str]:
    """(wall seconds, stderr) of a harness command that must succeed."""
    start = time.perf_counter()
    done = subprocess.run([*HARNESS, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return wall, done.stderr


def main() -> None:
    """Run the rounds and print what they measured."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="remote-bench-") as tmp:
        folder = Path(tmp)
        key = keygen(folder / "client_key")
        server = SshServer(folder / "srv", key).start()
        (folder / "known_hosts").write_text(server.known_hosts_line())
        inventory = folder / "devices.toml"
        inventory.write_text(
            f'[devices.dev]\nhost = "root@127.0.0.1:{server.port}"\n'
            f'python = "{sys.executable}"\nworkdir = "{folder / "work"}"\n'
            f'known_hosts = "{folder / "known_hosts"}"\nidentity = "{key}"\n')
        common = ["run", "--bundle", str(args.bundle), "--profile", args.profile,
                  "--power", "none"]
        outputs: dict[str, list[Path]] = {"local": [], "remote": []}
        try:
            for number in range(args.rounds):
                for side in ("local", "remote"):
                    out = folder / f"{side}{number}.csv"
                    extra = ["--on", "dev", "--inventory", str(inventory)] \
                        if side == "remote" else []
                    wall, stderr = timed([*common, *extra, "--out", str(out)])
                    outputs[side].append(out)
                    steps = re.findall(r"remote path: (.*)", stderr)
                    sent = re.findall(r"bundle: (\d+ file\(s\) sent[^,]*)", stderr)
                    print(f"round {number + 1} {side:6}: wall {wall:6.1f} s"
                          + (f"; {sent[0]}; {steps[0]}" if steps else ""), flush=True)
        finally:
            server.kill()
        for base, cand, title in ((outputs["local"][0], outputs["remote"][0],
                                   "local vs remote"),
                                  (outputs["local"][0], outputs["local"][-1],
                                   "local vs local (noise floor)")):
            done = subprocess.run([*HARNESS, "compare", str(base), str(cand)],
                                  capture_output=True, text=True, check=False)
            print(f"\n== harness compare, {title} (exit {done.returncode})\n{done.stdout}"
                  f"{done.stderr}")


if __name__ == "__main__":
    main()
