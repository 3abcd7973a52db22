"""Numbers a run's events, hands them to the foreground stream at once, and persists them in batches.

Events are written in batches, by a timer's task, at most every `BATCH_SECONDS`
(tokens arrive far faster than transactions should), or at once when a caller
needs durability (`durable()`: an effectful node of a resumable run finished,
the run paused or ended). Every write goes through the process's run writer
(services/run_writer.py), which commits it together with other runs' writes.

A run whose caller does not stream (and so learns its id only with the answer)
may start with its record not yet written (`pending_start`): a quick run then
writes its start, events and end in one transaction; a slow one is recorded
after `START_GRACE_SECONDS`, with whatever it emitted so far.

Only events already committed are published on the bus, so a reader
that replays from the store and then follows the bus never sees a gap or a
duplicate. The foreground consumer (the request that started the run) gets
every event as it is emitted, except those that must not be acted on before
they are committed (`deliver=False`, handed over later with `deliver()`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from headwater.engine.events import Event, EventLog, EventPayload
from headwater.engine.execution import END_OF_STREAM
from headwater.services.run_writer import RunWrite, RunWriter, WriteHook
from headwater.services.runs import event_rows

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
BATCH_SECONDS = 0.05
START_GRACE_SECONDS = 0.2


class RunRecorder:
    def __init__(self, runtime: "Runtime", run_id: str, start_seq: int, sink: asyncio.Queue | None = None, *,
                 pending_start: RunWrite | None = None, resumable: bool = True, live: bool = True):
        self.runtime = runtime
        self.run_id = run_id
        self.bus = runtime.bus
        self.sink = sink
        self.log = EventLog(run_id, start_seq)
        self.writer = RunWriter.of(runtime.engine)
        self.pending_start = pending_start
        # Only a run that another executor may continue (a background one) needs its effectful
        # nodes' results committed the moment they finish; a foreground run is never resumed.
        self.resumable = resumable
        # Whether events are committed (and so published) in batches while the run goes: not for a
        # run executed for a caller that waits for its end only; its events are written with the end.
        self.live = live
        self._flush_lock = asyncio.Lock()
        # A batch is written by a timer's task; a run that ends before its timer never makes one.
        self._open = False
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task | None = None

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    def start(self) -> None:
        self._open = True
        if self.pending_start is not None:  # a slow run is recorded after the grace, even if it says nothing
            self._schedule(START_GRACE_SECONDS)

    def emit(self, payload: EventPayload, *, deliver: bool = True) -> Event:
        event = self.log.emit(payload)
        if deliver and self.sink is not None:
            self.sink.put_nowait(event)
        if self._open and self._timer is None and (self.live or self.resumable):
            self._schedule(START_GRACE_SECONDS if self.pending_start is not None else BATCH_SECONDS)
        return event

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._batch_due)

    def _batch_due(self) -> None:
        self._timer = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._write_batch(), name=f"run-writer:{self.run_id}")

    async def _write_batch(self) -> None:
        try:
            await self.durable()
        except Exception:  # the store hiccuped; the next batch (or the final flush) retries
            log.exception("writing events of run %s failed", self.run_id)

    def deliver(self, events: list[Event]) -> None:
        if self.sink is not None:
            for event in events:
                self.sink.put_nowait(event)

    def end_stream(self) -> None:
        if self.sink is not None:
            self.sink.put_nowait(END_OF_STREAM)

    async def checkpoint(self) -> None:
        """An effectful node finished: a run that may be resumed must find it finished, not redo it."""
        if self.resumable:
            await self.durable()

    async def durable(self, also: WriteHook | None = None, *, rows: RunWrite | None = None) -> None:
        """Commit every event emitted so far, with the run's start if still unwritten, `rows` (the run's
        end, say) and `also`'s writes, all in one transaction.

        The write itself is shielded: a run cancelled mid-commit must neither lose
        the batch nor write it twice, and the lock stays held until it is done so
        batches are committed and published in seq order.
        """
        async with self._flush_lock:
            events = self.log.take_unsaved()
            if not events and also is None and rows is None and self.pending_start is None:
                return
            write = asyncio.ensure_future(self._write(events, also, rows))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await asyncio.wait([write])
                raise

    async def _write(self, events: list[Event], also: WriteHook | None, rows: RunWrite | None) -> None:
        item = RunWrite(self.run_id, events=event_rows(self.run_id, events), on_end=also)
        if rows is not None:
            item = item.merged(rows)
        if self.pending_start is not None:
            item = self.pending_start.merged(item)
        try:
            await self.writer.write(item)
        except BaseException:
            self.log.restore_unsaved(events)  # kept for the next attempt, still in seq order
            raise
        self.pending_start = None
        if events:
            await self.bus.publish(self.run_id, events)

    async def close(self) -> None:
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:  # a batch being written is written to its end (it is shielded)
            await asyncio.wait([self._flushing])
            self._flushing = None
