"""Runs user Python for the `code` node in a separate, limited process. Never in this one.

The user's code defines `def main(**inputs) -> dict`; `run_code` starts a child
interpreter (`-I -S -B`: isolated, no site-packages, no bytecode writes) with
  - an empty environment: no HEADWATER_* or any other variable of the server;
  - a fresh temporary working directory, deleted afterwards;
  - rlimits set before exec: CPU seconds, address space, no core files, no
    file writes (RLIMIT_FSIZE 0), few file descriptors, and no new processes;
  - a seccomp filter: no fork/vfork/process clone, no sockets, no rlimit changes,
    no signals to other processes (see seccomp.py);
  - where bubblewrap works: new namespaces for everything (no network, own pid
    space, own mounts), only the Python installation and system libraries
    mounted read-only, an empty tmpfs /tmp, and the working directory; nothing
    else of the host's file system (data dir, config, keys) exists in there;
  - a wall-clock limit after which the whole process group is killed; the child
    also dies with the server (PR_SET_PDEATHSIG, bwrap --die-with-parent), and a
    cancelled run (a stopped flow) kills it at once;
  - a cap on what comes back.
Where bubblewrap is missing or does not work here, the same child runs with the
rlimits, seccomp, Landlock file-system rules (kernel 5.13+: only the Python
installation, system libraries and its working directory are reachable) and the
runner's audit hook; this is logged once.

The request and the reply travel as JSON over stdin/stdout; child_runner.py is
the other side.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError
from headwater.sandbox import seccomp
from headwater.sandbox.landlock import LandlockInstaller, landlock_abi

logger = logging.getLogger("headwater.sandbox")

_RUNNER_SOURCE = (Path(__file__).with_name("child_runner.py")).read_text(encoding="utf-8")
_RUN_MARKER = "headwater-code-run"
_SANDBOX_WORKDIR = "/sandbox"
# Room for the reply's envelope around a result of max_output_bytes.
_REPLY_OVERHEAD = 64 * 1024
_FILE_DESCRIPTORS = 32
_WORKDIR_PREFIX = "headwater-code-"
# A working directory this old belongs to a server that was killed mid-run.
_STALE_WORKDIR_SECONDS = 3600
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass
class CodeLimits:
    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 256 * 1024 * 1024
    max_output_bytes: int = 1024 * 1024


class CodeExecutionError(HeadwaterError):
    """422: the user's code failed; `detail` says how, never with a server path or secret."""

    status_code = 422


def _interpreter() -> str:
    """The real interpreter behind a venv: with -S the venv adds nothing, and it must be mountable."""
    return os.path.realpath(sys.executable)


class _SandboxMode:
    """Decided once per process: can bubblewrap (and seccomp) run children here?"""

    def __init__(self) -> None:
        self.bwrap: str | None = None
        self.seccomp_program: bytes | None = None
        self.landlock = False
        self.decided = False
        self._lock: asyncio.Lock | None = None

    @property
    def name(self) -> str:
        return "bwrap" if self.bwrap else "rlimit"

    async def decide(self) -> None:
        if self.decided:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.decided:
                return
            _remove_stale_workdirs()
            self.seccomp_program = seccomp.filter_program()
            if self.seccomp_program is not None and not await _probe(None, self.seccomp_program, False):
                logger.warning("code sandbox: seccomp filter cannot be installed here; running without it")
                self.seccomp_program = None
            if self.seccomp_program is None:
                logger.warning("code sandbox: no seccomp filter on this machine (%s)", os.uname().machine)
            self.landlock = landlock_abi() >= 1 and await _probe(None, self.seccomp_program, True)
            candidate = shutil.which("bwrap")
            if candidate and await _probe(candidate, self.seccomp_program, False):
                self.bwrap = candidate
                logger.info("code sandbox: bubblewrap at %s", candidate)
            else:
                reason = "is not installed" if not candidate else "does not work on this machine"
                logger.warning(
                    "code sandbox: bubblewrap %s; code runs in a limited child process without namespaces "
                    "(Landlock file-system rules: %s)",
                    reason,
                    "on" if self.landlock else "not available",
                )
            self.decided = True


_mode = _SandboxMode()


def sandbox_mode() -> str:
    """'bwrap' or 'rlimit' once the first run (or `await prepare_sandbox()`) decided it."""
    return _mode.name


async def prepare_sandbox() -> str:
    await _mode.decide()
    return _mode.name


