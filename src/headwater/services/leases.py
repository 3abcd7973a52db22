"""Run leases: no run stays `running` after the process executing it is gone.

A process that executes a run owns it (`runs.owner_id`) and vouches for it
until `runs.lease_until`; the `LeaseKeeper` of every process (API servers and
workers alike) renews the leases of the runs it holds every third of the lease
(`HEADWATER_RUN_LEASE_SECONDS`), and reaps the runs whose lease ran out:
- a background run (its job is still active) is handed to the job queue again
  and resumes after its last finished node;
- a foreground run (a request that was streaming or waiting for its answer:
  nobody is left to finish it) ends `failed` with the reason `interrupted`.
Two keepers reaping the same run are harmless: each step is a conditional
UPDATE, and a job delivered twice runs once (see queue.base.execute_job).

In the embedded mode (SQLite) one process serves the store, so at start-up
every run still `running` is an orphan of its previous life, whatever its
lease says: it is reaped at once rather than when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update

from headwater.queue.base import ACTIVE_JOB_STATUSES
from headwater.services.run_end import end_unattended_run
from headwater.store.flow_models import FlowRunState
from headwater.store.job_models import Job
from headwater.store.models import Run, utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
INTERRUPTED_ERROR = {"code": "interrupted", "message": "the process executing this run stopped before it ended"}


def lease_until(runtime: "Runtime", now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=runtime.settings.run_lease_seconds)


class LeaseKeeper:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.reap(orphans_of_any_owner=self.runtime.settings.is_sqlite)
        self._task = asyncio.create_task(self._loop(), name="run-lease-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = max(self.runtime.settings.run_lease_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
                await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store hiccuped: the next round tries again, well within a lease
                log.exception("renewing or reaping run leases failed")

    async def renew(self) -> None:
        held = self.runtime.control.running_here()
        if not held:
            return
        async with self.runtime.sessionmaker() as db:
            await db.execute(
                update(Run).where(Run.id.in_(held), Run.owner_id == self.runtime.owner_id)
                .values(lease_until=lease_until(self.runtime))
            )
            await db.commit()

    async def reap(self, *, orphans_of_any_owner: bool = False) -> int:
        """End or hand on every `running` run whose executor is gone; returns how many."""
        now = utcnow()
        expired = or_(Run.lease_until.is_(None), Run.lease_until < now)
        if orphans_of_any_owner:
            expired = or_(expired, Run.owner_id.is_(None), Run.owner_id != self.runtime.owner_id)
        # Queued runs wait for a worker, not for their executor: only start-up treats them as orphans.
        statuses = ("queued", "running") if orphans_of_any_owner else ("running",)
        async with self.runtime.sessionmaker() as db:
            rows = (await db.execute(
                select(Run.id, Job.id.label("job_id"), Job.status.label("job_status"))
                .outerjoin(FlowRunState, FlowRunState.run_id == Run.id)
                .outerjoin(Job, Job.id == FlowRunState.job_id)
                .where(Run.status.in_(statuses), expired)
            )).all()
        held = set(self.runtime.control.running_here())
        reaped = 0
        for run_id, job_id, job_status in rows:
            if run_id in held:
                continue
            if job_id is not None and job_status in ACTIVE_JOB_STATUSES:
                reaped += await self._hand_on(run_id, job_id, now, startup=orphans_of_any_owner)
            else:
                reaped += await end_unattended_run(self.runtime, run_id, "failed", INTERRUPTED_ERROR,
                                                   only_from=("queued", "running"))
        return reaped

    async def _hand_on(self, run_id: str, job_id: str, now: datetime, *, startup: bool) -> int:
        # Bump the lease first, so the other keepers leave this run to us for one lease.
        async with self.runtime.sessionmaker() as db:
            claimed = await db.execute(
                update(Run).where(Run.id == run_id, Run.status.in_(("queued", "running")),
                                  or_(Run.lease_until.is_(None), Run.lease_until < now) if not startup else True)
                .values(status="queued", owner_id=None, lease_until=lease_until(self.runtime, now))
            )
            await db.commit()
        if claimed.rowcount != 1:
            return 0
        if not startup:  # at start-up the queue's own recovery delivers every unfinished job
            await self.runtime.jobs.redeliver(job_id)
        log.info("run %s lost its executor; handed to the job queue again", run_id)
        return 1
