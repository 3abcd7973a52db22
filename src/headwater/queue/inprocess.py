"""The embedded job runner: jobs are rows in the store and asyncio tasks in this process.

Enqueue writes the job first, then starts it, so a crash between the two only
delays it: at start-up `recover()` picks up every job still `queued` or
`running` (the latter were interrupted) and runs it again, up to `max_attempts`.
Concurrency is bounded so background work cannot starve the request path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from headwater.errors import HeadwaterError
from headwater.queue.handlers import JobContext, handler_for
from headwater.store.job_models import Job
from headwater.store.models import utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)


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
        if handler_for(kind) is None:
            raise ValueError(f"no handler registered for job kind '{kind}'")
        async with self.runtime.sessionmaker() as db:
            job = Job(kind=kind, payload=payload, workspace_id=workspace_id, max_attempts=max_attempts)
            if job_id:
                job.id = job_id
            db.add(job)
            await db.commit()
            job_id = job.id
        self._start(job_id)
        return job_id

    async def cancel(self, job_id: str) -> bool:
        """Stops the job if it runs here and marks it cancelled; False if it had already ended."""
        async with self.runtime.sessionmaker() as db:
            result = await db.execute(
                update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                .values(status="cancelled", finished_at=utcnow())
            )
            await db.commit()
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            task.cancel()
        return result.rowcount > 0

    async def status(self, job_id: str) -> Job | None:
        async with self.runtime.sessionmaker() as db:
            return await db.get(Job, job_id)

    async def recover(self) -> int:
        """Restart jobs that a previous process left unfinished."""
        async with self.runtime.sessionmaker() as db:
            rows = list(await db.scalars(
                select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.created_at)
            ))
        for job in rows:
            self._start(job.id)
        return len(rows)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the jobs now running (tests, shutdown)."""
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
            job = await self._claim(job_id)
            if job is None:
                return
            handler = handler_for(job.kind)
            context = JobContext(self.runtime, job.id, job.kind, job.attempts, job.workspace_id)
            try:
                if handler is None:
                    raise HeadwaterError(f"no handler for job kind '{job.kind}'")
                await handler(context, job.payload)
            except asyncio.CancelledError:
                if not self._closing:
                    await asyncio.shield(self._finish(job_id, "cancelled", None))
                raise
            except HeadwaterError as exc:
                await self._finish(job_id, "failed", exc.detail)
            except Exception as exc:  # a handler bug fails its job, never the process
                log.exception("job %s (%s) failed", job_id, job.kind)
                await self._finish(job_id, "failed", f"{exc.__class__.__name__}")
            else:
                await self._finish(job_id, "succeeded", None)

    async def _claim(self, job_id: str) -> Job | None:
        async with self.runtime.sessionmaker() as db:
            job = await db.get(Job, job_id)
            if job is None or job.status not in ("queued", "running"):
                return None
            if job.attempts >= job.max_attempts:
                job.status, job.error, job.finished_at = "failed", "gave up after repeated interruptions", utcnow()
                await db.commit()
                return None
            job.status, job.attempts, job.started_at = "running", job.attempts + 1, utcnow()
            await db.commit()
            return job

    async def _finish(self, job_id: str, status: str, error: str | None) -> None:
        async with self.runtime.sessionmaker() as db:
            await db.execute(
                update(Job).where(Job.id == job_id, Job.status == "running")
                .values(status=status, error=error, finished_at=utcnow())
            )
            await db.commit()
