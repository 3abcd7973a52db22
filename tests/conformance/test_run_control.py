"""Conformance of `RunControl` (engine.control): every implementation, one suite.

A stop must reach the task registered for the run, whether it was asked before
the run registered or while it runs, and (scale-out) from another process; the
note of the stop must be visible everywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from headwater.engine.control import InProcessRunControl, RunControl

IMPLEMENTATIONS = ["inprocess", "redis"]


@pytest.fixture(params=IMPLEMENTATIONS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def make_control(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], RunControl]]:
    """Builds run controls; with Redis, each one stands for another process on the same Redis."""
    made: list[RunControl] = []
    if kind == "redis":
        from headwater.scaleout.redis_control import RedisRunControl

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")

        def make() -> RunControl:
            made.append(RedisRunControl(url, prefix=prefix))
            return made[-1]
    else:
        def make() -> RunControl:
            made.append(InProcessRunControl())
            return made[-1]
    yield make
    for control in made:
        await control.close()


@pytest.fixture
def control(make_control: Callable[[], RunControl]) -> RunControl:
    return make_control()


def other_process(kind: str, make_control: Callable[[], RunControl]) -> RunControl:
    if kind == "inprocess":
        pytest.skip("one process: the in-process control has no other process to reach")
    return make_control()


class Executor:
    """A run's executor as the services write it: the task registers itself, then works."""

    def __init__(self, control: RunControl, run_id: str, *, foreground: bool = True) -> None:
        self.control = control
        self.run_id = run_id
        self.foreground = foreground
        self.working = asyncio.Event()
        self.finished_work = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.control.register(self.run_id, asyncio.current_task(), foreground=self.foreground):
            self.working.set()
            await asyncio.sleep(30)
            self.finished_work = True

    async def cancelled_within(self, seconds: float) -> float:
        """Seconds until the task ended cancelled; fails if it did not within `seconds`."""
        started = time.monotonic()
        done, _ = await asyncio.wait({self.task}, timeout=seconds)
        assert done, f"run {self.run_id} still running {seconds} s after the stop"
        assert self.task.cancelled()
        assert not self.finished_work
        return time.monotonic() - started


async def test_cancel_reaches_a_registered_task(control: RunControl, run_id: str) -> None:
    executor = Executor(control, run_id)
    await asyncio.wait_for(executor.working.wait(), 2)
    assert not await control.cancel_requested(run_id)
    await control.request_cancel(run_id)
    await executor.cancelled_within(1.0)
    assert await control.cancel_requested(run_id)


async def test_cancel_before_register_cancels_at_register(control: RunControl, run_id: str) -> None:
    await control.request_cancel(run_id)
    executor = Executor(control, run_id)
    await executor.cancelled_within(1.0)
    assert run_id not in control.running_here()


async def test_cancel_from_another_process_reaches_the_task(
        kind: str, make_control: Callable[[], RunControl], run_id: str) -> None:
    executing = make_control()
    stopping = other_process(kind, make_control)
    executor = Executor(executing, run_id)
    await asyncio.wait_for(executor.working.wait(), 2)
    await stopping.request_cancel(run_id)
    await executor.cancelled_within(1.0)


async def test_cancel_from_another_process_before_register(
        kind: str, make_control: Callable[[], RunControl], run_id: str) -> None:
    executing = make_control()
    stopping = other_process(kind, make_control)
    await stopping.request_cancel(run_id)
    executor = Executor(executing, run_id, foreground=False)
    await executor.cancelled_within(1.0)


async def test_cancel_requested_is_seen_by_every_process(
        kind: str, make_control: Callable[[], RunControl], run_id: str) -> None:
    first = make_control()
    second = other_process(kind, make_control)
    assert not await first.cancel_requested(run_id)
    assert not await second.cancel_requested(run_id)
    await second.request_cancel(run_id)
    assert await first.cancel_requested(run_id)
    assert await second.cancel_requested(run_id)
    assert not await first.cancel_requested(f"{run_id}-other")


async def test_running_here_lists_registrations_until_they_end(control: RunControl, run_id: str) -> None:
    other_run = f"{run_id}-other"
    assert control.running_here() == []
    executor = Executor(control, run_id)
    background = Executor(control, other_run, foreground=False)
    await asyncio.wait_for(asyncio.gather(executor.working.wait(), background.working.wait()), 2)
    assert sorted(control.running_here()) == sorted([run_id, other_run])

    await control.request_cancel(run_id)
    await executor.cancelled_within(1.0)
    assert control.running_here() == [other_run]  # the stop reached only its own run
    assert not background.task.done()

    background.task.cancel()  # e.g. a shutdown: not a user's stop
    await asyncio.gather(background.task, return_exceptions=True)
    assert control.running_here() == []
    assert not await control.cancel_requested(other_run)


async def test_registration_is_released_when_its_body_ends(control: RunControl, run_id: str) -> None:
    task = asyncio.current_task()
    assert task is not None
    async with control.register(run_id, task, foreground=True) as registration:
        assert (registration.run_id, registration.foreground) == (run_id, True)
        assert control.running_here() == [run_id]
        assert not registration.done.is_set()
    assert registration.done.is_set()
    assert control.running_here() == []


async def test_cancel_of_an_unknown_run_is_only_noted(control: RunControl, run_id: str) -> None:
    await control.request_cancel(run_id)  # nothing runs it anywhere: no error
    assert await control.cancel_requested(run_id)


async def test_redis_listener_reconnects_and_still_delivers_stops(
        kind: str, make_control: Callable[[], RunControl], run_id: str, request: pytest.FixtureRequest) -> None:
    if kind != "redis":
        pytest.skip("Redis listener only")
    import redis.asyncio as redis

    executing = make_control()
    stopping = make_control()
    executor = Executor(executing, run_id)
    await asyncio.wait_for(executor.working.wait(), 2)
    assert executing.subscribed

    admin = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        name = f"{request.getfixturevalue('key_prefix')}-run-control-listener"
        clients = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
        assert len(clients) == 1
        await admin.client_kill_filter(_id=clients[0]["id"])  # only our listener's connection
    finally:
        await admin.aclose()
    # The stop may be published while the listener is cut off: the sweep after its reconnection delivers it.
    await stopping.request_cancel(run_id)
    await executor.cancelled_within(2.0)
    async with asyncio.timeout(2):
        while not executing.subscribed:
            await asyncio.sleep(0.02)
