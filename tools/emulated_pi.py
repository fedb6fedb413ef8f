"""Run a bundle on an emulated Raspberry Pi OS: Debian bookworm arm64 (glibc 2.36, CPython
3.11, the base of Raspberry Pi OS 64-bit) under QEMU user-mode emulation.

    sudo python tools/emulated_pi.py --bundle B --out RESULTS.csv [--root DIR]
        [--cache DIR] [-- harness run options, e.g. --backends all --profile quick]

As root on a Debian-like Linux with qemu-user-static registered in binfmt_misc and
debootstrap installed (`apt-get install qemu-user-static binfmt-support debootstrap`):

1. builds the arm64 root with debootstrap (python3, python3-venv), or reuses it;
2. downloads, on this host, the aarch64 CPython 3.11 wheels of the `device` extra (wheels
   only, nothing built) and builds the harness wheel from this checkout;
3. installs them offline in a virtualenv inside the root (the harness wheel every time, so
   the root always runs this checkout's harness);
4. copies the bundle in, runs `harness run --bundle` there (in a private mount namespace:
   /proc and /dev are mounted for the run and vanish with it; /sys is not, see `in_root`)
   and copies the results CSV, pyperf JSON and log out.

What it proves: the device half installs, loads, matches the reference and measures
accuracy on ARM code paths. Emulated latency is not a Pi's latency: the rows say
`device` = "qemu-aarch64 (emulated)", and compare/gate refuse to judge them against rows
of a real device. Exit codes: those of `harness run`; 2 when this machine cannot do it
(one line: not root, no aarch64 handler in binfmt_misc, no debootstrap).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,ca-certificates"
#: every manylinux tag bookworm's glibc 2.36 accepts: pip --platform takes only those listed
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64"
                                         for minor in range(17, 37)]
VENV = "/opt/edge-rnn-harness"
#: what the harness wheel is not built from: these names anywhere in the checkout...
COPY_IGNORED = (".git", ".venv", "*.egg-info", "__pycache__", ".ci", ".pytest_cache")
#: ... and these at its top only (the package has a `bundle` subpackage of its own)
TOP_IGNORED = ("build", "bundle", "results")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
    "edge-rnn-harness-aarch64"


def copy_ignored(folder: str, names: list[str]) -> set[str]:
    """shutil.copytree's ignore: COPY_IGNORED anywhere, TOP_IGNORED in the checkout's top."""
    ignored = set(shutil.ignore_patterns(*COPY_IGNORED)(folder, names))
    if Path(folder).resolve() == PROJECT.resolve():
        ignored |= set(TOP_IGNORED) & set(names)
    return ignored


class CannotEmulate(RuntimeError):
    """This machine cannot run the emulated device (one line, exit 2)."""


def log(text: str) -> None:
    """One progress line on stderr, with the time since start."""
    print(f"[{time.monotonic() - START_S:6.0f} s] {text}", file=sys.stderr, flush=True)


START_S = time.monotonic()


def check_host() -> None:
    """CannotEmulate unless root, an enabled aarch64 binfmt_misc handler and debootstrap."""
    if os.geteuid() != 0:
        raise CannotEmulate("must run as root (debootstrap, chroot and mount need it)")
    handler = BINFMT / "qemu-aarch64"
    if not handler.is_file():
        raise CannotEmulate(f"no aarch64 handler in binfmt_misc ({handler} is missing): "
                            f"apt-get install qemu-user-static binfmt-support, and mount "
                            f"binfmt_misc on {BINFMT}")
    if "enabled" not in handler.read_text():
        raise CannotEmulate(f"{handler} is disabled: update-binfmts --enable qemu-aarch64")
    if shutil.which("debootstrap") is None:
        raise CannotEmulate("debootstrap is not installed: apt-get install debootstrap")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """Run a host command; its output goes to stderr; CalledProcessError on failure."""
    return subprocess.run(cmd, check=True, stdout=sys.stderr, **kwargs)  # type: ignore


def in_root(root: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    """Run `cmd` inside the root, in a private mount namespace with /proc and /dev.

    /sys is left out on purpose: it would show the x86 host's CPU topology to aarch64 code,
    and the cpuinfo library inside onnxruntime and XNNPACK (LiteRT) crashes on it with
    SIGSEGV (measured here with QEMU 7.2); without it they warn and run. Nothing of the
    host's cpufreq or thermal state is then mistaken for the emulated device's either.
    """
    mounts = (f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
              f"exec chroot {root} \"$@\"")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           mounts, "in_root", *cmd], check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                               "HOME": "/root"})


def ensure_root(root: Path) -> None:
    """Build the arm64 bookworm root, unless a complete one is there."""
    if (root / ".complete").is_file():
        log(f"reusing the arm64 root {root}")
        return
    if root.exists():
        shutil.rmtree(root)
    log(f"building the arm64 {SUITE} root in {root} (debootstrap, a few minutes)")
    run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={PACKAGES}", SUITE,
         str(root), MIRROR])
    (root / ".complete").write_text(f"{SUITE} arm64 {PACKAGES}\n")


def ensure_wheels(cache: Path) -> Path:
    """The harness wheel of this checkout and the device extra's aarch64 wheels, in
    cache/wheels (downloaded once, then reused)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.glob("edge_rnn_harness-*.whl"):
        old.unlink()
    log("building the harness wheel from this checkout")
    with tempfile.TemporaryDirectory() as tmp:  # a copy: never touches the checkout's build/
        source = Path(tmp) / "src"
        shutil.copytree(PROJECT, source, ignore=copy_ignored)
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w",
             str(wheels)])
    harness_wheel = next(wheels.glob("edge_rnn_harness-*.whl"))
    log("downloading the device extra's aarch64 wheels for CPython 3.11 (cached)")
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
         "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         *platforms, "--find-links", str(wheels), "-d", str(wheels),
         f"{harness_wheel}[device]"])
    return wheels


