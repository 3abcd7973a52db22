"""Runs in the sandboxed child process only: never imported by the server.

The parent starts `python -I -S -B -c <this file's text>` with an empty
environment, resource limits and (where available) bubblewrap + seccomp, writes
one JSON request {"source", "inputs", "max_output_bytes"} to stdin and closes
it. This script calls the user's `main(**inputs)` and writes one JSON reply
line to its private copy of stdout:
  {"ok": true, "result": {...}}  or  {"ok": false, "kind": "error"|"memory"|"output", "error": "Type: message"}

Besides the OS limits it installs an audit hook (PEP 578) before touching the
user's code. The hook is defence in depth, not the boundary: it refuses process
creation, sockets, ctypes, signals, introspection that could reach this
script's state, and file access outside the standard library and the working
directory. Only the standard library is importable (-S leaves out
site-packages).
"""

import builtins
import json
import os
import sys

MAX_ERROR_CHARS = 2000


class OutputTooLarge(BaseException):
    """BaseException so that a user's `except Exception` cannot swallow it."""


class CappedSink:
    """Stands in for sys.stdout/sys.stderr: counts what user code prints, discards it."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, budget):
        self.budget = budget

    def write(self, text):
        self.budget -= len(str(text))
        if self.budget < 0:
            raise OutputTooLarge()
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def _install_audit_hook(readable_roots, writable_root):
    readable = tuple(os.path.realpath(p) + os.sep for p in readable_roots)
    writable = os.path.realpath(writable_root) + os.sep
    refused_events = frozenset(
        {
            "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
            "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
            "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
            "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto",
            "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
            "resource.setrlimit", "resource.prlimit", "sys._current_frames",
            "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.setprofile",
            "sys.settrace", "sys.addaudithook",
            "os.chmod", "os.chown", "os.chflags", "os.link", "os.symlink", "os.setxattr",
            "os.removexattr", "os.mkfifo", "os.mknod", "os.truncate", "os.utime", "shutil.chown",
            "os.putenv", "os.unsetenv", "code.__new__", "function.__new__",
            "cpython.run_command", "cpython.run_file", "cpython.run_module", "cpython.run_startup",
            "mmap.__new__", "webbrowser.open", "syslog.openlog", "fcntl.ioctl",
        }
    )
    refused_imports = frozenset({"_ctypes", "ctypes", "_posixsubprocess", "subprocess", "multiprocessing", "_socket", "socket"})
    path_events = frozenset(
        {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.move", "shutil.copyfile",
         "os.listdir", "os.scandir", "os.chdir", "glob.glob", "os.walk"}
    )

    def inside(path, roots):
        try:
            if isinstance(path, int):
                return True  # an already-open descriptor was checked when it was opened
            real = os.path.realpath(os.fsdecode(path)) + os.sep
        except Exception:
            return False
        return real.startswith(roots)

    def hook(event, args):
        if event in refused_events:
            raise PermissionError(f"{event} is not allowed in the code sandbox")
        if event == "import" and args[0].partition(".")[0] in refused_imports:
            raise ImportError(f"module {args[0]!r} is not available in the code sandbox")
        if event == "open":
            path, mode, flags = args
            if path is None:
                return
            writing = (mode and any(c in mode for c in "wax+")) or (flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
            if writing and not inside(path, (writable,)):
                raise PermissionError("writing outside the working directory is not allowed")
            if not inside(path, readable + (writable,)):
                raise PermissionError("reading outside the working directory is not allowed")
        elif event in path_events and args:
            if not inside(args[0], (writable,)) and not (event in {"os.listdir", "os.scandir"} and inside(args[0], readable)):
                raise PermissionError(f"{event} outside the working directory is not allowed")

    sys.addaudithook(hook)


def _error_text(exc):
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def _run(request, reply):
    source = request["source"]
    inputs = request["inputs"]
    max_output = int(request["max_output_bytes"])
    sink = CappedSink(max_output)
    sys.stdout = sys.stderr = sink
    try:
        code = compile(source, "<code>", "exec")
        namespace = {"__name__": "__sandbox__", "__builtins__": builtins}
        exec(code, namespace)
        main = namespace.get("main")
        if not callable(main):
            return reply({"ok": False, "kind": "error", "error": "the code must define a function main(**inputs)"})
        result = main(**inputs)
        if not isinstance(result, dict):
            return reply({"ok": False, "kind": "error", "error": f"main() must return a dict, not {type(result).__name__}"})
        try:
            encoded = json.dumps({"ok": True, "result": result}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return reply({"ok": False, "kind": "error", "error": "the result is not JSON-serialisable: " + _error_text(exc)})
        if len(encoded.encode("utf-8")) > max_output:
            return reply({"ok": False, "kind": "output", "error": "output too large"})
        return reply(encoded)
    except OutputTooLarge:
        return reply({"ok": False, "kind": "output", "error": "output too large"})
    except MemoryError:
        return reply({"ok": False, "kind": "memory", "error": "memory limit exceeded"})
    except SyntaxError as exc:
        return reply({"ok": False, "kind": "error", "error": f"SyntaxError: {exc.msg} (line {exc.lineno})"})
    except BaseException as exc:  # the user's exception, whatever it is, is the answer
        return reply({"ok": False, "kind": "error", "error": _error_text(exc)})


def main():
    request = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    # Our private channel to the parent; fds 1 and 2 then point at /dev/null so that
    # stray writes by user code cannot corrupt the reply.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)

    def reply(message):
        text = message if isinstance(message, str) else json.dumps(message)
        channel.write(text + "\n")
        channel.flush()

    stdlib = os.path.dirname(os.__file__)
    _install_audit_hook(readable_roots=[stdlib, sys.base_prefix], writable_root=os.getcwd())
    _run(request, reply)
    os._exit(0)  # skip interpreter teardown: nothing of the user's should run after the reply


if __name__ == "__main__":
    main()
