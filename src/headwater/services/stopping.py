"""Stopping any run of any kind, from any process.

The stop is noted and sent through the runtime's `RunControl`, which cancels
the run's task in whichever process executes it (a chat turn, a flow in an API
process or a worker); that executor records the end itself, keeping the
partial output, marked. A run that nobody executes (queued, waiting for a
human, or whose executor died) is ended here. A stopped job never starts.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from headwater.errors import Conflict
from headwater.services.run_end import end_unattended_run
from headwater.services.runs import TERMINAL_STATUSES, RunService
from headwater.store.flow_models import FlowRunState
from headwater.store.models import Run, utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

# How long the executor gets to record the stop itself before the run is ended for it.
EXECUTOR_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.02


async def stop_run(runtime: "Runtime", workspace_id: str, run_id: str) -> None:
    """Stop a queued, running or waiting run; 404 outside the workspace, 409 when it already ended."""
    async with runtime.sessionmaker() as db:
        run = await RunService(db).get(workspace_id, run_id)
        if run.status in TERMINAL_STATUSES:
            raise Conflict(f"run already {run.status}")
        state = await db.get(FlowRunState, run_id)
        job_id = state.job_id if state is not None else None
    await runtime.control.request_cancel(run_id)
    if job_id:
        await runtime.jobs.cancel(job_id)
    if run.status == "running" and await _ended_by_executor(runtime, run_id):
        return
    await end_unattended_run(runtime, run_id, "cancelled")


async def _ended_by_executor(runtime: "Runtime", run_id: str) -> bool:
    """Wait for the executor to record the end; False when the run has no live executor to do it."""
    deadline = time.monotonic() + EXECUTOR_GRACE_SECONDS
    while time.monotonic() < deadline:
        async with runtime.sessionmaker() as db:
            run = await db.get(Run, run_id)
        if run is None or run.status in TERMINAL_STATUSES:
            return True
        if run.status != "running" or run.lease_until is None or run.lease_until < utcnow():
            return False
        await asyncio.sleep(POLL_SECONDS)
    return False
