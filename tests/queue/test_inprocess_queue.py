"""The durable job queue on a real store (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from support.server import create_pg_database, drop_pg_database, pg_url

from headwater.config import Settings
from headwater.errors import InvalidInput
from headwater.queue.handlers import job_handler
from headwater.boot import build_runtime
from headwater.store.job_models import Job

SEEN: list[tuple[str, int, dict]] = []
GATE: dict[str, asyncio.Event] = {}


@job_handler("test.record")
async def _record(ctx, payload):
    SEEN.append((ctx.job_id, ctx.attempt, payload))


@job_handler("test.refuse")
async def _refuse(ctx, payload):
    raise InvalidInput("payload is not acceptable")


@job_handler("test.crash")
async def _crash(ctx, payload):
    raise KeyError("bug")


@job_handler("test.wait")
async def _wait(ctx, payload):
    await GATE[payload["gate"]].wait()


@pytest.fixture(params=["sqlite", "postgresql"])
async def runtime(request, tmp_path, pg_skip_reason):
    database = None
    settings = Settings(data_dir=tmp_path)
    if request.param == "postgresql":
        if pg_skip_reason:
            pytest.skip(pg_skip_reason)
        database = await asyncio.to_thread(create_pg_database)
        settings = Settings(data_dir=tmp_path, database_url=pg_url(database))
    rt = await build_runtime(settings)
    yield rt
    await rt.jobs.close()
    await rt.engine.dispose()
    if database:
        await asyncio.to_thread(drop_pg_database, database)


async def _status(rt, job_id) -> Job:
    async with rt.sessionmaker() as db:
        return await db.get(Job, job_id)


async def test_jobs_run_and_record_their_outcome(runtime):
    ok = await runtime.jobs.enqueue("test.record", {"n": 1}, workspace_id="default")
    refused = await runtime.jobs.enqueue("test.refuse", {})
    crashed = await runtime.jobs.enqueue("test.crash", {})
    await runtime.jobs.drain(timeout=10)
    assert (ok, 1, {"n": 1}) in SEEN
    assert (await _status(runtime, ok)).status == "succeeded"
    refused_job = await _status(runtime, refused)
    assert refused_job.status == "failed" and refused_job.error == "payload is not acceptable"
    assert (await _status(runtime, crashed)).status == "failed"


async def test_cancel_stops_a_running_job(runtime):
    GATE["c"] = asyncio.Event()
    job_id = await runtime.jobs.enqueue("test.wait", {"gate": "c"})
    await asyncio.sleep(0.2)
    assert (await _status(runtime, job_id)).status == "running"
    assert await runtime.jobs.cancel(job_id) is True
    await runtime.jobs.drain(timeout=5)
    assert (await _status(runtime, job_id)).status == "cancelled"
    assert await runtime.jobs.cancel(job_id) is False


async def test_interrupted_jobs_are_recovered_and_bounded(runtime):
    async with runtime.sessionmaker() as db:
        db.add(Job(id="interrupted-1", kind="test.record", payload={"n": 2}, status="running", attempts=1))
        db.add(Job(id="exhausted-1", kind="test.record", payload={"n": 3}, status="running", attempts=3))
        await db.commit()
    assert await runtime.jobs.recover() == 2
    await runtime.jobs.drain(timeout=10)
    assert ("interrupted-1", 2, {"n": 2}) in SEEN
    assert (await _status(runtime, "interrupted-1")).status == "succeeded"
    exhausted = await _status(runtime, "exhausted-1")
    assert exhausted.status == "failed" and "gave up" in exhausted.error
    assert not any(job_id == "exhausted-1" for job_id, _, _ in SEEN)


async def test_unknown_kind_is_refused_at_enqueue(runtime):
    with pytest.raises(ValueError):
        await runtime.jobs.enqueue("test.nobody-handles-this", {})
