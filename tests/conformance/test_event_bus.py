"""Conformance of `EventBus` (engine.bus): every implementation, one suite.

The in-process bus and the Redis bus must behave the same for a reader: retained
events after `after_seq` then live ones, in order, None on timeout, the feed
kept while the run lasts and dropped `RETENTION_SECONDS` after run_finished;
and `follow_run` over any of them yields every event once, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from headwater.engine import bus as bus_module
from headwater.engine import events as ev
from headwater.engine.bus import EventBus, InProcessEventBus, follow_run
from headwater.engine.events import Event, decode_event, encode_event
from headwater.engine.failures import RunFailure

IMPLEMENTATIONS = ["inprocess", "redis"]


@pytest.fixture(params=IMPLEMENTATIONS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def make_bus(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], EventBus]]:
    """Builds bus instances; with Redis, each one stands for another process on the same Redis."""
    made: list[EventBus] = []
    if kind == "redis":
        from headwater.scaleout.redis_bus import RedisEventBus

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")

        def make() -> EventBus:
            made.append(RedisEventBus(url, prefix=prefix))
            return made[-1]
    else:
        def make() -> EventBus:
            made.append(InProcessEventBus())
            return made[-1]
    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
def bus(make_bus: Callable[[], EventBus]) -> EventBus:
    return make_bus()


def make_events(first: int, last: int, *, finished: bool = False) -> list[Event]:
    """Events first..last, a token each; the last one is run_finished when `finished`."""
    events = [Event(seq, ev.Token(node_id="llm", text=f"t{seq}")) for seq in range(first, last + 1)]
    if finished:
        events[-1] = Event(last, ev.RunFinished(status="succeeded", outputs={}, usage={}, elapsed_ms=1, error=None))
    return events


async def drain(subscription, count: int, timeout: float = 2.0) -> list[Event]:
    got: list[Event] = []
    for _ in range(count):
        event = await subscription.next(timeout)
        assert event is not None, f"timed out after {[e.seq for e in got]}"
        got.append(event)
    return got


EVERY_PAYLOAD = [
    ev.RunStarted(run_id="r", app_id="a", session_id=None, kind="workflow", resumed=False, total_nodes=3),
    ev.NodeStarted(node_id="n", node_type="llm", parent="loop", index=2),
    ev.Token(node_id="n", text="héllo"),
    ev.NodeFinished(node_id="n", node_type="llm", status="succeeded", outputs={"text": "héllo", "n": [1, 2.5, None]},
                    elapsed_ms=12, usage=None, branch="true"),
    ev.NodeFinished(node_id="n", node_type="http_request", status="failed", outputs={}, elapsed_ms=3, usage=None,
                    error=RunFailure("timeout", "node did not finish within 2s", 504, node_id="n")),
    ev.Citations(citations=[{"document": "d", "score": 0.5}], node_id="kb"),
    ev.HumanInputRequired(node_id="ask", prompt="Which one?"),
    ev.ErrorEvent(code="provider_error", message="upstream said no", node_id="n"),
    ev.RunFinished(status="failed", outputs={}, usage={"total_tokens": 3}, elapsed_ms=40,
                   error=RunFailure("provider_error", "upstream said no"), finish_reason="stop"),
    ev.UnknownEvent("from_a_newer_version", {"anything": [1, {"x": None}]}),
]


@pytest.mark.parametrize("payload", EVERY_PAYLOAD, ids=lambda p: p.type)
def test_codec_round_trips_every_event_type(payload: ev.EventPayload) -> None:
    event = Event(7, payload, datetime(2026, 12, 1, 11, 35, 56, 123456, tzinfo=UTC))
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert type(decoded.payload) is type(payload)
    # The store's side of the codec: a row's (type, data) gives the same payload back.
    assert ev.payload_from(event.type, event.data) == payload


def test_codec_keeps_optional_fields_out_of_the_wire_form() -> None:
    assert ev.Token(node_id="n", text="t").to_data() == {"node_id": "n", "text": "t"}
    # Fields without a default are always written, even when None (CONTRACTS §3 shapes).
    assert ev.NodeStarted(node_id="n", node_type="llm").to_data() == {"node_id": "n", "node_type": "llm"}
    assert ev.RunFinished(status="succeeded", outputs={}, usage={}, elapsed_ms=1, error=None).to_data() == {
        "status": "succeeded", "outputs": {}, "usage": {}, "elapsed_ms": 1, "error": None}
    # A failure is kept as its JSON object.
    failed = ev.RunFinished(status="failed", outputs={}, usage={}, elapsed_ms=1,
                            error=RunFailure("interrupted", "gone", 503)).to_data()
    assert failed["error"] == {"code": "interrupted", "message": "gone", "status": 503}
    # A stored event missing an always-written field (an older row) still decodes.
    assert ev.payload_from("node_finished", {"node_id": "n", "status": "succeeded"}).node_type is None


def test_codec_normalises_created_at_to_utc() -> None:
    other_zone = Event(1, ev.Token(node_id=None, text=""), datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert decode_event(encode_event(other_zone)).created_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    naive = Event(1, ev.Token(node_id=None, text=""), datetime(2026, 1, 1, 12))
    assert decode_event(encode_event(naive)).created_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


async def test_subscribe_after_publish_replays_retained_events_after_seq(bus: EventBus, run_id: str) -> None:
    published = make_events(1, 5)
    await bus.publish(run_id, published[:3])
    await bus.publish(run_id, published[3:])
    async with bus.subscribe(run_id, after_seq=2) as subscription:
        got = await drain(subscription, 3)
        assert await subscription.next(0.2) is None
    assert got == published[2:]  # seq, type, data and created_at all survive the feed


async def test_subscribe_before_publish_gets_live_events(bus: EventBus, run_id: str) -> None:
    async with bus.subscribe(run_id, after_seq=0) as subscription:
        assert await subscription.next(0.05) is None
        publisher = asyncio.create_task(_publish_later(bus, run_id, [make_events(1, 2), make_events(3, 4)]))
        got = await drain(subscription, 4)
        await publisher
    assert [e.seq for e in got] == [1, 2, 3, 4]
    assert got[0].payload == ev.Token(node_id="llm", text="t1")


async def _publish_later(bus: EventBus, run_id: str, batches: list[list[Event]]) -> None:
    for batch in batches:
        await asyncio.sleep(0.05)
        await bus.publish(run_id, batch)


async def test_two_subscribers_each_get_every_event(bus: EventBus, run_id: str) -> None:
    await bus.publish(run_id, make_events(1, 2))
    async with bus.subscribe(run_id, 0) as first, bus.subscribe(run_id, 1) as second:
        await bus.publish(run_id, make_events(3, 5, finished=True))
        got_first = await drain(first, 5)
        got_second = await drain(second, 4)
    assert [e.seq for e in got_first] == [1, 2, 3, 4, 5]
    assert [e.seq for e in got_second] == [2, 3, 4, 5]
    assert got_first[-1].type == ev.RUN_FINISHED


async def test_subscriber_of_another_process_gets_the_events(
        kind: str, make_bus: Callable[[], EventBus], run_id: str) -> None:
    if kind == "inprocess":
        pytest.skip("one process: the in-process bus has no other process to reach")
    publisher, reader = make_bus(), make_bus()
    await publisher.publish(run_id, make_events(1, 2))
    async with reader.subscribe(run_id, 0) as subscription:
        assert [e.seq for e in await drain(subscription, 2)] == [1, 2]  # retained, from the other process
        await publisher.publish(run_id, make_events(3, 3, finished=True))
        live = await subscription.next(2.0)
    assert live is not None and (live.seq, live.type) == (3, ev.RUN_FINISHED)
    assert await reader.last_seq(run_id) == 3


async def test_next_returns_none_after_its_timeout(bus: EventBus, run_id: str) -> None:
    async with bus.subscribe(run_id, 0) as subscription:
        started = time.monotonic()
        assert await subscription.next(0.3) is None
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.0
    async with bus.subscribe(run_id, 0) as subscription:
        assert await subscription.next(0) is None  # a zero timeout polls, never blocks


async def test_last_seq_is_the_feeds_highest_seq(bus: EventBus, run_id: str) -> None:
    assert await bus.last_seq(run_id) == 0
    await bus.publish(run_id, make_events(1, 4))
    assert await bus.last_seq(run_id) == 4
    await bus.publish(run_id, make_events(5, 7))
    assert await bus.last_seq(run_id) == 7
    assert await bus.last_seq(f"{run_id}-other") == 0


async def test_republished_events_neither_raise_nor_reach_readers_twice(
        kind: str, bus: EventBus, run_id: str) -> None:
    await bus.publish(run_id, make_events(1, 5))
    await bus.publish(run_id, make_events(4, 6))  # a retried batch overlapping the feed
    assert await bus.last_seq(run_id) == 6
    seen: list[int] = []
    async with bus.subscribe(run_id, 0) as subscription:
        while (event := await subscription.next(0.2)) is not None:
            seen.append(event.seq)
    if kind == "redis":
        assert seen == [1, 2, 3, 4, 5, 6]  # the stream skips ids at or below its top
    else:
        # The in-process feed appends them again; follow_run drops what it has seen.
        assert sorted(set(seen)) == [1, 2, 3, 4, 5, 6]


async def test_finished_feed_is_dropped_after_retention(
        monkeypatch: pytest.MonkeyPatch, bus: EventBus, run_id: str) -> None:
    monkeypatch.setattr(bus_module, "RETENTION_SECONDS", 0.2)
    running = f"{run_id}-running"
    await bus.publish(running, make_events(1, 2))
    await bus.publish(run_id, make_events(1, 3, finished=True))
    async with bus.subscribe(run_id, 0) as subscription:  # still retained right after the end
        assert [e.seq for e in await drain(subscription, 3)] == [1, 2, 3]
    # The in-process bus expires lazily, on a publish, at most one sweep a second: wait past both.
    await asyncio.sleep(1.2)
    await bus.publish(f"{run_id}-unrelated", make_events(1, 1))
    assert await bus.last_seq(run_id) == 0
    async with bus.subscribe(run_id, 0) as subscription:
        assert await subscription.next(0.1) is None
    assert await bus.last_seq(running) == 2  # a run that has not finished keeps its feed


async def test_redis_stream_ttl_follows_the_run(make_bus: Callable[[], EventBus], kind: str, run_id: str,
                                                request: pytest.FixtureRequest) -> None:
    if kind != "redis":
        pytest.skip("Redis TTLs only")
    import redis.asyncio as redis

    bus = make_bus()
    key = bus.stream_key(run_id)
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        await bus.publish(run_id, make_events(1, 2))
        assert await client.ttl(key) > 23 * 3600  # a safety TTL while the run lasts
        await bus.publish(run_id, make_events(3, 3, finished=True))
        ttl_after_finish = await client.pttl(key)
        assert 0 < ttl_after_finish <= bus_module.RETENTION_SECONDS * 1000
        await bus.publish(run_id, make_events(4, 4))  # something published late must not revive it
        assert await client.pttl(key) <= ttl_after_finish
    finally:
        await client.aclose()


# -- follow_run over each bus, with a fake store ------------------------------------------


class FakeStore:
    """The run's durable record as follow_run sees it; `committed` grows as the test says."""

    def __init__(self, events: list[Event], committed: int) -> None:
        self.events = events
        self.committed = committed
        self.loads = 0
        self.on_load: Callable[[FakeStore], None] | None = None

    async def load_after(self, seq: int) -> list[Event]:
        self.loads += 1
        visible = [e for e in self.events[: self.committed] if e.seq > seq]
        if self.on_load is not None:
            self.on_load(self)
        return visible

    async def has_ended(self) -> bool:
        return any(e.type == ev.RUN_FINISHED for e in self.events[: self.committed])


