"""Conformance of `JobQueue` (queue.base): the embedded queue and Celery with real workers, one suite.

Whatever delivers a job, its row tells the truth: a job runs once and ends with
its handler's outcome, a cancelled job never starts, a delivery of an ended job
is a no-op, a job runs in one executor at a time (its lease), and a job whose
executor died (attempt counted) or stopped (attempt given back) is finished by
the next one. The Celery backend runs `headwater worker`
subprocesses on a PostgreSQL database of its own and Redis DB 5 (flushed at
start; override with HEADWATER_TEST_QUEUE_REDIS_URL).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from support import sample_jobs
from support.queue_support import (
    CeleryBackend,
    CeleryCluster,
    InProcessBackend,
    flush_redis_db,
    redis_unavailable_reason,
    wait_for_job,
    wait_for_mark,
)
from support.server import create_pg_database, drop_pg_database, pg_url

from headwater.store.job_models import Job
from headwater.store.models import utcnow

BACKENDS = ["inprocess", pytest.param("celery", marks=pytest.mark.postgres)]
LONG = [30.0, 0.05]  # sample_sleep: long on the first attempt, quick on the next one


@pytest.fixture(scope="module")
def celery_cluster(tmp_path_factory, pg_skip_reason) -> Iterator[CeleryCluster]:
    if reason := redis_unavailable_reason():
        pytest.skip(reason)
    if pg_skip_reason:
        pytest.skip(pg_skip_reason)
    database = create_pg_database()
    cluster = CeleryCluster(tmp_path_factory.mktemp("celery-queue"), pg_url(database))
    try:
        flush_redis_db(cluster.redis_url)
        # Migrate and create the marks table before any worker starts (two migrators would collide).
        asyncio.run(_prepare_store(cluster))
        yield cluster
    finally:
        cluster.stop_all()
        drop_pg_database(database)


async def _prepare_store(cluster: CeleryCluster) -> None:
    from headwater.boot import build_runtime

    runtime = await build_runtime(cluster.settings())
    try:
        await sample_jobs.create_marks_table(runtime)
    finally:
        await runtime.aclose()


@pytest.fixture(params=BACKENDS)
def cluster_or_none(request) -> CeleryCluster | None:
    """The Celery cluster with one fresh-enough worker, or None for the embedded queue.

    A sync fixture: the cluster's set-up calls asyncio.run, which cannot run inside the test's loop.
    """
    if request.param == "inprocess":
        return None
    cluster: CeleryCluster = request.getfixturevalue("celery_cluster")
    cluster.ensure_one_worker()
    return cluster


@pytest.fixture
async def backend(cluster_or_none, tmp_path) -> AsyncIterator[InProcessBackend | CeleryBackend]:
    made = InProcessBackend(tmp_path) if cluster_or_none is None else CeleryBackend(cluster_or_none)
    await made.start()
    try:
        yield made
    finally:
        await made.close()
        if isinstance(made, CeleryBackend):
            print(made.cluster.logs())  # pytest shows it when the test failed


async def test_a_job_runs_once_and_succeeds(backend) -> None:
    job_id = await backend.queue.enqueue("sample_append", {"note": "hello"}, workspace_id="default")
    job = await wait_for_job(backend.queue, job_id)
    await backend.settle(job_id)
    assert (job.status, job.attempts, job.error) == ("succeeded", 1, None)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "hello")]


async def test_a_failing_handler_fails_the_job_with_its_error(backend) -> None:
    job_id = await backend.queue.enqueue("sample_fail", {"error": "the payload makes no sense"})
    job = await wait_for_job(backend.queue, job_id)
    assert (job.status, job.error, job.attempts) == ("failed", "the payload makes no sense", 1)


async def test_an_unknown_kind_is_refused_at_enqueue(backend) -> None:
    with pytest.raises(ValueError):
        await backend.queue.enqueue("sample_nobody_handles_this", {})


async def test_a_job_cancelled_while_queued_never_runs(backend) -> None:
    # Fill every slot of the executor, so the next job has to wait in the queue.
    blockers = [await backend.queue.enqueue("sample_sleep", {"sleeps": [1.0]}) for _ in range(2)]
    for blocker in blockers:
        await wait_for_mark(backend.runtime, blocker, (1, "started"))
    job_id = await backend.queue.enqueue("sample_append", {})
    assert await backend.queue.cancel(job_id) is True
    for blocker in blockers:
        assert (await wait_for_job(backend.queue, blocker)).status == "succeeded"
    await backend.settle(job_id, *blockers)
    job = await backend.queue.status(job_id)
    assert (job.status, job.attempts) == ("cancelled", 0)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == []
    assert await backend.queue.cancel(job_id) is False


async def test_delivering_a_finished_job_again_does_nothing(backend) -> None:
    job_id = await backend.queue.enqueue("sample_append", {})
    await wait_for_job(backend.queue, job_id)
    await backend.settle(job_id)
    await backend.queue.redeliver(job_id)
    await backend.deliver_duplicate(job_id)  # a message the queue did not filter: the claim must
    await backend.settle(job_id)
    job = await backend.queue.status(job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "ran")]


async def test_a_second_delivery_to_the_executor_running_the_job_is_dropped(backend) -> None:
    job_id = await backend.queue.enqueue("sample_sleep", {"sleeps": [0.5]})
    await wait_for_mark(backend.runtime, job_id, (1, "started"))
    await backend.deliver_duplicate(job_id)  # Celery: the only worker has a free thread to take it
    job = await wait_for_job(backend.queue, job_id)
    await backend.settle(job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "finished"), (1, "started")]


async def test_a_crashed_executor_s_job_is_finished_after_its_lease_runs_out(backend) -> None:
    if isinstance(backend, InProcessBackend):
        pytest.skip("the in-process executor is the server itself: its SIGKILL is tests/engine/test_flow_restart.py")
    job_id = await backend.queue.enqueue("sample_sleep", {"sleeps": LONG})
    await wait_for_mark(backend.runtime, job_id, (1, "started"))
    await backend.crash_executor()  # kill -9 of the worker process
    job = await backend.queue.status(job_id)
    assert (job.status, job.attempts) == ("running", 1)
    # acks_late: the killed worker's message is still in Redis, unacknowledged (not lost).
    assert await backend.messages_for(job_id) == 1
    await backend.restart_executor()
    # Nobody redelivers by hand: the new worker's LeaseKeeper sees the dead worker's lease run out.
    job = await wait_for_job(backend.queue, job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "started"), (2, "finished"), (2, "started")]


async def test_a_stopped_executor_hands_its_job_back_for_the_next_one(backend) -> None:
    # The attempt is given back, so the next execution sleeps as long: long enough to stop it, short enough to wait.
    job_id = await backend.queue.enqueue("sample_sleep", {"sleeps": [4.0]})
    await wait_for_mark(backend.runtime, job_id, (1, "started"))
    started = time.monotonic()
    await backend.stop_executor()  # Celery: SIGTERM, a warm shutdown
    assert time.monotonic() - started < 10, "the running job was waited for instead of interrupted"
    job = await backend.queue.status(job_id)
    # Queued again, and the interrupted attempt not counted: a shutdown is not the job's fault.
    assert (job.status, job.attempts, job.owner_id) == ("queued", 0, None)
    if isinstance(backend, CeleryBackend):
        assert await backend.messages_for(job_id) == 1  # requeued, not acknowledged
    await backend.restart_executor()  # no redelivery needed: the message (or recover) brings it back
    job = await wait_for_job(backend.queue, job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "finished"), (1, "started"), (1, "started")]


@pytest.mark.postgres
async def test_an_unacknowledged_message_comes_back_after_the_visibility_timeout(celery_cluster) -> None:
    """acks_late for real: the dead worker's message comes back to the next worker (and the job is done once)."""
    short = {"HEADWATER_CELERY_VISIBILITY_TIMEOUT_SECONDS": "1"}
    worker = await asyncio.to_thread(celery_cluster.ensure_one_worker, short)
    backend = CeleryBackend(celery_cluster)
    await backend.start()
    try:
        job_id = await backend.queue.enqueue("sample_sleep", {"sleeps": LONG})
        await wait_for_mark(backend.runtime, job_id, (1, "started"))
        taken_at = time.monotonic()
        await asyncio.to_thread(worker.kill)
        await asyncio.sleep(max(0.0, 1.2 - (time.monotonic() - taken_at)))
        # A consumer restores messages unacknowledged for longer than the timeout when it starts.
        await asyncio.to_thread(celery_cluster.start_worker, short)
        job = await wait_for_job(backend.queue, job_id)
        assert (job.status, job.attempts) == ("succeeded", 2)
    finally:
        await backend.close()


