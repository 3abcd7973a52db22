"""Numbers a run's events, hands them to the foreground stream at once, and persists them in batches.

Events are written by a background writer at most every `BATCH_SECONDS`
(tokens arrive far faster than transactions should), or at once when a caller
needs durability (`durable()`: an effectful node finished, the run paused or
ended). Only events already committed are published on the bus, so a reader
that replays from the store and then follows the bus never sees a gap or a
duplicate. The foreground consumer (the request that started the run) gets
every event as it is emitted, except those that must not be acted on before
they are committed (`deliver=False`, handed over later with `deliver()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine.events import Event, EventLog, EventPayload
from headwater.engine.execution import END_OF_STREAM
from headwater.services.runs import save_events

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
BATCH_SECONDS = 0.05


class RunRecorder:
    def __init__(self, runtime: "Runtime", run_id: str, start_seq: int, sink: asyncio.Queue | None = None):
        self.runtime = runtime
        self.run_id = run_id
        self.bus = runtime.bus
        self.sink = sink
        self.log = EventLog(run_id, start_seq)
        self._flush_lock = asyncio.Lock()
        self._pending = asyncio.Event()
        self._writer: asyncio.Task | None = None

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_batches(), name=f"run-writer:{self.run_id}")

    def emit(self, payload: EventPayload, *, deliver: bool = True) -> Event:
        event = self.log.emit(payload)
        if deliver and self.sink is not None:
            self.sink.put_nowait(event)
        self._pending.set()
        return event

    def deliver(self, events: list[Event]) -> None:
        if self.sink is not None:
            for event in events:
                self.sink.put_nowait(event)

    def end_stream(self) -> None:
        if self.sink is not None:
            self.sink.put_nowait(END_OF_STREAM)

    async def durable(self, also: Callable[[AsyncSession], Awaitable[None]] | None = None) -> None:
        """Commit every event emitted so far (and `also`'s writes, in the same transaction).

        The write itself is shielded: a run cancelled mid-commit must neither lose
        the batch nor write it twice, and the lock stays held until it is done so
        batches are committed and published in seq order.
        """
        async with self._flush_lock:
            events = self.log.take_unsaved()
            if not events and also is None:
                return
            write = asyncio.ensure_future(self._write(events, also))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await asyncio.wait([write])
                raise

    async def _write(self, events: list[Event], also) -> None:
        try:
            async with self.runtime.sessionmaker() as db:
                await save_events(db, self.run_id, events)
                if also is not None:
                    await also(db)
                await db.commit()
        except BaseException:
            self.log.restore_unsaved(events)  # kept for the next attempt, still in seq order
            raise
        if events:
            await self.bus.publish(self.run_id, events)

    async def close(self) -> None:
        if self._writer is not None:
            async with self._flush_lock:  # never cut a batch in the middle of its commit
                self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
            self._writer = None

    async def _write_batches(self) -> None:
        while True:
            await self._pending.wait()
            await asyncio.sleep(BATCH_SECONDS)
            self._pending.clear()
            try:
                await self.durable()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store hiccuped; the next batch (or the final flush) retries
                log.exception("writing events of run %s failed", self.run_id)
