"""A small seccomp filter for the code sandbox: no new processes, no sockets, no limit changes.

Why a filter and not only RLIMIT_NPROC: the kernel does not apply RLIMIT_NPROC
to root (and bubblewrap started by root keeps kernel uid 0), so a fork bomb
would only be stopped by the wall clock. The filter makes fork/vfork and
process-creating clone() fail with EPERM for everyone; threads (clone with
CLONE_THREAD) stay possible and are bounded by RLIMIT_AS. Sockets fail too, so
the fallback path without a network namespace still has no network.

The program is classic BPF (struct sock_filter[]), assembled here for x86_64
and aarch64; on any other architecture `filter_program()` returns None and the
sandbox runs without it (and says so once).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import platform
import struct

# linux/filter.h, linux/seccomp.h, linux/audit.h
_BPF_LD_W_ABS = 0x00 | 0x00 | 0x20
_BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00
_BPF_JMP_JGE_K = 0x05 | 0x30 | 0x00
_BPF_JMP_JSET_K = 0x05 | 0x40 | 0x00
_BPF_RET_K = 0x06 | 0x00
_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0_LOW = 0, 4, 16  # struct seccomp_data, little-endian

_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# syscalls refused with EPERM, per architecture; clone is checked by flags, clone3 gets
# ENOSYS so that glibc falls back to clone() for threads.
_ARCHES = {
    "x86_64": {
        "audit_arch": 0xC000003E,
        "x32_bit": 0x40000000,
        "clone": 56,
        "clone3": 435,
        "refused": {
            "fork": 57, "vfork": 58, "socket": 41, "socketpair": 53, "ptrace": 101, "kill": 62,
            "tkill": 200, "tgkill": 234, "setrlimit": 160, "prlimit64": 302, "process_vm_readv": 310,
            "process_vm_writev": 311, "unshare": 272, "setns": 308, "mount": 165, "keyctl": 250,
            "add_key": 248, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
            "io_uring_setup": 425, "setsid": 112, "setpgid": 109, "personality": 135,
        },
    },
    "aarch64": {
        "audit_arch": 0xC00000B7,
        "x32_bit": None,
        "clone": 220,
        "clone3": 435,
        "refused": {
            "socket": 198, "socketpair": 199, "ptrace": 117, "kill": 129, "tkill": 130, "tgkill": 131,
            "setrlimit": 164, "prlimit64": 261, "process_vm_readv": 270, "process_vm_writev": 271,
            "unshare": 97, "setns": 268, "mount": 40, "keyctl": 219, "add_key": 217, "bpf": 280,
            "userfaultfd": 282, "perf_event_open": 241, "io_uring_setup": 425, "setsid": 157,
            "setpgid": 154, "personality": 92,
        },
    },
}


def _assemble(instructions: list[tuple]) -> bytes:
    """Instructions are (code, k, jt_label, jf_label) or ("label", name); jumps go forward to labels."""
    labels: dict[str, int] = {}
    position = 0
    for item in instructions:
        if item[0] == "label":
            labels[item[1]] = position
        else:
            position += 1
    program = b""
    position = 0
    for item in instructions:
        if item[0] == "label":
            continue
        code, k, jt, jf = item
        jt_offset = labels[jt] - position - 1 if jt else 0
        jf_offset = labels[jf] - position - 1 if jf else 0
        program += struct.pack("=HBBI", code, jt_offset, jf_offset, k)
        position += 1
    return program


def filter_program() -> bytes | None:
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    body: list[tuple] = [
        (_BPF_LD_W_ABS, _OFFSET_ARCH, None, None),
        (_BPF_JMP_JEQ_K, arch["audit_arch"], None, "kill"),
        (_BPF_LD_W_ABS, _OFFSET_NR, None, None),
    ]
    if arch["x32_bit"]:
        body.append((_BPF_JMP_JGE_K, arch["x32_bit"], "eperm", None))
    for number in arch["refused"].values():
        body.append((_BPF_JMP_JEQ_K, number, "eperm", None))
    body += [
        (_BPF_JMP_JEQ_K, arch["clone3"], "enosys", None),
        (_BPF_JMP_JEQ_K, arch["clone"], None, "allow"),
        (_BPF_LD_W_ABS, _OFFSET_ARG0_LOW, None, None),
        (_BPF_JMP_JSET_K, _CLONE_NAMESPACES, "eperm", None),
        (_BPF_JMP_JSET_K, _CLONE_THREAD, "allow", "eperm"),
        ("label", "allow"),
        (_BPF_RET_K, _RET_ALLOW, None, None),
        ("label", "eperm"),
        (_BPF_RET_K, _RET_ERRNO | errno.EPERM, None, None),
        ("label", "enosys"),
        (_BPF_RET_K, _RET_ERRNO | errno.ENOSYS, None, None),
        ("label", "kill"),
        (_BPF_RET_K, _RET_KILL_PROCESS, None, None),
    ]
    return _assemble(body)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class SelfInstaller:
    """Installs the filter in the calling process: meant for a child's preexec_fn.

    Everything is prepared in the parent (library lookup, buffers) so the forked
    child only makes two prctl calls.
    """

    def __init__(self, program: bytes):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))

    def install(self) -> None:
        if self._libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "seccomp filter could not be installed")
