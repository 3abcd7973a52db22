"""Live run events for readers in any request of any process: a per-run feed, replayed then followed.

A run's feed holds the events its executor published, in seq order, for as
long as the run lasts and `RETENTION_SECONDS` after its `run_finished`; a
subscriber first gets the retained events after its `after_seq`, then live
ones. The store stays the durable record: `follow_run` reads it first, then
the feed, and fills any gap it sees in the feed from the store (a flow run that
was resumed by another process has its earlier segments only there). So a
reader never misses an event and never sees one twice.

Who publishes what: a run's recorder publishes events once they are
committed (a process ending a run it does not execute, likewise).

`EventBus` is the protocol; `InProcessEventBus` serves the embedded mode (one
process), `headwater.scaleout.redis_bus.RedisEventBus` the scale-out mode.
Both pass `tests/conformance/test_event_bus.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from headwater.engine import events as ev
from headwater.engine.events import Event

SUBSCRIBER_BUFFER = 10_000
# How long a finished run's feed stays for late readers (after that, they read the store: every
# event is published only once it is committed, so the store has whatever a feed dropped).
RETENTION_SECONDS = 5.0
# A run that publishes more than this keeps only its latest events in the feed; readers fill from the store.
MAX_RETAINED_EVENTS = 50_000
TERMINAL_EVENT_TYPES = frozenset({ev.RUN_FINISHED})


class Lagged(Exception):
    """The subscriber fell too far behind its feed; re-read from the store."""


class Subscription(Protocol):
    async def next(self, timeout: float) -> Event | None:
        """The next event of the feed (retained ones first, then live), or None after `timeout` seconds.

        Events come in the order they were published; raises `Lagged` when the
        subscriber fell so far behind that events were dropped for it.
        """


class EventBus(Protocol):
    async def publish(self, run_id: str, events: Sequence[Event]) -> None:
        """Append events (in seq order) to the run's feed and hand them to its subscribers."""

    def subscribe(self, run_id: str, after_seq: int) -> AbstractAsyncContextManager[Subscription]:
        """A subscription to the run's feed from the first retained event after `after_seq`."""

    async def last_seq(self, run_id: str) -> int:
        """The highest seq in the run's feed (0 when it has none): a process ending a run it does
        not execute numbers its events after both the store's and the feed's."""

    async def close(self) -> None:
        """Release connections and background tasks."""


class _Feed:
    __slots__ = ("events", "subscribers", "expires_at")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.subscribers: set[_LocalSubscription] = set()
        self.expires_at: float | None = None


class _LocalSubscription:
    def __init__(self, after_seq: int, retained: list[Event]) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self._lagged = False
        for event in retained:
            if event.seq > after_seq:
                self.offer(event)

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._lagged = True

    async def next(self, timeout: float) -> Event | None:
        if self._lagged and self._queue.empty():
            raise Lagged()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None


class InProcessEventBus:
    """The embedded bus: feeds in this process's memory, dropped `RETENTION_SECONDS` after their run ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._feeds: dict[str, _Feed] = {}
        self._clock = clock
        self._next_expiry = 0.0

    async def publish(self, run_id: str, events: Sequence[Event]) -> None:
        if not events:
            return
        self._expire()
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = _Feed()
        feed.events.extend(events)
        if len(feed.events) > MAX_RETAINED_EVENTS:
            del feed.events[: len(feed.events) - MAX_RETAINED_EVENTS]
        for subscription in list(feed.subscribers):
            for event in events:
                subscription.offer(event)
        if events[-1].type in TERMINAL_EVENT_TYPES:
            feed.expires_at = self._clock() + RETENTION_SECONDS

    @asynccontextmanager
    async def subscribe(self, run_id: str, after_seq: int) -> AsyncIterator[Subscription]:
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = _Feed()
        subscription = _LocalSubscription(after_seq, feed.events)
        feed.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            feed.subscribers.discard(subscription)
            if not feed.subscribers and not feed.events:
                self._feeds.pop(run_id, None)

    async def last_seq(self, run_id: str) -> int:
        feed = self._feeds.get(run_id)
        return feed.events[-1].seq if feed is not None and feed.events else 0

    async def close(self) -> None:
        self._feeds.clear()

    def _expire(self) -> None:
        now = self._clock()
        if now < self._next_expiry:  # a sweep per second at most: publishing is on every token's path
            return
        self._next_expiry = now + 1.0
        expired = [run_id for run_id, feed in self._feeds.items()
                   if feed.expires_at is not None and feed.expires_at <= now and not feed.subscribers]
        for run_id in expired:
            del self._feeds[run_id]


async def follow_run(
    bus: EventBus,
    run_id: str,
    after_seq: int,
    load_after: Callable[[int], Awaitable[list[Event]]],
    has_ended: Callable[[], Awaitable[bool]],
    idle_seconds: float = 2.0,
) -> AsyncIterator[Event]:
    """Every event of the run after `after_seq`, from the store then the feed, ending with run_finished.

    `has_ended` is asked when the feed has been quiet for `idle_seconds`: a run
    that ended without anything left to publish (ended by a process that died, or
    long ago) is then finished from the store.
    """
    last = after_seq
    while True:
        async with bus.subscribe(run_id, last) as subscription:
            for event in await load_after(last):
                yield event
                last = event.seq
                if event.type in TERMINAL_EVENT_TYPES:
                    return
            while True:
                try:
                    event = await subscription.next(idle_seconds)
                except Lagged:
                    break  # re-subscribe from `last`: the store has what the feed dropped
                if event is None:
                    if await has_ended():
                        for late in await load_after(last):
                            yield late
                            last = late.seq
                        return
                    continue
                if event.seq <= last:
                    continue
                if event.seq > last + 1:  # published before we subscribed and no longer retained
                    for missed in await load_after(last):
                        if missed.seq >= event.seq:
                            break
                        yield missed
                        last = missed.seq
                yield event
                last = event.seq
                if event.type in TERMINAL_EVENT_TYPES:
                    return