async def _probe(bwrap: str | None, program: bytes | None, landlock: bool) -> bool:
    try:
        reply = await _execute(
            {"source": "import decimal\ndef main():\n    return {'ok': 1}\n", "inputs": {}},
            CodeLimits(wall_seconds=20.0),
            bwrap=bwrap,
            seccomp_program=program,
            landlock=landlock,
        )
    except Exception as exc:  # any failure means: this mode does not work here
        logger.debug("code sandbox probe failed (bwrap=%s, landlock=%s): %s", bool(bwrap), landlock, exc)
        return False
    if reply != {"ok": True, "result": {"ok": 1}}:
        logger.warning("code sandbox probe (bwrap=%s, landlock=%s) answered %r", bool(bwrap), landlock, reply)
        return False
    return True


async def run_code(source: str, inputs: dict[str, Any], limits: CodeLimits = CodeLimits()) -> dict[str, Any]:
    if not isinstance(source, str) or not source.strip():
        raise CodeExecutionError("the code is empty")
    if not isinstance(inputs, dict) or not all(isinstance(k, str) and k.isidentifier() for k in inputs):
        raise CodeExecutionError("inputs must be an object whose keys are valid Python names")
    await _mode.decide()
    reply = await _execute(
        {"source": source, "inputs": inputs},
        limits,
        bwrap=_mode.bwrap,
        seccomp_program=_mode.seccomp_program,
        landlock=_mode.landlock,
    )
    if reply.get("ok") is True and isinstance(reply.get("result"), dict):
        return reply["result"]
    raise CodeExecutionError(str(reply.get("error") or "the code failed"))


async def _execute(
    request: dict[str, Any],
    limits: CodeLimits,
    *,
    bwrap: str | None,
    seccomp_program: bytes | None,
    landlock: bool,
) -> dict[str, Any]:
    try:
        payload = json.dumps({**request, "max_output_bytes": limits.max_output_bytes}, allow_nan=False).encode()
    except (TypeError, ValueError):
        raise CodeExecutionError("inputs must be JSON values") from None

    workdir = tempfile.mkdtemp(prefix=_WORKDIR_PREFIX)
    seccomp_fd = None
    try:
        python_args = ["-I", "-S", "-B", "-c", _RUNNER_SOURCE, _RUN_MARKER, _new_run_id()]
        preexec_seccomp = None
        preexec_landlock = None
        pass_fds: tuple[int, ...] = ()
        if bwrap:
            if seccomp_program is not None:
                seccomp_fd = _memfd_with(seccomp_program)
                pass_fds = (seccomp_fd,)
            argv = [bwrap, *_bwrap_arguments(workdir, seccomp_fd), _interpreter(), *python_args]
            cwd = "/"
        else:
            if seccomp_program is not None:
                preexec_seccomp = seccomp.SelfInstaller(seccomp_program)
            if landlock:
                preexec_landlock = _landlock_rules(workdir)
            argv = [_interpreter(), *python_args]
            cwd = workdir
        spawning = asyncio.ensure_future(
            _spawn(argv, cwd, pass_fds, limits, bool(bwrap), preexec_landlock, preexec_seccomp)
        )
        try:
            # Shielded: asyncio cannot clean up a child whose start was cancelled half-way
            # (it kills only the leader and can wait forever for the pipes).
            process = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            await _stop_started(spawning)
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("code sandbox: could not start the child process: %s", exc)
            raise CodeExecutionError("the code sandbox could not start") from None
        if seccomp_fd is not None:
            os.close(seccomp_fd)
            seccomp_fd = None
        return await _talk(process, payload, limits)
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)
        shutil.rmtree(workdir, ignore_errors=True)


async def _stop_started(spawning: asyncio.Future) -> None:
    """The caller was cancelled while the child was starting: let the start finish, then kill it."""
    try:
        process = await asyncio.wait_for(spawning, timeout=10)
    except BaseException:  # it did not start, or will not say: nothing of ours to kill
        return
    _kill_group(process)
    await _reap(process)


async def _spawn(
    argv: list[str],
    cwd: str,
    pass_fds: tuple[int, ...],
    limits: CodeLimits,
    in_namespaces: bool,
    preexec_landlock: LandlockInstaller | None,
    preexec_seccomp: seccomp.SelfInstaller | None,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=cwd,
        env={},  # nothing of the server's environment (keys, HEADWATER_*) reaches user code
        start_new_session=True,
        pass_fds=pass_fds,
        preexec_fn=_limits_setter(
            limits,
            in_namespaces=in_namespaces,
            landlock_installer=preexec_landlock,
            seccomp_installer=preexec_seccomp,
        ),
    )


def _new_run_id() -> str:
    return uuid.uuid4().hex


