"""The code sandbox runs user Python in a separate, limited process, on both of its paths.

Every behaviour is checked under bubblewrap (skipped with the reason where it
does not work) and on the fallback path (rlimits + seccomp + Landlock). The
containment tests also run with the runner's Python audit hook removed
("os-only"), so they prove the kernel-enforced layers, not only the hook.
Fork-bomb tests are bounded (at most 100 forks, children sleep briefly and
exit) so a failure cannot take the shared machine down.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from headwater.errors import HeadwaterError
from headwater.sandbox import CodeExecutionError, CodeLimits, prepare_sandbox, run_code
from headwater.sandbox import code_runner

FAST = CodeLimits(cpu_seconds=2, wall_seconds=5)


@pytest.fixture(scope="module")
def decided_mode():
    """The machine's own decision (bwrap or not, seccomp, Landlock), made once."""
    mode = asyncio.run(prepare_sandbox())
    return {
        "name": mode,
        "bwrap": code_runner._mode.bwrap,
        "seccomp": code_runner._mode.seccomp_program,
        "landlock": code_runner._mode.landlock,
    }


@pytest.fixture(params=["bwrap", "fallback"])
def sandbox(request, decided_mode, monkeypatch):
    if request.param == "bwrap":
        if not decided_mode["bwrap"]:
            pytest.skip("bubblewrap is not installed or does not work on this machine")
        monkeypatch.setattr(code_runner._mode, "bwrap", decided_mode["bwrap"])
    else:
        monkeypatch.setattr(code_runner._mode, "bwrap", None)
    return request.param


@pytest.fixture(params=["full", "os-only"])
def layers(request, monkeypatch):
    """'os-only' removes the runner's audit hook: what remains is enforced by the kernel."""
    if request.param == "os-only":
        source = code_runner._RUNNER_SOURCE
        hooked = "    _install_audit_hook(readable_roots="
        assert hooked in source
        monkeypatch.setattr(code_runner, "_RUNNER_SOURCE", source.replace(hooked, "    dict(readable_roots="))
    return request.param


@pytest.fixture
def run_marker(monkeypatch):
    """A known id on the child's command line, to find any process the run left behind."""
    marker = f"hwtest{os.getpid()}x{time.monotonic_ns()}"
    monkeypatch.setattr(code_runner, "_new_run_id", lambda: marker)
    return marker


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def _error_of(source: str, inputs=None, limits=FAST) -> CodeExecutionError:
    with pytest.raises(CodeExecutionError) as raised:
        await run_code(source, inputs or {}, limits)
    return raised.value


# ---------------------------------------------------------------- the contract


async def test_result_round_trip(sandbox):
    source = (
        "def main(name, numbers, nested):\n"
        "    return {'greeting': 'hi ' + name, 'total': sum(numbers), 'nested': nested, 'none': None,\n"
        "            'unicode': name[::-1]}\n"
    )
    inputs = {"name": "Zoë ☃", "numbers": [1, 2, 3.5], "nested": {"a": [True, False, None]}}
    assert await run_code(source, inputs, FAST) == {
        "greeting": "hi Zoë ☃",
        "total": 6.5,
        "nested": {"a": [True, False, None]},
        "none": None,
        "unicode": "☃ ëoZ",
    }


async def test_standard_library_is_importable(sandbox):
    source = (
        "import json, re, math, datetime, decimal, hashlib, collections, statistics\n"
        "def main(text):\n"
        "    return {'words': len(re.findall(r'\\w+', text)), 'sha': hashlib.sha256(text.encode()).hexdigest()[:8],\n"
        "            'mean': statistics.mean([1, 2, 3])}\n"
    )
    expected_sha = hashlib.sha256(b"a b c").hexdigest()[:8]
    assert await run_code(source, {"text": "a b c"}, FAST) == {"words": 3, "sha": expected_sha, "mean": 2}


