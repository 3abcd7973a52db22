"""The embedded job queue: jobs are rows in the store and asyncio tasks in this process.

Enqueue writes the job first, then starts it, so a crash between the two only
delays it: at start-up `recover()` picks up every job still `queued` or
`running` (the latter were interrupted) and runs it again, up to `max_attempts`.
Concurrency is bounded so background work cannot starve the request path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.queue.base import ACTIVE_JOB_STATUSES, execute_job, mark_cancelled, store_job
from headwater.store.job_models import Job

if TYPE_CHECKING:
    from headwater.runtime import Runtime


class InProcessQueue:
    def __init__(self, concurrency: int = 4):
        self._runtime: Runtime | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task] = {}
        self._closing = False

    def bind(self, runtime: "Runtime") -> None:
        self._runtime = runtime

    async def enqueue(
        self, kind: str, payload: dict[str, Any], *, workspace_id: str | None = None,
        job_id: str | None = None, max_attempts: int = 3,
    ) -> str:
        job_id = await store_job(self.runtime, kind, payload, workspace_id=workspace_id, job_id=job_id,
                                 max_attempts=max_attempts)
        self._start(job_id)
        return job_id

    async def redeliver(self, job_id: str) -> None:
        self._start(job_id)

    async def cancel(self, job_id: str) -> bool:
        cancelled = await mark_cancelled(self.runtime, job_id)
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            task.cancel()
        return cancelled

    async def status(self, job_id: str) -> Job | None:
        async with self.runtime.sessionmaker() as db:
            return await db.get(Job, job_id)

    async def recover(self) -> int:
        async with self.runtime.sessionmaker() as db:
            rows = list(await db.scalars(
                select(Job.id).where(Job.status.in_(ACTIVE_JOB_STATUSES)).order_by(Job.created_at)
            ))
        for job_id in rows:
            self._start(job_id)
        return len(rows)

    async def drain(self, timeout: float | None = None) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        # Running jobs stay `running` in the store: the next start recovers them.
        self._closing = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    @property
    def runtime(self) -> "Runtime":
        if self._runtime is None:
            raise RuntimeError("queue used before bind(runtime)")
        return self._runtime

    def _start(self, job_id: str) -> None:
        if job_id in self._tasks and not self._tasks[job_id].done():
            return
        task = asyncio.create_task(self._run(job_id), name=f"job:{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t, jid=job_id: self._tasks.pop(jid, None) if self._tasks.get(jid) is _t else None)

    async def _run(self, job_id: str) -> None:
        async with self._slots:
            await execute_job(self.runtime, job_id, shutting_down=lambda: self._closing)
