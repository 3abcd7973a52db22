"""Processes, load runs and resource sampling that the scenarios share.

Every process the bench starts listens on 127.0.0.1, is remembered here and is
stopped by its pid when the run ends (also on failure), so nothing outlives
the bench.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE / 2**20


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent running processes (user, nice, system) since boot.

    Interrupt and softirq time are left out: much of it is the kernel carrying the
    bench's own loopback traffic, which no process is charged for.
    """
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (values[0] + values[1] + values[2]) / CLOCK_TICKS


class OtherWork:
    """How much CPU processes other than the bench's used over a stretch of time, in cores.

    Busy CPU of the whole machine minus the bench's servers, the harness itself and the
    children it has reaped (load generators, the direct llama process, extra servers).
    """

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def _ours(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        for pid in self.pids.values():
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        return total

    def __enter__(self) -> "OtherWork":
        self._t0, self._busy0, self._ours0 = time.monotonic(), machine_busy_seconds(), self._ours()
        return self

    def __exit__(self, *exc) -> None:
        elapsed = time.monotonic() - self._t0
        other = (machine_busy_seconds() - self._busy0) - (self._ours() - self._ours0)
        self.cores = max(other, 0.0) / elapsed if elapsed else 0.0


def machine_busy_fraction(seconds: float = 1.0) -> float:
    """Share of all cores busy over `seconds` (to notice other work on the machine)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]
        return sum(values), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total else 0.0


@dataclass
class Proc:
    """A server process of the bench, stopped by pid."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/healthz"
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    started_in_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> "Proc":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        started = time.perf_counter()
        self.process = subprocess.Popen(self.command, env=self.env or None, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=ROOT)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early (see {self.log_path})")
                try:
                    if client.get(self.base_url + self.health_path).status_code == 200:
                        self.started_in_s = time.perf_counter() - started
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.health_path} within {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Monitor:
    """Samples CPU and RSS of some processes in a thread; a timeline for the memory chart."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25):
        self.pids = pids
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()
        self.phase = ""

    def start(self) -> "Monitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample: dict[str, Any] = {"t": time.monotonic() - self.t0, "phase": self.phase}
            for name, pid in self.pids.items():
                try:
                    sample[f"{name}_rss_mb"] = rss_mb(pid)
                except OSError:
                    pass
            self.samples.append(sample)
            self._stop.wait(self.interval)


class CpuWindow:
    """CPU used by processes between enter and exit, as a share of one core."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.cores: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    def __enter__(self) -> "CpuWindow":
        self._t0 = time.monotonic()
        self._cpu0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = elapsed = time.monotonic() - self._t0
        for name, pid in self.pids.items():
            self.cores[name] = (cpu_seconds(pid) - self._cpu0[name]) / elapsed
            self.peak_rss_mb[name] = rss_mb(pid)


def run_load(spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """One load run in a fresh client process (see loadgen.py for the spec)."""
    return finish_load(start_load(spec), timeout)


def start_load(spec: dict[str, Any]) -> subprocess.Popen:
    """Starts a load run and returns at once; `finish_load` waits for it and reads its result."""
    result_path = BENCH_DIR / "results" / f"load-{uuid.uuid4().hex[:10]}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result_path": str(result_path)}
    process = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    process.result_path = result_path  # type: ignore[attr-defined]
    process.stdin.write(json.dumps(spec))
    process.stdin.close()
    return process


def finish_load(process: subprocess.Popen, timeout: float = 600) -> dict[str, Any]:
    err = process.stderr.read()
    process.wait(timeout=timeout)
    path: Path = process.result_path  # type: ignore[attr-defined]
    if process.returncode != 0 or not path.exists():
        raise RuntimeError(f"load generator failed ({process.returncode}): {err[-2000:]}")
    try:
        return json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)


class HeadwaterAdmin:
    """Setting up what the scenarios call, through Headwater's own management API."""

    def __init__(self, base_url: str, admin_key: str):
        self.base_url = base_url
        self.admin_key = admin_key
        self.client = httpx.Client(base_url=base_url, headers={"X-API-Key": admin_key}, timeout=30)

    def close(self) -> None:
        self.client.close()

    def post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        return self.client.post(path, json=payload)

    def add_mock_provider(self, mock_url: str, name: str = "mock") -> None:
        response = self.post("/v1/providers", {"name": name, "type": "openai", "base_url": f"{mock_url}/v1"})
        if response.status_code not in (201, 200, 409):
            raise RuntimeError(f"cannot add the mock provider: {response.status_code} {response.text}")

    def create_app(self, payload: dict[str, Any]) -> httpx.Response:
        return self.post("/v1/apps", payload)

    def create_chatbot(self, model: str, name: str | None = None, **config: Any) -> dict[str, Any]:
        response = self.create_app({"name": name or f"bench-{uuid.uuid4().hex[:8]}", "kind": "chatbot",
                                    "config": {"model": model, **config}})
        response.raise_for_status()
        return response.json()

    def create_key(self, scopes: list[str]) -> str:
        response = self.post("/v1/api-keys", {"name": f"bench-{'-'.join(scopes)}", "scopes": scopes})
        response.raise_for_status()
        return response.json()["key"]

    def route_available(self, method: str, path_template: str) -> bool:
        """Is a route mounted? Asked of the OpenAPI document, then by probing an unknown id.

        `path_template` names its parameters in braces ("/api/v1/prediction/{id}"). A
        route that is not mounted answers Starlette's own 404 "Not Found" (or 405 when
        only another method matches); a mounted one answers its own error for an unknown id.
        """
        shape = re.sub(r"\{[^}]*\}", "{}", path_template)
        try:
            paths = self.client.get("/openapi.json").json().get("paths", {})
            if any(re.sub(r"\{[^}]*\}", "{}", p) == shape and method.lower() in ops for p, ops in paths.items()):
                return True
        except (httpx.HTTPError, ValueError):
            pass
        probe = re.sub(r"\{[^}]*\}", lambda _m: uuid.uuid4().hex, path_template)
        response = self.client.request(method, probe, json={})
        if response.status_code == 405:
            return False
        if response.status_code == 404:
            try:
                return response.json().get("detail") != "Not Found"
            except ValueError:
                return False
        return True


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def headwater_proc(name: str, data_dir: Path, admin_key: str, log_dir: Path, extra_env: dict[str, str] | None = None,
                   port: int | None = None) -> Proc:
    """`python -m headwater serve` as a user starts it, on its own data dir and port."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_ADMIN_KEY": admin_key,
        # The bench measures the path, not the limiter's refusals.
        "HEADWATER_RATE_LIMIT_PER_MINUTE": "100000000",
        "HEADWATER_LOCAL_MODEL_THREADS": str(os.cpu_count() or 1),
        **(extra_env or {}),
    })
    return Proc(name, [sys.executable, "-m", "headwater", "serve", "--host", "127.0.0.1", "--port", str(port)],
                port, env=env, log_path=log_dir / f"{name}.log")
