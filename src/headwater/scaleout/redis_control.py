"""Scale-out run control: a stop travels over Redis pub/sub, and is noted in a Redis key.

`request_cancel` sets `{prefix}:run-cancel:{run_id}` (for `CANCEL_NOTE_SECONDS`)
and then PUBLISHes the run id on `{prefix}:run-control`, in that order on one
connection. Each process runs one listener task, subscribed to that channel,
which cancels the local task of any run it holds when a message arrives.

Why no stop can slip through: `register` puts the run in the local table, makes
sure the listener is subscribed, and only then reads the key. A stop whose SET
came before that read is seen by it; one whose SET came after has its PUBLISH
after the subscription too, and the listener finds the run in the table.

Pub/sub is fire-and-forget, so messages sent while the listener is not
subscribed are lost. The listener therefore owns its reconnection (its
connections have redis-py's silent retries turned off, so it knows when it was
cut off): after every (re)subscription, and every `SWEEP_SECONDS` while it
holds runs, it checks the keys of the runs held here ("sweep"). A stop thus
reaches its run at once normally, and within a sweep after an outage.
If Redis is down when a run registers, the run still starts (a Redis blip must
not fail runs); the sweep after reconnection delivers any stop it missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from headwater.engine.control import CANCEL_NOTE_SECONDS, Registration

log = logging.getLogger(__name__)

# How often the listener re-checks the stop keys of the runs it holds (covers lost messages).
SWEEP_SECONDS = 5.0
# Longest `register` waits for the listener's first subscription attempt before letting the run start.
SUBSCRIBE_WAIT_SECONDS = 5.0
BACKOFF_MIN_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0


class RedisRunControl:
    """`RunControl` over Redis; registrations stay local, stops and their notes go through Redis."""

    def __init__(self, url: str, *, prefix: str = "hw") -> None:
        self._prefix = prefix
        self._channel = f"{prefix}:run-control"
        self._client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url))
        # The listener's own pool: no transparent retries (see the module docstring), keepalive
        # and a health-check PING so a dead connection surfaces as an error.
        self._listener_pool = redis.ConnectionPool.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_keepalive=True, socket_connect_timeout=5,
            health_check_interval=30, client_name=f"{prefix}-run-control-listener")
        self._runs: dict[str, Registration] = {}
        self._notes: dict[str, float] = {}  # run id -> when a stop was seen here (monotonic)
        self._listener: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # set once the listener's first subscription attempt ended
        self._subscribed = False
        self._closed = False

    def cancel_key(self, run_id: str) -> str:
        return f"{self._prefix}:run-cancel:{run_id}"

    @property
    def subscribed(self) -> bool:
        """Whether the listener is subscribed now (stops published now reach this process at once)."""
        return self._subscribed

    async def start(self) -> None:
        """Start the listener if it is not running, and wait for its first subscription attempt."""
        if self._closed:
            raise RuntimeError("run control is closed")
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen_forever(), name=f"{self._channel} listener")
        if not self._attempted.is_set():
            try:
                await asyncio.wait_for(self._attempted.wait(), SUBSCRIBE_WAIT_SECONDS)
            except TimeoutError:
                log.warning("run control: no subscription to %s yet; stops reach runs after it", self._channel)

    @asynccontextmanager
    async def register(self, run_id: str, task: asyncio.Task, *, foreground: bool) -> AsyncIterator[Registration]:
        registration = Registration(run_id, task, foreground)
        self._runs[run_id] = registration
        try:
            if run_id in self._notes:
                task.cancel()
            else:
                await self.start()  # subscribed before the key is read: see the module docstring
                try:
                    stopped = bool(await self._client.exists(self.cancel_key(run_id)))
                except (redis.RedisError, OSError) as error:
                    log.warning("run control: cannot check the stop key of run %s (%s); the sweep will", run_id, error)
                    stopped = False
                if stopped:
                    self._stop_here(run_id)
            yield registration
        finally:
            registration.done.set()
            if self._runs.get(run_id) is registration:
                del self._runs[run_id]

    async def request_cancel(self, run_id: str) -> None:
        self._stop_here(run_id)  # no round trip when the run executes in this process
        # SET before PUBLISH, on one connection: `register`'s ordering argument relies on it.
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self.cancel_key(run_id), b"1", ex=int(CANCEL_NOTE_SECONDS))
            pipe.publish(self._channel, run_id)
            await pipe.execute()

    async def cancel_requested(self, run_id: str) -> bool:
        if run_id in self._notes:
            return True
        return bool(await self._client.exists(self.cancel_key(run_id)))

    def running_here(self) -> list[str]:
        return list(self._runs)

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        self._runs.clear()
        await self._listener_pool.aclose()
        await self._client.aclose(close_connection_pool=True)

    # -- the listener ------------------------------------------------------------------------

    def _stop_here(self, run_id: str) -> None:
        """Note a stop and cancel the run's task if this process executes it."""
        now = time.monotonic()
        if len(self._notes) > 10_000:  # forget old notes rather than grow: the key outlives them
            self._notes = {rid: at for rid, at in self._notes.items() if now - at < CANCEL_NOTE_SECONDS}
        self._notes[run_id] = now
        registration = self._runs.get(run_id)
        if registration is not None and not registration.task.done():
            registration.task.cancel()

    async def _listen_forever(self) -> None:
        backoff = BACKOFF_MIN_SECONDS
        while True:
            pubsub = redis.Redis(connection_pool=self._listener_pool).pubsub()
            try:
                await self._subscribe(pubsub)
                if backoff > BACKOFF_MIN_SECONDS:
                    log.info("run control: subscribed to %s again", self._channel)
                backoff = BACKOFF_MIN_SECONDS
                await self._sweep()  # stops published while we were not subscribed
                await self._read_messages(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the listener must outlive any one failure
                log.warning("run control: listener lost %s (%r); retrying in %.1f s", self._channel, error, backoff)
            finally:
                self._subscribed = False
                self._attempted.set()
                await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _subscribe(self, pubsub: PubSub) -> None:
        # SUBSCRIBE is only in effect once Redis has processed it: wait for its confirmation,
        # so `register` can rely on "subscribed" meaning it.
        await pubsub.subscribe(self._channel)
        deadline = time.monotonic() + SUBSCRIBE_WAIT_SECONDS
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None and message["type"] == "subscribe":
                self._subscribed = True
                self._attempted.set()
                return
        raise TimeoutError(f"no confirmation of SUBSCRIBE {self._channel}")

    async def _read_messages(self, pubsub: PubSub) -> None:
        last_sweep = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=SWEEP_SECONDS)
            if message is not None and message["type"] == "message":
                self._on_message(message["data"])
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                await self._sweep()
                last_sweep = time.monotonic()

    def _on_message(self, data: bytes | str) -> None:
        run_id = data.decode() if isinstance(data, bytes) else data
        if run_id in self._runs:  # stops of runs held elsewhere are that process's business
            self._stop_here(run_id)

    async def _sweep(self) -> None:
        held = [run_id for run_id, reg in self._runs.items() if not reg.task.done()]
        if not held:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for run_id in held:
                pipe.exists(self.cancel_key(run_id))
            flags = await pipe.execute()
        for run_id, flag in zip(held, flags, strict=True):
            if flag:
                self._stop_here(run_id)
