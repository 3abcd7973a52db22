"""The scale-out job queue: jobs are rows in the store, deliveries are Celery messages on Redis.

`enqueue` commits the row, then sends a `headwater.run_job(job_id)` message; a
`headwater worker` process takes it and runs `execute_job`, which claims the
row. Nothing runs in an API process, so `drain` has nothing to wait for, and
`cancel` only marks the row: a job not started yet is then skipped by its
worker's claim, and stopping a run already executing is RunControl's job (the
caller's). Kombu publishing is blocking socket I/O with connection retries,
so every send happens in a thread, never on the event loop.

`recover` (called at every process start) looks for jobs a crash stranded
between the row commit and the send: `queued` rows that no message in the
broker names. It sends those again and leaves the others alone, so that
restarting N processes does not put N copies of every waiting job in the queue.
`running` jobs are not its business: their message is still unacknowledged in
Redis (it comes back after the visibility timeout) and the run lease keeper
redelivers a dead worker's runs sooner.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kombu.pools import ProducerPool
from sqlalchemy import select

from headwater.config import Settings
from headwater.queue.base import ACTIVE_JOB_STATUSES, mark_cancelled, store_job
from headwater.queue.celery_app import QUEUE_NAME, RUN_JOB_TASK, make_celery
from headwater.store.job_models import Job
from headwater.store.models import utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
# A `queued` row younger than this may belong to an enqueue of another process that has committed
# but not sent yet: recover leaves it alone rather than send it twice.
RECOVER_GRACE_SECONDS = 10.0
_SCAN_CHUNK = 500


class CeleryQueue:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._app = make_celery(settings)
        # Our own pools, not kombu's process-wide ones (`app.pool` is shared by every app on the same
        # broker URL in the process), so that close() releases exactly this queue's connections.
        self._connections = self._app.connection_for_write().Pool(limit=settings.background_concurrency)
        self._producers = ProducerPool(self._connections, limit=settings.background_concurrency)
        self._runtime: Runtime | None = None

    def bind(self, runtime: "Runtime") -> None:
        self._runtime = runtime

    @property
    def runtime(self) -> "Runtime":
        if self._runtime is None:
            raise RuntimeError("queue used before bind(runtime)")
        return self._runtime

    async def enqueue(
        self, kind: str, payload: dict[str, Any], *, workspace_id: str | None = None,
        job_id: str | None = None, max_attempts: int = 3,
    ) -> str:
        job_id = await store_job(self.runtime, kind, payload, workspace_id=workspace_id, job_id=job_id,
                                 max_attempts=max_attempts)
        # A failed send (broker down) propagates: the caller learns its job is not on its way; the row
        # stays `queued` and the next process start's recover() sends it.
        await self._send(job_id)
        return job_id

    async def redeliver(self, job_id: str) -> None:
        job = await self.status(job_id)
        if job is None or job.status not in ACTIVE_JOB_STATUSES:
            return  # ended: a message would only be a no-op for some worker
        await self._send(job_id)

    async def cancel(self, job_id: str) -> bool:
        return await mark_cancelled(self.runtime, job_id)

    async def status(self, job_id: str) -> Job | None:
        async with self.runtime.sessionmaker() as db:
            return await db.get(Job, job_id)

    async def recover(self) -> int:
        cutoff = utcnow() - timedelta(seconds=RECOVER_GRACE_SECONDS)
        async with self.runtime.sessionmaker() as db:
            waiting = list(await db.scalars(
                select(Job.id).where(Job.status == "queued", Job.created_at < cutoff).order_by(Job.created_at)
            ))
        if not waiting:
            return 0
        in_broker = await asyncio.to_thread(self.messages_in_broker)
        stranded = [job_id for job_id in waiting if job_id not in in_broker]
        for job_id in stranded:
            await self._send(job_id)
        if stranded:
            log.info("sent %d queued job(s) that had no message in the broker", len(stranded))
        return len(stranded)

    async def drain(self, timeout: float | None = None) -> None:
        return  # jobs run in workers, never in this process

    async def close(self) -> None:
        await asyncio.to_thread(self._close_pools)

    def messages_in_broker(self) -> Counter[str]:
        """Job id -> how many `run_job` messages name it, waiting in the queue or taken and unacknowledged.

        Reads kombu's Redis layout (the queue's lists, one per priority step, and the `unacked`
        hash); blocking, so call it in a thread. Tests use it to wait until a delivery was consumed.
        """
        counts: Counter[str] = Counter()
        with self._connections.acquire(block=True) as connection:
            channel = connection.default_channel
            client = channel.client
            for key in {channel._q_for_pri(QUEUE_NAME, step) for step in channel.priority_steps}:
                start = 0
                while chunk := client.lrange(key, start, start + _SCAN_CHUNK - 1):
                    counts.update(filter(None, (_job_id_of(json.loads(raw)) for raw in chunk)))
                    start += len(chunk)
            for _tag, raw in client.hscan_iter(channel.unacked_key, count=_SCAN_CHUNK):
                counts.update(filter(None, [_job_id_of(json.loads(raw)[0])]))
        return counts

    async def _send(self, job_id: str) -> None:
        await asyncio.to_thread(self._send_blocking, job_id)

    def _send_blocking(self, job_id: str) -> None:
        with self._producers.acquire(block=True) as producer:
            self._app.send_task(RUN_JOB_TASK, args=[job_id], queue=QUEUE_NAME, producer=producer)

    def _close_pools(self) -> None:
        self._producers.force_close_all()
        self._connections.force_close_all()
        self._app.close()


def _job_id_of(message: dict[str, Any]) -> str | None:
    """The job id a kombu message of `run_job` carries (protocol 2 body: [args, kwargs, embed])."""
    try:
        if (message.get("headers") or {}).get("task") != RUN_JOB_TASK:
            return None
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return str(json.loads(body)[0][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # not ours or not readable: counts as no message (recover may then send a duplicate)
