"""Run control: a stop (and later other commands) reaching the process that executes the run.

The executor of a run registers its task here while it works. `request_cancel`
may be called from any process: it notes the stop (so an executor that picks
the run up later, or checks after a shutdown-like cancellation, knows it was a
user's stop) and cancels the run's task wherever it is registered. A cancelled
task cannot tell a user's stop from a server shutdown, hence the note: a
background run cancelled without it was interrupted and stays resumable.

`RunControl` is the protocol; `InProcessRunControl` serves the embedded mode,
`headwater.scaleout.redis_control.RedisRunControl` the scale-out mode (the stop
travels over Redis pub/sub, the note is a Redis key). Both pass
`tests/conformance/test_run_control.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

# How long a stop is remembered: longer than any run waits in a queue before it starts.
CANCEL_NOTE_SECONDS = 24 * 3600.0


@dataclass(slots=True)
class Registration:
    """One executor's hold on a run in this process; `done` is set when it lets go."""

    run_id: str
    task: asyncio.Task
    foreground: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RunControl(Protocol):
    def register(self, run_id: str, task: asyncio.Task, *, foreground: bool) -> AbstractAsyncContextManager[Registration]:
        """Hold the run while `task` executes it; a stop requested meanwhile (or before) cancels `task`."""

    async def request_cancel(self, run_id: str) -> None:
        """Note a user's stop of the run and cancel its task in whichever process executes it."""

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether a stop was requested for the run (by any process)."""

    def running_here(self) -> list[str]:
        """The ids of the runs executed by this process now (their leases are renewed by it)."""

    async def close(self) -> None:
        """Release connections and background tasks."""


class InProcessRunControl:
    def __init__(self) -> None:
        self._runs: dict[str, Registration] = {}
        self._cancel_requested: dict[str, float] = {}  # run id -> when the stop was asked

    @asynccontextmanager
    async def register(self, run_id: str, task: asyncio.Task, *, foreground: bool) -> AsyncIterator[Registration]:
        registration = Registration(run_id, task, foreground)
        self._runs[run_id] = registration
        if run_id in self._cancel_requested:
            task.cancel()
        try:
            yield registration
        finally:
            registration.done.set()
            if self._runs.get(run_id) is registration:
                del self._runs[run_id]

    async def request_cancel(self, run_id: str) -> None:
        now = time.monotonic()
        self._cancel_requested = {rid: at for rid, at in self._cancel_requested.items()
                                  if now - at < CANCEL_NOTE_SECONDS}
        self._cancel_requested[run_id] = now
        registration = self._runs.get(run_id)
        if registration is not None and not registration.task.done():
            registration.task.cancel()

    async def cancel_requested(self, run_id: str) -> bool:
        return run_id in self._cancel_requested

    def running_here(self) -> list[str]:
        return list(self._runs)

    async def close(self) -> None:
        self._runs.clear()
