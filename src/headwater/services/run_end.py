"""Ending a run that nobody executes: queued or waiting when stopped, or whose executor died.

The run's last events (an `error` when it failed, then `run_finished`) are
numbered after everything the store and the bus have seen of it, written with
its final status in one transaction, then published, so every follower ends.
The status only changes from a live one (`queued`, `running`, `waiting`): when
the executor recorded the end first, nothing is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from headwater.engine.events import EventLog
from headwater.engine.failures import RunFailure
from headwater.services.run_outcome import RunOutcome, with_partial_mark
from headwater.services.runs import LIVE_STATUSES, save_events
from headwater.store.models import Run, RunEvent, utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime


async def end_unattended_run(runtime: "Runtime", run_id: str, status: str,
                             error: RunFailure | None = None, *, only_from: tuple[str, ...] = LIVE_STATUSES) -> bool:
    """Record the run's end (status, events) unless it already ended; True when this call ended it."""
    async with runtime.sessionmaker() as db:
        run = await db.get(Run, run_id)
        if run is None or run.status not in only_from:
            return False
        stored_seq = await db.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)) or 0
        log = EventLog(run_id, max(stored_seq, await runtime.bus.last_seq(run_id)))
        outcome = RunOutcome(status=status, outputs=with_partial_mark(run.outputs or {}, status),
                             usage=run.usage or {}, elapsed_ms=run.elapsed_ms or 0, error=error)
        for payload in outcome.events():
            log.emit(payload)
        result = await db.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(only_from)).values(**outcome.run_columns(utcnow()))
        )
        if result.rowcount != 1:
            await db.rollback()
            return False
        events = log.take_unsaved()
        await save_events(db, run_id, events)
        await db.commit()
    await runtime.bus.publish(run_id, events)
    return True