def ensure_venv(root: Path, wheels: Path) -> None:
    """Install the wheels offline in a virtualenv inside the root; the harness wheel is
    reinstalled every time so the root runs this checkout."""
    inside = root / "wheels"
    if inside.exists():
        shutil.rmtree(inside)
    shutil.copytree(wheels, inside)
    pip = f"{VENV}/bin/pip"
    if not (root / VENV.lstrip("/") / "bin/python").exists():
        log("creating the virtualenv inside the root (emulated)")
        _check(in_root(root, ["python3", "-m", "venv", VENV]), "python3 -m venv")
    log("installing the device extra offline inside the root (emulated)")
    harness_wheel = next(inside.glob("edge_rnn_harness-*.whl")).name
    _check(in_root(root, [pip, "install", "-q", "--no-index", "--find-links", "/wheels",
                          f"/wheels/{harness_wheel}[device]"]), "pip install")
    _check(in_root(root, [pip, "install", "-q", "--no-index", "--no-deps", "--force-reinstall",
                          f"/wheels/{harness_wheel}"]), "pip install (harness)")


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} inside the arm64 root exited {done.returncode}")


def run_bundle(root: Path, bundle: Path, out: Path, harness_args: list[str]) -> int:
    """Copy the bundle in, run it emulated, copy the results out; harness run's exit code."""
    work = root / "work"
    if work.exists():
        shutil.rmtree(work)
    (work / "results").mkdir(parents=True)
    shutil.copytree(bundle, work / "bundle", symlinks=True)
    log(f"running harness run --bundle under emulation: {' '.join(harness_args)}")
    done = in_root(root, [f"{VENV}/bin/harness", "run", "--bundle", "/work/bundle",
                          "--out", "/work/results/emulated.csv", *harness_args])
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".csv", ".json", ".log"):
        produced = (work / "results/emulated.csv").with_suffix(suffix)
        if produced.is_file():
            shutil.copyfile(produced, out.with_suffix(suffix))
    log(f"harness run exited {done.returncode}; results in {out}")
    return done.returncode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; everything after `--` goes to `harness run`."""
    parser = argparse.ArgumentParser(prog="tools/emulated_pi.py", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle written by 'harness export'")
    parser.add_argument("--out", type=Path, help="results CSV to write here (JSON and log "
                        "beside it)")
    parser.add_argument("--root", type=Path, default=DEFAULT_CACHE / "root",
                        help=f"the arm64 root, built once and reused (default "
                             f"{DEFAULT_CACHE}/root)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the aarch64 wheels are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--prepare-only", action="store_true",
                        help="build the root and install the harness, run nothing")
    parser.add_argument("harness_args", nargs="*", default=None,
                        help="options for harness run after -- (default: --backends all "
                             "--profile quick --power none)")
    args = parser.parse_args(argv)
    if not args.prepare_only and (args.bundle is None or args.out is None):
        parser.error("--bundle and --out are needed (or --prepare-only)")
    if args.bundle is not None and not (args.bundle / "manifest.json").is_file():
        parser.error(f"--bundle {args.bundle} has no manifest.json (write one with "
                     f"'harness export --out DIR')")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 2 with one line when this machine cannot emulate."""
    args = parse_args(argv)
    try:
        check_host()
        args.cache.mkdir(parents=True, exist_ok=True)
        with (args.cache / ".lock").open("w") as lock:
            log("waiting for another emulated_pi.py using this cache, if any")
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (e.g. CI's early start)
            ensure_root(args.root.resolve())
            ensure_venv(args.root.resolve(), ensure_wheels(args.cache))
    except CannotEmulate as error:
        print(f"emulated_pi: {error}", file=sys.stderr)
        return 2
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        print(f"emulated_pi: {error}", file=sys.stderr)
        return 1
    if args.prepare_only:
        return 0
    return run_bundle(args.root.resolve(), args.bundle, args.out,
                      args.harness_args or ["--backends", "all", "--profile", "quick",
                                            "--power", "none"])


if __name__ == "__main__":
    raise SystemExit(main())
