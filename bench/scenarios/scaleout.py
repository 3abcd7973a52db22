"""Asynchronous executions, embedded against scale-out (PostgreSQL + Redis + Celery workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from bench.context import Context
from bench.harness import HeadwaterAdmin, fresh_dir, headwater_proc
from bench.scenarios import Skip, scenario
from bench.stats import percentile

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/9"  # flushed before use: the bench's own database
TOKENS, DELAY_MS = 16, 5  # about 80 ms of model time per execution
BATCH = 200  # executions submitted at once for the throughput and queue-latency figures
SUBMITTERS = 16
CONCURRENCY = 4  # background jobs per process (the default HEADWATER_BACKGROUND_CONCURRENCY)
IDLE_EXECUTIONS = 30  # then one at a time, for the queue's own delay


def _graph(model: str) -> dict:
    return {
        "nodes": [
            {"id": "in", "type": "start", "inputs": [{"name": "text", "type": "string", "required": True}]},
            {"id": "gen", "type": "llm", "model": model, "prompt": "{{ in.text }}"},
            {"id": "out", "type": "end", "outputs": {"text": "{{ gen.text }}"}},
        ],
        "edges": [{"source": "in", "target": "gen"}, {"source": "gen", "target": "out"}],
    }


class _Worker:
    """`python -m headwater worker`, ready once Celery says so; stopped by pid."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path):
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "_Worker":
        log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        self.process = subprocess.Popen([sys.executable, "-m", "headwater", "worker"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited early (see {self.log_path})")
            if b"ready." in self.log_path.read_bytes()[offset:]:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the worker did not become ready (see {self.log_path})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _services_or_skip() -> None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        raise Skip(f"Redis at 127.0.0.1:6379 is not reachable: {exc}") from None
    if subprocess.run(["psql", PG_ADMIN_URL, "-c", "SELECT 1"], capture_output=True).returncode != 0:
        raise Skip("PostgreSQL at 127.0.0.1:5432 is not reachable (psql)")


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN_URL, "-q", "-c", sql], check=True, capture_output=True)