async def test_user_exception_becomes_a_422_with_its_message(sandbox):
    error = await _error_of("def main(x):\n    raise ValueError(f'bad value {x}')\n", {"x": 7})
    assert error.detail == "ValueError: bad value 7"
    assert error.status_code == 422 and isinstance(error, HeadwaterError)
    assert "/" not in error.detail  # no file paths or traceback


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def main(:\n", "SyntaxError"),
        ("x = 1\n", "must define a function main"),
        ("def main():\n    return [1]\n", "must return a dict"),
        ("def main():\n    return {'s': {1, 2}}\n", "not JSON-serialisable"),
        ("def main():\n    return {'n': float('nan')}\n", "not JSON-serialisable"),
        ("def main():\n    import sys\n    sys.exit(3)\n", "SystemExit"),
        ("def main(a):\n    return {}\n", "TypeError"),
    ],
)
async def test_broken_code_is_reported_not_crashed(sandbox, source, expected):
    error = await _error_of(source)
    assert expected in error.detail
    assert "headwater" not in error.detail and "/tmp" not in error.detail


async def test_inputs_must_be_json_with_name_keys():
    with pytest.raises(CodeExecutionError):
        await run_code("def main(**kw):\n    return kw\n", {"bad key": 1})
    with pytest.raises(CodeExecutionError):
        await run_code("def main(**kw):\n    return kw\n", {"x": object()})


# ---------------------------------------------------------------- limits


async def test_infinite_loop_hits_the_cpu_limit_and_the_process_is_gone(sandbox, run_marker):
    limits = CodeLimits(cpu_seconds=1, wall_seconds=20)
    error = await _error_of("def main():\n    while True:\n        pass\n", limits=limits)
    assert error.detail == "time limit exceeded"
    assert _processes_with(run_marker) == []


async def test_sleeping_code_hits_the_wall_clock_and_the_process_is_gone(sandbox, run_marker):
    limits = CodeLimits(cpu_seconds=5, wall_seconds=1.5)
    started = time.monotonic()
    error = await _error_of("import time\ndef main():\n    time.sleep(60)\n    return {}\n", limits=limits)
    assert error.detail == "time limit exceeded"
    assert time.monotonic() - started < 30  # killed, not waited out
    assert _processes_with(run_marker) == []


@pytest.mark.parametrize(
    "bomb",
    [
        "def main():\n    x = bytearray(2 ** 31)\n    return {}\n",
        "def main():\n    chunks = []\n    while True:\n        chunks.append(bytearray(10 ** 7))\n",
        "def main():\n    return {'n': len('x' * (2 ** 30))}\n",
    ],
)
async def test_memory_bomb_hits_the_memory_limit(sandbox, bomb):
    error = await _error_of(bomb, limits=CodeLimits(cpu_seconds=5, wall_seconds=20, memory_bytes=128 * 1024 * 1024))
    assert error.detail == "memory limit exceeded"


@pytest.mark.parametrize(
    "bomb",
    [
        "def main():\n    return {'x': 'a' * 5_000_000}\n",
        "def main():\n    while True:\n        print('x' * 10000)\n",
        # Writes straight to every descriptor, bypassing print: the parent's read cap stops it.
        "import os\ndef main():\n    block = b'y' * 1_000_000\n    for _ in range(100):\n"
        "        for fd in range(3, 12):\n            try:\n                os.write(fd, block)\n"
        "            except OSError:\n                pass\n    return {}\n",
    ],
)
async def test_output_bomb_is_capped(sandbox, bomb):
    limits = CodeLimits(cpu_seconds=5, wall_seconds=20, max_output_bytes=100_000)
    error = await _error_of(bomb, limits=limits)
    assert error.detail == "output too large"


async def test_result_just_under_the_output_cap_passes(sandbox):
    limits = CodeLimits(max_output_bytes=100_000)
    result = await run_code("def main():\n    return {'x': 'a' * 90_000}\n", {}, limits)
    assert len(result["x"]) == 90_000


