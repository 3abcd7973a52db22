"""The job queue protocol, and the one function that executes a job wherever it runs.

A job is a row in the store first (kind, payload, attempts), then a delivery:
an asyncio task in this process (`InProcessQueue`, embedded mode) or a Celery
message to a worker (`headwater.queue.celery_queue.CeleryQueue`, scale-out).
Either way `execute_job()` claims the row, runs the kind's handler and records
the outcome, so a job delivered twice (a redelivery after a worker died) runs
once at a time and never after it ended. Both queues pass
`tests/conformance/test_job_queue.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import and_, case, or_, update

from headwater.errors import HeadwaterError
from headwater.queue.handlers import JobContext, JobHeldElsewhere, handler_for
from headwater.store.job_models import Job
from headwater.store.models import utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
ACTIVE_JOB_STATUSES = ("queued", "running")


class JobQueue(Protocol):
    def bind(self, runtime: "Runtime") -> None:
        """Give the queue the runtime its jobs run with (called once at start-up)."""

    async def enqueue(self, kind: str, payload: dict[str, Any], *, workspace_id: str | None = None,
                      job_id: str | None = None, max_attempts: int = 3) -> str:
        """Store the job, then deliver it; returns its id."""

    async def redeliver(self, job_id: str) -> None:
        """Deliver a stored job again (its executor died); a job that ended is left alone."""

    async def cancel(self, job_id: str) -> bool:
        """Mark the job cancelled (and stop it if it runs in this process); False if it had ended."""

    async def status(self, job_id: str) -> Job | None:
        """The job's row."""

    async def recover(self) -> int:
        """At start-up: deliver again the jobs this queue's previous life left unfinished."""

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the jobs running in this process (tests, shutdown)."""

    async def close(self) -> None:
        """Stop delivering; jobs running here stay `running` in the store, for a later delivery."""


async def store_job(runtime: "Runtime", kind: str, payload: dict[str, Any], *, workspace_id: str | None,
                    job_id: str | None, max_attempts: int) -> str:
    """The job's row, `queued`: what every queue writes before it delivers (a job survives a lost delivery)."""
    if handler_for(kind) is None:
        raise ValueError(f"no handler registered for job kind '{kind}'")
    async with runtime.sessionmaker() as db:
        job = Job(kind=kind, payload=payload, workspace_id=workspace_id, max_attempts=max_attempts)
        if job_id:
            job.id = job_id
        db.add(job)
        await db.commit()
        return job.id


async def mark_cancelled(runtime: "Runtime", job_id: str) -> bool:
    async with runtime.sessionmaker() as db:
        result = await db.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_JOB_STATUSES))
            .values(status="cancelled", finished_at=utcnow())
        )
        await db.commit()
    return result.rowcount > 0


async def execute_job(runtime: "Runtime", job_id: str, *, shutting_down=lambda: False) -> None:
    """Claim the job, run its handler, record the outcome; nothing for a job that ended or gave up."""
    job = await _claim(runtime, job_id)
    if job is None:
        return
    handler = handler_for(job.kind)
    context = JobContext(runtime, job.id, job.kind, job.attempts, job.workspace_id)
    try:
        if handler is None:
            raise HeadwaterError(f"no handler for job kind '{job.kind}'")
        await handler(context, job.payload)
    except JobHeldElsewhere:
        # Not an attempt: the executor holding its run may finish it, or its lease runs out and the
        # LeaseKeeper delivers the job again.
        log.info("job %s is executed elsewhere; this delivery leaves it alone", job_id)
        await _release(runtime, job_id, requeue=False)
    except asyncio.CancelledError:
        # A stop ends the job; a shutdown hands it back for the next delivery (a requeued message,
        # the next start's recovery, or a LeaseKeeper elsewhere).
        await asyncio.shield(_release(runtime, job_id, requeue=True) if shutting_down()
                             else _finish(runtime, job_id, "cancelled", None))
        raise
    except HeadwaterError as exc:
        await _finish(runtime, job_id, "failed", exc.detail)
    except Exception as exc:  # a handler bug fails its job, never the process
        log.exception("job %s (%s) failed", job_id, job.kind)
        await _finish(runtime, job_id, "failed", f"{exc.__class__.__name__}")
    else:
        await _finish(runtime, job_id, "succeeded", None)


async def _claim(runtime: "Runtime", job_id: str) -> Job | None:
    """Take the job for this process, or None: it ended, gave up, or another live process holds it.

    One conditional UPDATE, so two deliveries of a job (a redelivery racing a live worker, two
    keepers handing it on) cannot both win: a `running` job is taken over only once the lease
    of the process that held it ran out.
    """
    now = utcnow()
    claimable = and_(
        Job.id == job_id,
        or_(Job.status == "queued",
            and_(Job.status == "running", or_(Job.lease_until.is_(None), Job.lease_until < now))),
    )
    async with runtime.sessionmaker() as db:
        gave_up = await db.execute(
            update(Job).where(claimable, Job.attempts >= Job.max_attempts)
            .values(status="failed", error="gave up after repeated interruptions", finished_at=now,
                    owner_id=None, lease_until=None)
        )
        claimed = await db.execute(
            update(Job).where(claimable, Job.attempts < Job.max_attempts)
            .values(status="running", attempts=Job.attempts + 1, started_at=now,
                    owner_id=runtime.owner_id, lease_until=runtime.lease_until(now))
        )
        await db.commit()
        if gave_up.rowcount or not claimed.rowcount:
            return None
        return await db.get(Job, job_id, populate_existing=True)


async def _finish(runtime: "Runtime", job_id: str, status: str, error: str | None) -> None:
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(Job).where(Job.id == job_id, Job.status == "running")
            .values(status=status, error=error, finished_at=utcnow(), owner_id=None, lease_until=None)
        )
        await db.commit()


async def _release(runtime: "Runtime", job_id: str, *, requeue: bool) -> None:
    """Let go of the job without counting the attempt (a shutdown, or its run held elsewhere, is not its fault).

    requeue: back to `queued`, for the delivery that follows (the requeued message of a worker's
    shutdown, the next start's recovery). Otherwise it stays `running` with no owner for one
    lease: the process holding its run may end it meanwhile, else a LeaseKeeper delivers it again.
    """
    released = ({"status": "queued", "lease_until": None} if requeue
                else {"lease_until": runtime.lease_until()})
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(Job).where(Job.id == job_id, Job.status == "running", Job.owner_id == runtime.owner_id)
            .values(owner_id=None, attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0), **released)
        )
        await db.commit()