@pytest.mark.postgres
async def test_recover_sends_only_queued_jobs_without_a_message(celery_cluster) -> None:
    celery_cluster.ensure_one_worker()
    backend = CeleryBackend(celery_cluster)
    await backend.start()
    try:
        # A row committed by a process that crashed before sending its message.
        stranded = f"stranded-{time.time_ns()}"
        async with backend.runtime.sessionmaker() as db:
            db.add(Job(id=stranded, kind="sample_append", payload={}, created_at=utcnow() - timedelta(minutes=1)))
            await db.commit()
        assert await backend.queue.recover() == 1
        job = await wait_for_job(backend.queue, stranded)
        assert (job.status, job.attempts) == ("succeeded", 1)
        await backend.settle(stranded)
        assert await backend.queue.recover() == 0  # nothing stranded any more
    finally:
        await backend.close()


@pytest.mark.postgres
async def test_a_duplicate_delivery_to_another_worker_does_not_run_a_running_job_again(celery_cluster) -> None:
    first = celery_cluster.ensure_one_worker({"HEADWATER_BACKGROUND_CONCURRENCY": "1"})
    backend = CeleryBackend(celery_cluster)
    await backend.start()
    try:
        job_id = await backend.queue.enqueue("sample_sleep", {"sleeps": [2.0]})
        await wait_for_mark(backend.runtime, job_id, (1, "started"))
        await asyncio.to_thread(celery_cluster.start_worker)  # the first one's only thread is busy
        await backend.deliver_duplicate(job_id)
        await wait_for_job(backend.queue, job_id)
        await backend.settle(job_id)
        assert first.process is not None and first.process.poll() is None
        assert await sample_jobs.marks_of(backend.runtime, job_id) == [(1, "finished"), (1, "started")]
    finally:
        await backend.close()


def test_the_worker_command_refuses_to_start_without_a_redis_url(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "headwater", "worker"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "HEADWATER_REDIS_URL" in done.stderr
