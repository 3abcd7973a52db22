"""A run executed in a task of its own, its events relayed to the request that started it.

Every kind of run (a chat turn, a flow) executes in its own task, not in the
task of the request that serves it: a stop from `RunControl` cancels that task
alone, the executor records the end and hands its last events to the request,
whose stream then ends normally with `run_finished`. A request that goes away
(its client disconnected) cancels the task instead: the run ends `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from headwater.engine.events import Event

END_OF_STREAM = None
Result = TypeVar("Result")


class RunTask(Generic[Result]):
    """Starts `execute(sink)` on first iteration; `events()` yields what it puts in `sink` until END_OF_STREAM.

    `outcome()` runs it without a sink, for a caller that only wants how it ended.
    """

    def __init__(self, execute: Callable[[asyncio.Queue | None], Coroutine[Any, Any, Result]], name: str):
        self._execute = execute
        self._name = name
        self.result: Result | None = None

    async def outcome(self) -> Result | None:
        """The executor's result; None when someone else stopped the run (its record says how it ended)."""
        task = asyncio.create_task(self._execute(None), name=self._name)
        try:
            await asyncio.wait([task])
        finally:
            if not task.done():  # this caller went away: the run ends `cancelled`
                await _cancel(task)
        self.result = None if task.cancelled() else task.result()
        return self.result

    async def events(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self._execute(queue), name=self._name)
        try:
            while True:
                event = await queue.get()
                if event is END_OF_STREAM:
                    break
                yield event
            # A run stopped by someone else ends its stream normally (its run_finished says so);
            # awaiting its task directly would cancel this consumer too.
            await asyncio.wait([task])
            self.result = None if task.cancelled() or task.exception() else task.result()
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        finally:
            if not task.done():
                await _cancel(task)


async def _cancel(task: asyncio.Task) -> None:
    """Cancel the run's task and let it record its end, even if the caller is cancelled again meanwhile."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.shield(task)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait([task])
