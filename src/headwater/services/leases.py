"""Run leases: no run stays `running` after the process executing it is gone.

A process that executes a run owns it (`runs.owner_id`) and vouches for it
until `runs.lease_until`; the `LeaseKeeper` of every process (API servers and
workers alike) renews the leases of the runs it holds every third of the lease
(`HEADWATER_RUN_LEASE_SECONDS`), and reaps the runs whose lease ran out:
- a background run (its job is still active) goes back to `queued` with its
  job, and resumes after its last finished node;
- a foreground run (a request that was streaming or waiting for its answer:
  nobody is left to finish it) ends `failed` with the reason `interrupted`.
Jobs carry the same lease (`jobs.owner_id`, `jobs.lease_until`, taken by the
claim in queue.base): the keeper renews the jobs of this process with its
runs, and a `running` job whose lease ran out goes back to `queued` and is
delivered again (a worker killed mid-job; a Celery message waiting for its
visibility timeout would take hours).
Two keepers reaping the same run or job are harmless: each step is a
conditional UPDATE, and a job delivered twice runs once (the claim is one).

In the embedded mode (SQLite) one process serves the store, so at start-up
every run and job still `running` is an orphan of its previous life, whatever
its lease says: it is reaped at once rather than when its lease runs out (and
the queue's recovery delivers the jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, update

from headwater.engine.failures import INTERRUPTED
from headwater.queue.base import ACTIVE_JOB_STATUSES
from headwater.services.run_end import end_unattended_run
from headwater.store.flow_models import FlowRunState
from headwater.store.job_models import Job
from headwater.store.models import Run, utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)


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
        until = self.runtime.lease_until()
        async with self.runtime.sessionmaker() as db:
            if held:
                await db.execute(
                    update(Run).where(Run.id.in_(held), Run.owner_id == self.runtime.owner_id)
                    .values(lease_until=until)
                )
            await db.execute(
                update(Job).where(Job.owner_id == self.runtime.owner_id, Job.status == "running")
                .values(lease_until=until)
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
                reaped += await self._hand_on(run_id, now, startup=orphans_of_any_owner)
            else:
                reaped += await end_unattended_run(self.runtime, run_id, "failed", INTERRUPTED,
                                                   only_from=("queued", "running"))
        return reaped + await self._reap_jobs(now, startup=orphans_of_any_owner)

    async def _reap_jobs(self, now: datetime, *, startup: bool) -> int:
        """Queue again the `running` jobs whose executor is gone; deliver them (but at start-up: recovery does)."""
        expired = or_(Job.lease_until.is_(None), Job.lease_until < now)
        mine = Job.owner_id == self.runtime.owner_id
        # Our own expired jobs still run here (a renewal failed): only start-up takes them, being of a past life.
        orphaned = or_(Job.owner_id.is_(None), Job.owner_id != self.runtime.owner_id) if startup \
            else and_(expired, or_(Job.owner_id.is_(None), ~mine))
        async with self.runtime.sessionmaker() as db:
            job_ids = list(await db.scalars(select(Job.id).where(Job.status == "running", orphaned)))
        requeued = 0
        for job_id in job_ids:
            async with self.runtime.sessionmaker() as db:
                taken = await db.execute(
                    update(Job).where(Job.id == job_id, Job.status == "running", orphaned)
                    .values(status="queued", owner_id=None, lease_until=None)
                )
                await db.commit()
            if taken.rowcount != 1:
                continue  # another keeper, or the job ended meanwhile
            requeued += 1
            log.info("job %s lost its executor; queued again", job_id)
            if not startup:
                await self.runtime.jobs.redeliver(job_id)
        return requeued

    async def _hand_on(self, run_id: str, now: datetime, *, startup: bool) -> int:
        """Show the run as waiting again; its job is delivered again by `_reap_jobs` (or recovery)."""
        async with self.runtime.sessionmaker() as db:
            claimed = await db.execute(
                update(Run).where(Run.id == run_id, Run.status.in_(("queued", "running")),
                                  or_(Run.lease_until.is_(None), Run.lease_until < now) if not startup else True)
                .values(status="queued", owner_id=None, lease_until=None)
            )
            await db.commit()
        if claimed.rowcount != 1:
            return 0
        log.info("run %s lost its executor; its job goes back to the queue", run_id)
        return 1
