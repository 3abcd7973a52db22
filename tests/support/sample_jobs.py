"""Job kinds for the job queue conformance suite, loaded by the test process and by workers (`--include`).

Each execution writes marks into a small table of its own in the job's store,
so a test can see what ran, on which attempt, whichever process ran it.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from headwater.errors import InvalidInput
from headwater.queue.handlers import JobContext, job_handler

MARKS_DDL = "CREATE TABLE IF NOT EXISTS sample_job_marks (job_id VARCHAR(36) NOT NULL, attempt INTEGER NOT NULL, note VARCHAR(32) NOT NULL)"


async def create_marks_table(runtime) -> None:
    """Once per store, before any job runs (concurrent CREATE IF NOT EXISTS can collide on PostgreSQL)."""
    async with runtime.engine.begin() as connection:
        await connection.execute(text(MARKS_DDL))


async def marks_of(runtime, job_id: str) -> list[tuple[int, str]]:
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT attempt, note FROM sample_job_marks WHERE job_id = :job_id ORDER BY attempt, note"),
            {"job_id": job_id},
        )
        return [(attempt, note) for attempt, note in rows]


async def _mark(ctx: JobContext, note: str) -> None:
    async with ctx.runtime.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO sample_job_marks (job_id, attempt, note) VALUES (:job_id, :attempt, :note)"),
            {"job_id": ctx.job_id, "attempt": ctx.attempt, "note": note},
        )


@job_handler("sample_append")
async def sample_append(ctx: JobContext, payload: dict) -> None:
    await _mark(ctx, str(payload.get("note", "ran")))


@job_handler("sample_fail")
async def sample_fail(ctx: JobContext, payload: dict) -> None:
    await _mark(ctx, "ran")
    raise InvalidInput(str(payload["error"]))


@job_handler("sample_sleep")
async def sample_sleep(ctx: JobContext, payload: dict) -> None:
    """Marks `started`, sleeps `sleeps[attempt - 1]` seconds (the last entry for later attempts), marks `finished`."""
    sleeps = payload["sleeps"]
    await _mark(ctx, "started")
    await asyncio.sleep(float(sleeps[min(ctx.attempt, len(sleeps)) - 1]))
    await _mark(ctx, "finished")
