"""Valgrind client requests from Python with no compiler: the few machine instructions of
valgrind.h's client-request sequence (x86_64 and aarch64), mapped executable from a memfd
and called through ctypes. On real hardware the sequence does nothing and returns its
default; under valgrind it is the request (e.g. switch callgrind's collection on). The
bytes are what gcc and binutils assemble from valgrind.h's `__SPECIAL_INSTRUCTION_PREAMBLE`
for each platform (`tests/test_counters.py` checks them against valgrind itself).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct

#: vg_request(args: unsigned long*, default: unsigned long) -> unsigned long, per machine
_CODE: dict[str, bytes] = {
    # mov %rsi,%rdx; mov %rdi,%rax; rol $3,$13,$61,$51 %rdi; xchg %rbx,%rbx; mov %rdx,%rax;
    # ret
    "x86_64": bytes.fromhex("4889f2" "4889f8" "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"
                            "4887db" "4889d0" "c3"),
    # mov x3,x1; mov x4,x0; ror x12 by 3,13,51,61; orr x10,x10,x10; mov x0,x3; ret
    "aarch64": struct.pack("<9I", 0xAA0103E3, 0xAA0003E4, 0x93CC0D8C, 0x93CC358C,
                           0x93CCCD8C, 0x93CCF58C, 0xAA0A014A, 0xAA0303E0, 0xD65F03C0),
}
_CODE["amd64"] = _CODE["x86_64"]
_CODE["arm64"] = _CODE["aarch64"]

RUNNING_ON_VALGRIND = 0x1001
_CALLGRIND_BASE = (ord("C") << 24) | (ord("T") << 16)
#: callgrind's requests (callgrind.h, in this order from its base)
(DUMP_STATS, ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT, START_INSTRUMENTATION,
 STOP_INSTRUMENTATION) = (_CALLGRIND_BASE + n for n in range(6))


class ClientRequestsUnavailable(RuntimeError):
    """This machine has no client-request sequence here (another architecture)."""


class ClientRequests:
    """The request sequence, mapped once; `request(code)` issues one."""

    def __init__(self) -> None:
        machine = platform.machine().lower()
        code = _CODE.get(machine)
        if code is None:
            raise ClientRequestsUnavailable(
                f"valgrind client requests are not available on {machine} here "
                f"(x86_64 and aarch64 are)")
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        fd = os.memfd_create("harness-client-request")
        try:
            os.write(fd, code)
            address = libc.mmap(None, len(code), mmap.PROT_READ | mmap.PROT_EXEC,
                                mmap.MAP_PRIVATE, fd, 0)
        finally:
            os.close(fd)
        if address in (None, ctypes.c_void_p(-1).value):
            raise ClientRequestsUnavailable(
                f"cannot map the client-request code executable "
                f"({os.strerror(ctypes.get_errno())})")
        prototype = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
                                     ctypes.c_ulong)
        self._call = prototype(address)

    def request(self, code: int, *args: int, default: int = 0) -> int:
        """Issue request `code` with up to five arguments; the answer (`default` when not
        running under valgrind)."""
        block = (ctypes.c_ulong * 6)(code, *args, *([0] * (5 - len(args))))
        return int(self._call(block, default))

    def running_on_valgrind(self) -> int:
        """How many valgrinds deep this process runs (0 on real hardware)."""
        return self.request(RUNNING_ON_VALGRIND)
