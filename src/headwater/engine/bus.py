"""Live run events for readers in other requests: subscribe by run id, replay, then follow.

The bus carries only events that are already committed to the store (the
recorder publishes after each commit). `follow_run` subscribes first, then
replays from the store everything after the reader's last seq, then yields live
events, skipping any seq it has already yielded: no gap (whatever was committed
before the replay is in the replay, whatever after is on the bus) and no
duplicate. A subscriber that falls too far behind is told it `Lagged` and
re-syncs from the store the same way.

`EventBus` is the interface; `InProcessEventBus` serves one process. A Redis
implementation (pub/sub carrying the same events) plugs in for scale-out
without touching the callers.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from headwater.engine import events as ev
from headwater.engine.events import Event

SUBSCRIBER_BUFFER = 10_000
TERMINAL_EVENT_TYPES = frozenset({ev.RUN_FINISHED})


class Lagged(Exception):
    """The subscriber's buffer overflowed; re-read from the store."""


class Subscription:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self.lagged = False

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self) -> Event:
        if self.lagged and self._queue.empty():
            raise Lagged()
        return await self._queue.get()


class EventBus(ABC):
    @abstractmethod
    async def publish(self, run_id: str, events: list[Event]) -> None:
        """Hand committed events, in seq order, to the run's current subscribers."""

    @abstractmethod
    def subscribe(self, run_id: str):
        """An async context manager yielding a `Subscription` to the run's future events."""


class InProcessEventBus(EventBus):
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    async def publish(self, run_id: str, events: list[Event]) -> None:
        for subscription in list(self._subscribers.get(run_id, ())):
            for event in events:
                subscription.offer(event)

    @asynccontextmanager
    async def subscribe(self, run_id: str):
        subscription = Subscription()
        self._subscribers.setdefault(run_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(run_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[run_id]


_bus: EventBus | None = None


def get_bus() -> EventBus:
    """The process's bus (in-process until a scale-out bus is configured)."""
    global _bus
    if _bus is None:
        _bus = InProcessEventBus()
    return _bus


async def follow_run(
    bus: EventBus,
    run_id: str,
    after_seq: int,
    load_after: Callable[[int], Awaitable[list[Event]]],
    has_ended: Callable[[], Awaitable[bool]],
    idle_seconds: float = 2.0,
) -> AsyncIterator[Event]:
    """Every event of the run after `after_seq`, persisted then live, ending with run_finished.

    `has_ended` is asked when the bus has been quiet for `idle_seconds`: a run
    that ended without publishing here (another process, a chatbot turn) is then
    finished from the store.
    """
    last = after_seq
    while True:
        async with bus.subscribe(run_id) as subscription:
            for event in await load_after(last):
                yield event
                last = event.seq
                if event.type in TERMINAL_EVENT_TYPES:
                    return
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), idle_seconds)
                except Lagged:
                    break
                except TimeoutError:
                    if await has_ended():
                        for late in await load_after(last):
                            yield late
                            last = late.seq
                        return
                    continue
                if event.seq <= last:
                    continue
                yield event
                last = event.seq
                if event.type in TERMINAL_EVENT_TYPES:
                    return