async def collect(bus: EventBus, run_id: str, store: FakeStore, after_seq: int = 0) -> list[int]:
    seqs: list[int] = []
    async with asyncio.timeout(10):
        async for event in follow_run(bus, run_id, after_seq, store.load_after, store.has_ended, idle_seconds=0.2):
            seqs.append(event.seq)
    return seqs


async def test_follow_run_half_in_store_half_in_feed(bus: EventBus, run_id: str) -> None:
    events = make_events(1, 10, finished=True)
    await bus.publish(run_id, events)
    store = FakeStore(events, committed=5)
    assert await collect(bus, run_id, store) == list(range(1, 11))
    assert await collect(bus, run_id, store, after_seq=7) == [8, 9, 10]


async def test_follow_run_earlier_segment_only_in_store(bus: EventBus, run_id: str) -> None:
    events = make_events(1, 10, finished=True)
    await bus.publish(run_id, events[5:])  # a resumed run: its first segment's feed is gone
    store = FakeStore(events, committed=5)
    assert await collect(bus, run_id, store) == list(range(1, 11))


async def test_follow_run_live_while_the_run_goes_on(bus: EventBus, run_id: str) -> None:
    events = make_events(1, 12, finished=True)
    await bus.publish(run_id, events[:3])
    store = FakeStore(events, committed=3)
    follower = asyncio.create_task(collect(bus, run_id, store))
    for first in (3, 6, 9):
        await asyncio.sleep(0.05)
        await bus.publish(run_id, events[first:first + 3])
        store.committed = first + 3  # the recorder commits then publishes
    assert await follower == list(range(1, 13))


