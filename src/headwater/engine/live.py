"""The runs executing in this process, so a cancel request can reach the task doing the work.

A cancelled task cannot tell a user's stop from a server shutdown, so a stop
is first written down here (`request_cancel`); a background run that is
cancelled without that note was interrupted by a shutdown and stays resumable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(slots=True)
class LiveRun:
    task: asyncio.Task
    foreground: bool
    done: asyncio.Event


class LiveRuns:
    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}
        self._cancel_requested: set[str] = set()

    def register(self, run_id: str, task: asyncio.Task, foreground: bool) -> LiveRun:
        entry = LiveRun(task, foreground, asyncio.Event())
        self._runs[run_id] = entry
        return entry

    def unregister(self, run_id: str, entry: LiveRun) -> None:
        entry.done.set()
        if self._runs.get(run_id) is entry:
            del self._runs[run_id]
        self._cancel_requested.discard(run_id)

    def is_running_here(self, run_id: str) -> bool:
        return run_id in self._runs

    def request_cancel(self, run_id: str) -> LiveRun | None:
        """Note the stop and cancel the run's task if it runs here; returns it to await."""
        self._cancel_requested.add(run_id)
        entry = self._runs.get(run_id)
        if entry is not None and not entry.task.done():
            entry.task.cancel()
        return entry

    def cancel_requested(self, run_id: str) -> bool:
        return run_id in self._cancel_requested

    def forget_cancel(self, run_id: str) -> None:
        self._cancel_requested.discard(run_id)


live_runs = LiveRuns()