def _submit(base_url: str, key: str, app_id: str, count: int) -> list[str]:
    """Submit `count` async executions from SUBMITTERS clients; returns their ids."""
    def submit_some(share: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=60) as client:
            for _ in range(share):
                response = client.post(f"/v1/executions/{app_id}/async", json={"input_data": {"text": "rivers"}})
                response.raise_for_status()
                ids.append(response.json()["execution_id"])
        return ids

    shares = [count // SUBMITTERS + (1 if i < count % SUBMITTERS else 0) for i in range(SUBMITTERS)]
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        return [run_id for ids in pool.map(submit_some, shares) for run_id in ids]


def _wait_all_finished(admin: HeadwaterAdmin, app_id: str, count: int, timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = admin.client.get("/v1/runs", params={"app_id": app_id, "limit": 500}).json()
        if len(runs) >= count and all(r["finished_at"] for r in runs):
            failed = [r for r in runs if r["status"] != "succeeded"]
            if failed:
                raise RuntimeError(f"{len(failed)} executions did not succeed, e.g. {failed[0]}")
            return runs
        time.sleep(0.2)
    raise RuntimeError(f"the executions did not finish within {timeout} s")


def _measure_dispatch(ctx: Context, label: str, base_url: str, admin: HeadwaterAdmin, app_id: str) -> None:
    """One execution at a time on an idle deployment: the queue's own delay, with no backlog."""
    waits_ms = []
    with httpx.Client(base_url=base_url, headers={"X-API-Key": admin.admin_key}, timeout=60) as client:
        for _ in range(IDLE_EXECUTIONS):
            run_id = client.post(f"/v1/executions/{app_id}/async",
                                 json={"input_data": {"text": "rivers"}}).raise_for_status().json()["execution_id"]
            while not (run := client.get(f"/v1/runs/{run_id}").json())["finished_at"]:
                time.sleep(0.02)
            waits_ms.append((_at(run["started_at"]) - _at(run["created_at"])) * 1000)
    waits_ms.sort()
    ctx.record(f"{label}, one at a time", executions=IDLE_EXECUTIONS,
               queue_to_start_p50_ms=percentile(waits_ms, 50), queue_to_start_p99_ms=percentile(waits_ms, 99))


def _at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _measure_batch(ctx: Context, deployment: str, base_url: str, admin: HeadwaterAdmin, workers: int) -> None:
    """BATCH executions submitted at once: acceptance rate, queue-to-start latency, executions/s."""
    app = admin.create_app({"name": f"bench-async-{uuid.uuid4().hex[:6]}", "kind": "workflow",
                            "graph": _graph(f"mock/{ctx.mock_model(TOKENS, DELAY_MS)}")})
    app.raise_for_status()
    app_id = app.json()["id"]
    started = time.perf_counter()
    _submit(base_url, admin.admin_key, app_id, BATCH)
    accepted_in = time.perf_counter() - started
    runs = _wait_all_finished(admin, app_id, BATCH)
    label = f"{deployment}, {workers} worker(s)" if deployment == "scale-out" else deployment
    waits_ms = sorted((_at(r["started_at"]) - _at(r["created_at"])) * 1000 for r in runs)
    first_created = min(_at(r["created_at"]) for r in runs)
    last_finished = max(_at(r["finished_at"]) for r in runs)
    ctx.record(f"{label}, {BATCH} at once", executions=BATCH,
               accepted_per_s=BATCH / accepted_in,
               executions_per_s=BATCH / (last_finished - first_created),
               queue_to_start_p50_ms=percentile(waits_ms, 50), queue_to_start_p99_ms=percentile(waits_ms, 99))
    _measure_dispatch(ctx, label, base_url, admin, app_id)


@scenario("scaleout", "Asynchronous executions: embedded and scale-out", order=80)
def scaleout(ctx: Context) -> None:
    """200 asynchronous executions of a start → llm → end workflow (the mock answers 16 tokens
    5 ms apart) submitted at once by 16 clients: how fast they are accepted
    (`POST /v1/executions/{id}/async` answered 202), how long each waits between being accepted
    and starting (p50/p99, from the runs' own timestamps), and executions finished per second;
    then 30 executions one at a time, for the queue's own accept-to-start delay without backlog.
    Embedded: one process, SQLite, the in-process queue (4 at a time). Scale-out: one API
    process on PostgreSQL and Redis, and one then two `headwater worker` processes (4 jobs
    each), all on this machine's cores."""
    _services_or_skip()
    model_provider = ctx.mock.base_url

    # Embedded: a fresh process of its own (the shared one keeps its data dir for other scenarios).
    embedded = ctx.spawn_headwater("scaleout-embedded", fresh_dir(ctx.results_dir / "scaleout-embedded")).start()
    try:
        admin = HeadwaterAdmin(embedded.base_url, ctx.admin.admin_key)
        admin.add_mock_provider(model_provider)
        _measure_batch(ctx, "embedded", embedded.base_url, admin, 1)
        admin.close()
    finally:
        embedded.stop()

    database = f"hw_bench_{uuid.uuid4().hex[:8]}"
    _psql(f"CREATE DATABASE {database}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    scale_env = {
        "HEADWATER_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "HEADWATER_REDIS_URL": REDIS_URL,
        "HEADWATER_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "HEADWATER_BACKGROUND_CONCURRENCY": str(CONCURRENCY),
    }
    data_dir = fresh_dir(ctx.results_dir / "scaleout-cluster")
    api = headwater_proc("scaleout-api", data_dir, ctx.admin.admin_key, ctx.results_dir, scale_env)
    workers: list[_Worker] = []
    try:
        api.start()
        worker_env = {**api.env}
        admin = HeadwaterAdmin(api.base_url, ctx.admin.admin_key)
        admin.add_mock_provider(model_provider)
        for count in (1, 2):
            workers.append(_Worker(f"scaleout-worker-{count}", worker_env, ctx.results_dir).start())
            _measure_batch(ctx, "scale-out", api.base_url, admin, count)
        admin.close()
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    if os.cpu_count() and os.cpu_count() <= 2:
        ctx.note("scale-out: API, workers, PostgreSQL, Redis and the mock share this machine's "
                 f"{os.cpu_count()} cores, so a second worker adds job slots, not CPU.")