async def test_follow_run_fills_a_trimmed_feed_from_the_store(
        monkeypatch: pytest.MonkeyPatch, bus: EventBus, run_id: str) -> None:
    monkeypatch.setattr(bus_module, "MAX_RETAINED_EVENTS", 20)
    events = make_events(1, 400, finished=True)
    for first in range(0, 400, 50):
        await bus.publish(run_id, events[first:first + 50])
    async with bus.subscribe(run_id, 0) as subscription:
        first_retained = await subscription.next(1.0)
    assert first_retained is not None and first_retained.seq > 1  # the feed no longer has seq 1

    store = FakeStore(events, committed=5)

    def commit_the_rest(store: FakeStore) -> None:  # the store catches up after the first read
        store.committed = 399

    store.on_load = commit_the_rest
    assert await collect(bus, run_id, store) == list(range(1, 401))


async def test_follow_run_ends_from_the_store_when_the_feed_is_silent(bus: EventBus, run_id: str) -> None:
    events = make_events(1, 4, finished=True)
    store = FakeStore(events, committed=3)  # no feed at all, e.g. it ended long ago...

    def finished_meanwhile(store: FakeStore) -> None:  # ...and its end was written after our first read
        store.committed = 4

    store.on_load = finished_meanwhile
    assert await collect(bus, run_id, store) == [1, 2, 3, 4]
