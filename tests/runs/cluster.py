"""A deployment for the run behaviour suite: embedded (one server, SQLite, in-process parts) or
scale-out (two API processes and a Celery worker sharing PostgreSQL and Redis), all real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support.server import ServerProcess, Workspace
from support.sse import sse_frames  # noqa: F401  (the suite imports it from here)

REDIS_URL_BASE = "redis://127.0.0.1:6379"


def redis_unavailable_reason() -> str | None:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        return f"redis-py is not installed: {exc}"
    try:
        redis.Redis.from_url(f"{REDIS_URL_BASE}/0", socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"Redis at 127.0.0.1:6379 not reachable: {exc}"
    return None


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@dataclass
class WorkerProcess:
    """`python -m headwater worker`, stopped (or killed) by pid."""

    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "WorkerProcess":
        log = open(self.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log", "ab")
        self.log_path = Path(log.name)
        self.process = subprocess.Popen([sys.executable, "-m", "headwater", "worker"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready once Celery says so in its log
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text(errors='replace')}")
            if b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not become ready:\n{self.log_path.read_text(errors='replace')}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    mode: str  # embedded | scaleout
    a: ServerProcess
    b: ServerProcess  # the same process as `a` in the embedded mode
    workers: list[WorkerProcess] = field(default_factory=list)

    def new_workspace(self) -> tuple[Workspace, Workspace]:
        """One workspace, seen through process A and through process B."""
        on_a = self.a.new_workspace()
        return on_a, Workspace(self.b, on_a.id, on_a.admin_key)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.a.data_dir, {**self.a.env()}).start()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.a.stop()
        self.b.stop()


def scaleout_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "HEADWATER_REDIS_URL": redis_url,
        "HEADWATER_DATABASE_URL": database_url,
        # Several processes share one database: one key for provider secrets.
        "HEADWATER_SECRET_KEY": "scale-out-test-secret-key-" + uuid.uuid4().hex,
        "HEADWATER_RUN_LEASE_SECONDS": "3",
        **extra,
    }


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def run_status(client: httpx.Client, run_id: str) -> str:
    return client.get(f"/v1/runs/{run_id}").json()["status"]



def create_flow(workspace: Workspace, kind: str, nodes: list[dict], edges: list[dict] | None = None) -> dict:
    """A graph app; edges default to a chain through the nodes in order."""
    if edges is None:
        edges = [{"source": s["id"], "target": t["id"]} for s, t in zip(nodes, nodes[1:])]
    with workspace.client() as c:
        response = c.post("/v1/apps", json={"name": f"{kind}-{uuid.uuid4().hex[:6]}", "kind": kind,
                                            "graph": {"nodes": nodes, "edges": edges}})
        assert response.status_code == 201, response.text
        return response.json()