# ---------------------------------------------------------------- isolation


async def test_environment_carries_none_of_the_servers_variables(sandbox, monkeypatch):
    monkeypatch.setenv("HEADWATER_SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    result = await run_code("import os\ndef main():\n    return {'env': dict(os.environ)}\n", {}, FAST)
    env = result["env"]
    assert not [name for name in env if name.startswith("HEADWATER")]
    assert "do-not-leak" not in repr(env) and "sk-do-not-leak" not in repr(env)
    # Only what the interpreter and bubblewrap set themselves.
    assert set(env) <= {"PWD", "LC_CTYPE"}


async def test_cannot_read_a_file_the_parent_wrote(sandbox, layers, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("parent secret")
    source = (
        "def main(path):\n"
        "    try:\n"
        "        return {'read': open(path).read()}\n"
        "    except OSError as exc:\n"
        "        return {'refused': type(exc).__name__}\n"
    )
    result = await run_code(source, {"path": str(secret)}, FAST)
    assert "read" not in result, result


@pytest.mark.parametrize("target", ["tmp_path", "/work_main_probe"])
async def test_cannot_write_outside_its_directory(sandbox, layers, tmp_path, target):
    outside = tmp_path / "planted.txt" if target == "tmp_path" else Path(code_runner.__file__).with_name("planted.txt")
    source = (
        "import os\n"
        "def main(path):\n"
        "    outcome = {}\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        outcome['created'] = True\n"
        "    except OSError as exc:\n"
        "        outcome['create'] = type(exc).__name__\n"
        "    try:\n"
        "        os.unlink(os.path.join(os.path.dirname(path), 'keep.txt'))\n"
        "        outcome['deleted'] = True\n"
        "    except OSError as exc:\n"
        "        outcome['delete'] = type(exc).__name__\n"
        "    open('inside.txt', 'w').close()\n"
        "    outcome['inside'] = os.listdir('.')\n"
        "    return outcome\n"
    )
    keep = outside.with_name("keep.txt")
    created_keep = not keep.exists()
    if created_keep:
        keep.write_text("keep me")
    try:
        result = await run_code(source, {"path": str(outside)}, FAST)
        assert not outside.exists(), result
        assert keep.exists(), result
        assert "created" not in result and "deleted" not in result
        assert result["inside"] == ["inside.txt"]
    finally:
        outside.unlink(missing_ok=True)
        if created_keep:
            keep.unlink(missing_ok=True)


async def test_working_directory_is_fresh_and_removed(sandbox, monkeypatch):
    made: list[str] = []
    real_mkdtemp = code_runner.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(code_runner.tempfile, "mkdtemp", recording_mkdtemp)
    result = await run_code("import os\ndef main():\n    return {'ls': os.listdir('.')}\n", {}, FAST)
    assert result == {"ls": []}
    assert len(made) == 1 and not os.path.exists(made[0])


async def test_fork_bomb_is_contained(sandbox, layers, run_marker):
    source = (
        "import os, time\n"
        "def main():\n"
        "    made = refused = 0\n"
        "    for _ in range(100):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            refused += 1\n"
        "            continue\n"
        "        if pid == 0:\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "        made += 1\n"
        "    return {'made': made, 'refused': refused}\n"
    )
    result = await run_code(source, {}, FAST)
    assert result == {"made": 0, "refused": 100}
    assert _processes_with(run_marker) == []


@pytest.mark.parametrize(
    "spawn",
    [
        "import subprocess\n    subprocess.run(['/bin/true'])",
        "import os\n    os.system('true')",
        "import os\n    os.posix_spawn('/bin/true', ['true'], {})",
        "import multiprocessing\n    multiprocessing.Process(target=print).start()",
    ],
)
async def test_no_other_way_to_start_processes(sandbox, layers, spawn, run_marker):
    source = f"def main():\n    {spawn}\n    return {{'spawned': True}}\n"
    try:
        result = await run_code(source, {}, FAST)
    except CodeExecutionError as error:
        result = {"error": error.detail}
    # os.system reports a failed fork as a non-zero status instead of raising.
    assert "error" in result or result == {"spawned": True} and "os.system" in spawn
    assert _processes_with(run_marker) == []


async def test_os_system_cannot_run_a_command(sandbox, layers, tmp_path):
    """os.system swallows the fork failure; prove the command never ran."""
    source = "import os\ndef main():\n    return {'status': os.system('true')}\n"
    try:
        result = await run_code(source, {}, FAST)
        assert result["status"] != 0
    except CodeExecutionError as error:
        assert "not allowed" in error.detail


async def test_no_network(sandbox, layers):
    """A listener of ours on loopback must see no connection from the sandbox."""
    connections = []
    listener = await asyncio.start_server(lambda r, w: (connections.append(1), w.close()), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    source = (
        "def main(port):\n"
        "    try:\n"
        "        import socket\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
        "    except BaseException as exc:\n"
        "        return {'refused': type(exc).__name__}\n"
        "    return {'connected': True}\n"
    )
    try:
        result = await run_code(source, {"port": port}, FAST)
        await asyncio.sleep(0.1)
    finally:
        listener.close()
        await listener.wait_closed()
    assert "refused" in result
    assert connections == []


async def test_limits_cannot_be_raised_from_inside(sandbox, layers):
    source = (
        "import resource\n"
        "def main():\n"
        "    try:\n"
        "        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "    except BaseException as exc:\n"
        "        return {'refused': type(exc).__name__}\n"
        "    return {'raised': True}\n"
    )
    assert "refused" in await run_code(source, {}, FAST)


async def test_cannot_signal_the_server(sandbox, layers):
    source = (
        "import os, signal\n"
        "def main(pid):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGTERM)\n"
        "    except BaseException as exc:\n"
        "        return {'refused': type(exc).__name__}\n"
        "    return {'sent': True}\n"
    )
    # A stand-in for the server: a process of ours that must survive.
    bystander = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        result = await run_code(source, {"pid": bystander.pid}, FAST)
        await asyncio.sleep(0.2)
        assert bystander.returncode is None
        assert "refused" in result
    finally:
        bystander.kill()
        await bystander.wait()


async def test_concurrent_runs_each_get_their_own_answer(sandbox):
    source = "import time\ndef main(n):\n    time.sleep(0.2)\n    return {'square': n * n}\n"
    # return_exceptions: every run finishes before the test does, whatever happens.
    results = await asyncio.gather(*(run_code(source, {"n": n}, FAST) for n in range(6)), return_exceptions=True)
    assert [r if isinstance(r, dict) else f"{type(r).__name__}: {r}" for r in results] == [
        {"square": n * n} for n in range(6)
    ]


_compiled_in_this_process: list[str] = []


def _record_compiles(event: str, args: tuple) -> None:
    # Audit hooks cannot be removed, so this one only records, and only sources carrying our marker.
    if event in ("compile", "exec") and args and "hw_marker_never_compiled_here" in repr(args[0]):
        _compiled_in_this_process.append(event)


async def test_the_server_never_executes_user_code():
    """The parent must not compile or exec the source itself (CVE-2025-3248 class)."""
    import sys

    sys.addaudithook(_record_compiles)
    source = "hw_marker_never_compiled_here = 1\ndef main():\n    return {'ok': hw_marker_never_compiled_here}\n"
    assert await run_code(source, {}, FAST) == {"ok": 1}
    assert _compiled_in_this_process == []


@pytest.mark.parametrize("bwrap_path", [None, "/bin/false"])
async def test_missing_or_broken_bubblewrap_falls_back_once(monkeypatch, caplog, bwrap_path):
    """bubblewrap absent, or present but failing at run time: detected once, then the fallback runs."""
    mode = code_runner._SandboxMode()
    monkeypatch.setattr(code_runner, "_mode", mode)
    monkeypatch.setattr(code_runner.shutil, "which", lambda name: bwrap_path)
    caplog.set_level("WARNING", logger="headwater.sandbox")
    assert await run_code("def main():\n    return {'ok': 1}\n", {}, FAST) == {"ok": 1}
    assert await run_code("def main():\n    return {'ok': 2}\n", {}, FAST) == {"ok": 2}
    assert mode.name == "rlimit" and mode.bwrap is None
    fallback_lines = [r for r in caplog.records if "bubblewrap" in r.getMessage()]
    assert len(fallback_lines) == 1


async def test_child_dies_with_a_killed_server(sandbox, tmp_path):
    """A server killed mid-run (SIGKILL: no cleanup code runs) must not leave user code running."""
    import signal
    import sys

    marker = f"hwdeath{os.getpid()}x{time.monotonic_ns()}"
    script = tmp_path / "server_stand_in.py"
    script.write_text(
        "import asyncio, sys\n"
        "from headwater.sandbox import code_runner\n"
        f"code_runner._new_run_id = lambda: {marker!r}\n"
        "async def main():\n"
        "    await code_runner.prepare_sandbox()\n"
        f"    if {sandbox!r} == 'fallback':\n"
        "        code_runner._mode.bwrap = None\n"
        "    await code_runner.run_code('import time\\ndef main():\\n    time.sleep(60)\\n    return {}\\n', {},\n"
        "                               code_runner.CodeLimits(cpu_seconds=5, wall_seconds=60))\n"
        "asyncio.run(main())\n"
    )
    # Its own TMPDIR: the killed stand-in cannot remove its working directory; tmp_path goes away.
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env={**os.environ, "TMPDIR": str(tmp_path)}
    )
    try:
        deadline = time.monotonic() + 30
        while not _processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _processes_with(marker), "the sandboxed child never started"
    finally:
        stand_in.send_signal(signal.SIGKILL)
        await stand_in.wait()
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _processes_with(marker) == []


async def test_runs_from_a_server_with_a_large_address_space(sandbox):
    """The server may hold a loaded model (gigabytes of address space) while it starts the child:
    the memory limit applies to the child's own program, not to the copy of the server it starts as."""
    import mmap

    reserved = mmap.mmap(-1, 4 * 1024**3)  # address space only, never touched
    try:
        assert await run_code("def main():\n    return {'ok': 1}\n", {}, FAST) == {"ok": 1}
    finally:
        reserved.close()


async def test_runs_from_a_server_with_many_open_descriptors(sandbox):
    """A busy server has hundreds of sockets and files open when it starts the child; they are
    still open while the limits are applied, and must neither break the start nor reach the code."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(200)]
    try:
        source = "import os\ndef main(n):\n    return {'n': n, 'fds': len(os.listdir('/proc/self/fd'))}\n"
        try:
            results = await asyncio.gather(*(run_code(source, {"n": n}, FAST) for n in range(4)), return_exceptions=True)
        except Exception as exc:  # pragma: no cover - listing /proc may be refused in the fallback
            raise AssertionError(exc)
    finally:
        for fd in held:
            os.close(fd)
    for n, result in enumerate(results):
        if isinstance(result, CodeExecutionError) and "not allowed" in result.detail:
            continue  # /proc is outside the fallback's file-system rules; the start itself worked
        assert isinstance(result, dict), f"{type(result).__name__}: {result}"
        assert result["n"] == n and result["fds"] < 10


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.3])
async def test_cancelling_a_run_stops_it_at_once(sandbox, run_marker, delay):
    """Stopping a flow cancels its code run: while starting or while running, the task ends
    promptly and the child is gone."""
    task = asyncio.create_task(
        run_code("import time\ndef main():\n    time.sleep(60)\n    return {}\n", {}, CodeLimits(wall_seconds=60))
    )
    await asyncio.sleep(delay)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), timeout=30)
    assert time.monotonic() - started < 30
    assert _processes_with(run_marker) == []
