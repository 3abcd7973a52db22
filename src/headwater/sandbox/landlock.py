"""Landlock (Linux 5.13+) file-system rules for the code sandbox when bubblewrap is unavailable.

Without mount namespaces the child sees the host's file system; Landlock lets
an unprivileged process (root too) give up access to all of it except what is
listed: the Python installation and system libraries read-only, /dev/null, and
its own working directory. The rules are enforced by the kernel and cannot be
lifted by the process. Used only on the fallback path: bubblewrap builds its own
root instead (and a Landlock domain would stop it from mounting).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

_SYSCALLS = {  # same numbers on x86_64 and aarch64 (new syscalls share the table)
    "create_ruleset": 444,
    "add_rule": 445,
    "restrict_self": 446,
}
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Access rights and the ABI version that introduced them.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14) | (1 << 15)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


@functools.lru_cache(maxsize=1)
def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    version = _libc().syscall(_SYSCALLS["create_ruleset"], None, 0, _CREATE_RULESET_VERSION)
    return int(version) if version > 0 else 0


def _handled_rights(abi: int) -> int:
    return max((rights for version, rights in _ABI_RIGHTS.items() if version <= abi), default=0)


class LandlockInstaller:
    """Prepared in the parent; `install()` runs in the child between fork and exec."""

    def __init__(self, read_only: list[str], read_write: list[str], devices: list[str]):
        self._libc = _libc()
        self.abi = landlock_abi()
        handled = _handled_rights(self.abi)
        self._ruleset = _RulesetAttr(handled)
        read_exec = _EXECUTE | _READ_FILE | _READ_DIR
        self._rules: list[tuple[bytes, _PathBeneathAttr]] = []
        for path, rights in (
            [(p, read_exec) for p in read_only]
            + [(p, handled) for p in read_write]
            + [(p, _READ_FILE | _WRITE_FILE) for p in devices]
        ):
            if os.path.exists(path):
                allowed = rights & handled
                if not os.path.isdir(path):
                    allowed &= _FILE_ONLY_RIGHTS
                self._rules.append((os.fsencode(path), _PathBeneathAttr(allowed, -1)))

    @property
    def available(self) -> bool:
        return self.abi >= 1

    def install(self) -> None:
        libc = self._libc
        ruleset_fd = libc.syscall(
            _SYSCALLS["create_ruleset"], ctypes.byref(self._ruleset), ctypes.sizeof(self._ruleset), 0
        )
        if ruleset_fd < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
        try:
            for path, attr in self._rules:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    attr.parent_fd = fd
                    if libc.syscall(_SYSCALLS["add_rule"], ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(attr), 0) != 0:
                        raise OSError(ctypes.get_errno(), "landlock_add_rule failed")
                finally:
                    os.close(fd)
            if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
            if libc.syscall(_SYSCALLS["restrict_self"], ruleset_fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
        finally:
            os.close(ruleset_fd)
