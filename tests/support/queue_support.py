"""Backends for the job queue conformance suite: the embedded queue, and Celery with real worker processes.

A backend gives a test the queue of "an API process" (`backend.queue`) plus
the few things only a test does to executors: crash one, stop one politely,
start another, and wait until the deliveries of some jobs were consumed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from headwater.config import Settings
from headwater.queue.base import JobQueue
from headwater.runtime import Runtime
from headwater.store.job_models import Job
from support import sample_jobs

TESTS_DIR = Path(__file__).resolve().parent.parent
QUEUE_REDIS_URL = os.environ.get("HEADWATER_TEST_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/5")
CONCURRENCY = 2  # small, so that two sleeping jobs fill an executor
LEASE_SECONDS = 3  # a killed worker's jobs go back to the queue after this
ENDED = ("succeeded", "failed", "cancelled")


def redis_unavailable_reason(url: str = QUEUE_REDIS_URL) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return f"Redis at {url} not reachable: {error}"
    finally:
        client.close()
    return None


def flush_redis_db(url: str = QUEUE_REDIS_URL) -> None:
    """Only the suite's own database number (never the shared /0)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def wait_for_job(queue: JobQueue, job_id: str, statuses: Iterable[str] = ENDED, timeout: float = 15.0) -> Job:
    wanted = tuple(statuses)
    deadline = time.monotonic() + timeout
    while True:
        job = await queue.status(job_id)
        if job is not None and job.status in wanted:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status if job else 'missing'}, wanted {wanted}")
        await asyncio.sleep(0.05)


async def wait_for_mark(runtime: Runtime, job_id: str, mark: tuple[int, str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while mark not in await sample_jobs.marks_of(runtime, job_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never marked {mark}")
        await asyncio.sleep(0.05)


class InProcessBackend:
    name = "inprocess"

    def __init__(self, data_dir: Path):
        self.settings = Settings(data_dir=data_dir, background_concurrency=CONCURRENCY)
        self.runtime: Runtime | None = None

    @property
    def queue(self) -> JobQueue:
        assert self.runtime is not None
        return self.runtime.jobs

    async def start(self) -> None:
        from headwater.boot import build_runtime

        self.runtime = await build_runtime(self.settings)
        await sample_jobs.create_marks_table(self.runtime)

    async def settle(self, *job_ids: str, timeout: float = 10.0) -> None:
        await self.queue.drain(timeout)

    async def deliver_duplicate(self, job_id: str) -> None:
        await self.queue.redeliver(job_id)  # starts execute_job whatever the row says

    async def crash_executor(self) -> None:
        # In-process, the executor dying is this queue's tasks vanishing: close() cancels them and
        # writes nothing, like a crash (and like a warm stop: both leave the job `running`). The
        # store stays open, so the test can still read the job through the old queue.
        assert self.runtime is not None
        await self.runtime.jobs.close()

    async def stop_executor(self) -> None:
        await self.crash_executor()

    async def restart_executor(self) -> None:
        old = self.runtime
        await self.start()
        await self.queue.recover()  # what open_runtime does at start-up
        if old is not None:
            await old.engine.dispose()

    async def close(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self.runtime is not None:
            await self.runtime.jobs.close()
            await self.runtime.engine.dispose()
            self.runtime = None


@dataclass
class WorkerProcess:
    """`python -m headwater worker` with the sample job kinds; stopped by its pid."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "WorkerProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "headwater", "worker", "--include", "support.sample_jobs"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_text()}")
            if " ready." in self.log_text():  # Celery's "celery@host ready.": consuming from now on
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"worker did not become ready:\n{self.log_text()}")

    def kill(self) -> None:
        """kill -9: no shutdown code runs, like a lost machine."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: Celery's warm shutdown; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"worker ignored SIGTERM for {timeout}s:\n{self.log_text()}") from None
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class CeleryCluster:
    """One PostgreSQL database and one Redis database for the module; worker processes on them."""

    data_dir: Path
    database_url: str
    redis_url: str = QUEUE_REDIS_URL
    workers: list[WorkerProcess] = field(default_factory=list)
    _current_extra: dict[str, str] | None = None

    def settings(self, **overrides) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.database_url, redis_url=self.redis_url,
                        background_concurrency=CONCURRENCY, run_lease_seconds=LEASE_SECONDS, **overrides)

    def worker_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env.update({
            "HEADWATER_DATA_DIR": str(self.data_dir),
            "HEADWATER_DATABASE_URL": self.database_url,
            "HEADWATER_REDIS_URL": self.redis_url,
            "HEADWATER_BACKGROUND_CONCURRENCY": str(CONCURRENCY),
            "HEADWATER_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        })
        env.update(extra or {})
        return env

    def start_worker(self, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.worker_env(extra_env), self.data_dir / f"worker-{len(self.workers) + 1}.log")
        self.workers.append(worker)
        self._current_extra = dict(extra_env or {})
        return worker.start()

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    def ensure_one_worker(self, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        """Exactly one live worker, started with `extra_env` (a test that changed the workers gets reset)."""
        alive = self.alive()
        if len(alive) == 1 and self._current_extra == dict(extra_env or {}):
            return alive[0]
        for worker in alive:
            worker.kill()
        return self.start_worker(extra_env)

    def stop_all(self) -> None:
        for worker in self.alive():
            try:
                worker.terminate(timeout=15)
            except AssertionError:
                pass  # killed by terminate() already

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_text()[-4000:]}" for w in self.workers)


class CeleryBackend:
    name = "celery"

    def __init__(self, cluster: CeleryCluster):
        self.cluster = cluster
        self.runtime: Runtime | None = None

    @property
    def queue(self):  # CeleryQueue: the tests also read its broker view
        assert self.runtime is not None
        return self.runtime.jobs

    async def start(self) -> None:
        from headwater.boot import build_runtime
        from headwater.queue.celery_queue import CeleryQueue

        self.runtime = await build_runtime(self.cluster.settings())
        assert isinstance(self.runtime.jobs, CeleryQueue)

    async def messages_for(self, job_id: str) -> int:
        return (await asyncio.to_thread(self.queue.messages_in_broker))[job_id]

    async def settle(self, *job_ids: str, timeout: float = 10.0) -> None:
        """Until no message names these jobs: every delivery was taken, executed and acknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            counts = await asyncio.to_thread(self.queue.messages_in_broker)
            if not any(counts[job_id] for job_id in job_ids):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries not consumed: { {j: counts[j] for j in job_ids} }")
            await asyncio.sleep(0.05)

    async def deliver_duplicate(self, job_id: str) -> None:
        """A raw second message, as a visibility-timeout restore or a lease keeper would cause."""
        from headwater.queue.celery_app import QUEUE_NAME, RUN_JOB_TASK, make_celery

        def send() -> None:
            app = make_celery(self.cluster.settings())
            with app.connection_for_write() as connection, connection.Producer() as producer:
                app.send_task(RUN_JOB_TASK, args=[job_id], queue=QUEUE_NAME, producer=producer)
            app.close()

        await asyncio.to_thread(send)

    async def crash_executor(self) -> None:
        for worker in self.cluster.alive():
            await asyncio.to_thread(worker.kill)

    async def stop_executor(self) -> None:
        for worker in self.cluster.alive():
            code = await asyncio.to_thread(worker.terminate)
            assert code == 0, f"warm shutdown exit code {code}:\n{worker.log_text()}"

    async def restart_executor(self) -> None:
        await asyncio.to_thread(self.cluster.start_worker)

    async def close(self) -> None:
        if self.runtime is not None:
            await self.runtime.aclose()
            self.runtime = None