async def _talk(process: asyncio.subprocess.Process, payload: bytes, limits: CodeLimits) -> dict[str, Any]:
    """Send the request, read a bounded reply, enforce the wall clock; the process is gone afterwards."""
    cap = limits.max_output_bytes + _REPLY_OVERHEAD
    received = bytearray()
    verdict: str | None = None

    async def exchange() -> None:
        nonlocal verdict
        try:
            process.stdin.write(payload)
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            process.stdin.close()
        while chunk := await process.stdout.read(65536):
            received.extend(chunk)
            if len(received) > cap:
                verdict = "output too large"
                return
        await process.wait()

    try:
        await asyncio.wait_for(exchange(), timeout=limits.wall_seconds)
    except asyncio.TimeoutError:
        verdict = "time limit exceeded"
    finally:
        _kill_group(process)
        await _reap(process)

    if verdict:
        raise CodeExecutionError(verdict)
    text = bytes(received).decode("utf-8", errors="replace").strip()
    if text:
        try:
            reply = json.loads(text.splitlines()[0])
        except ValueError:
            reply = None
        if isinstance(reply, dict) and "ok" in reply:
            return reply
    raise CodeExecutionError(_why_no_reply(process.returncode))


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Collect the killed child. asyncio's wait() also waits for the pipes to close, and a
    reader we stopped reading from (output cap) is paused and would never see EOF: drain it."""

    async def drain() -> None:
        while await process.stdout.read(65536):
            pass

    try:
        await asyncio.wait_for(drain(), timeout=5)
        await asyncio.wait_for(process.wait(), timeout=5)
    except asyncio.TimeoutError:
        # Something still holds the pipe: close our ends so the transport can finish.
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
        logger.warning("code sandbox: child %s did not release its output pipe; closed it", process.pid)


def _why_no_reply(returncode: int | None) -> str:
    # bubblewrap reports a child killed by signal N as exit status 128 + N.
    signum = -returncode if returncode and returncode < 0 else (returncode - 128 if returncode and returncode > 128 else 0)
    if signum in (signal.SIGXCPU, signal.SIGKILL):
        return "time limit exceeded"
    if signum in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
        return "memory limit exceeded"
    if signum == signal.SIGXFSZ:
        return "writing files is not allowed"
    if signum == signal.SIGSYS:
        return "the code made a system call that is not allowed"
    return "the code exited without a result"


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # Also after the leader exited: a straggler would keep the group (and so its id) alive.
    # None should exist (process creation is refused, and under bubblewrap the pid
    # namespace dies with its leader), so this is the last line of defence.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _limits_setter(
    limits: CodeLimits,
    *,
    in_namespaces: bool,
    landlock_installer: LandlockInstaller | None,
    seccomp_installer: seccomp.SelfInstaller | None,
):
    cpu = max(1, math.ceil(limits.cpu_seconds))
    memory = int(limits.memory_bytes)

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if not in_namespaces:
            # If the server dies, so does the child (bubblewrap does this itself).
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # bubblewrap itself must fork to build the sandbox; there the seccomp filter
            # and the pid namespace stop process creation instead.
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        if landlock_installer is not None:
            landlock_installer.install()
        # After anything that opens files: the server's descriptors are still open here
        # (they are closed between this function and exec), so the lowest free number
        # can be far above the limit.
        resource.setrlimit(resource.RLIMIT_NOFILE, (_FILE_DESCRIPTORS, _FILE_DESCRIPTORS))
        # Late: until exec this is still a copy of the server, whose address space (a loaded
        # model) is far above the limit, so nothing after this line may need new memory.
        # Before seccomp, which forbids changing limits.
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if seccomp_installer is not None:
            seccomp_installer.install()

    return apply


def _remove_stale_workdirs() -> None:
    root = Path(tempfile.gettempdir())
    cutoff = time.time() - _STALE_WORKDIR_SECONDS
    for path in root.glob(_WORKDIR_PREFIX + "*"):
        try:
            if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _system_directories() -> list[str]:
    prefix = os.path.realpath(sys.base_prefix)
    tops = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
    return [prefix, os.path.dirname(_interpreter()), *(top for top in tops if os.path.exists(top))]


def _landlock_rules(workdir: str) -> LandlockInstaller:
    return LandlockInstaller(
        read_only=_system_directories(),
        read_write=[workdir],
        devices=["/dev/null", "/dev/urandom"],
    )


def _memfd_with(data: bytes) -> int:
    fd = os.memfd_create("headwater-seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bwrap_arguments(workdir: str, seccomp_fd: int | None) -> list[str]:
    """A root file system with the system libraries and Python read-only, and nothing of ours."""
    args = [
        "--unshare-all",
        "--die-with-parent",
        "--clearenv",
        "--cap-drop", "ALL",
        "--hostname", "sandbox",
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        "--ro-bind", "/usr", "/usr",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    interpreter_dir = os.path.dirname(_interpreter())
    if not interpreter_dir.startswith(("/usr/", prefix + "/")):
        args += ["--ro-bind", interpreter_dir, interpreter_dir]
    args += ["--bind", workdir, _SANDBOX_WORKDIR, "--chdir", _SANDBOX_WORKDIR]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args
