"""The scale-out event bus: one Redis stream per run is both its retained feed and its live feed.

Entries carry explicit ids `0-{seq}`, so "the events after seq N" is exactly
`XREAD ... STREAMS key 0-N`: replay and live delivery are the same read, and a
reader in any process resumes from any seq without a handshake. Publishing is
one Lua script per batch (one round trip, atomic with the expiry bookkeeping).

Trim and lag: the stream is capped near `bus.MAX_RETAINED_EVENTS` (approximate
MAXLEN, which trims whole stream nodes cheaply). A reader never overflows: it
reads at its own pace from its own cursor. When trimming removed entries it had
not read yet, its next read simply returns the oldest retained entry, whose seq
is then above the expected one; `next()` returns that event as is and never
raises `Lagged`. `follow_run` sees the gap and fills it from the store, which
is what `Lagged` would have led to anyway; raising instead would loop, since a
re-subscription from the same seq meets the same gap.

Expiry: every publish that adds entries (re)arms a long safety TTL, so a run
whose executor died leaves no stream behind forever; a batch ending with
`run_finished` sets the TTL to `bus.RETENTION_SECONDS`, and later publishes do
not push it back up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import redis.asyncio as redis

from headwater.engine import bus
from headwater.engine.events import Event, decode_event, encode_event

# A feed outlives a run whose executor vanished without run_finished by at most this.
SAFETY_TTL_SECONDS = 24 * 3600
# Entries fetched per XREAD: enough to drain a burst of tokens in one round trip.
READ_BATCH = 512
_FIELD = b"e"

# KEYS[1]: the run's stream. ARGV: maxlen, safety ttl ms, retention ms, finished (1/0),
# then one (id, encoded event) pair per event. Returns how many entries were added.
# An id not above the stream's top is an event published before (a retried batch, a
# process ending a run another one numbered): it is skipped, every other error raises.
_PUBLISH_LUA = """
local added = 0
for i = 5, #ARGV, 2 do
  local reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[i], 'e', ARGV[i + 1])
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'equal or smaller', 1, true) then
      return redis.error_reply(reply.err)
    end
  else
    added = added + 1
  end
end
local retention = tonumber(ARGV[3])
if ARGV[4] == '1' then
  redis.call('PEXPIRE', KEYS[1], retention)
elseif added > 0 then
  -- a TTL at or under the retention means run_finished was published: leave that countdown alone
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 or ttl > retention then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return added
"""


def _seq_of(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[2])


class _StreamSubscription:
    """A cursor on one run's stream; each `next` serves from a local batch or does one blocking XREAD."""

    def __init__(self, reader: redis.Redis, key: str, after_seq: int) -> None:
        self._reader = reader
        self._key = key
        self._cursor = f"0-{max(after_seq, 0)}"
        self._batch: deque[Event] = deque()

    async def next(self, timeout: float) -> Event | None:
        if not self._batch:
            await self._read(timeout)
        return self._batch.popleft() if self._batch else None

    async def _read(self, timeout: float) -> None:
        # BLOCK 0 would mean "forever" to Redis, so a zero timeout is a plain non-blocking read.
        block = max(1, round(timeout * 1000)) if timeout > 0 else None
        reply = await self._reader.xread({self._key: self._cursor}, count=READ_BATCH, block=block)
        if not reply:
            return
        # RESP2 gives [[key, entries]], RESP3 {key: [entries]}; one stream is read either way.
        entries = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]
        for entry_id, fields in entries:
            self._batch.append(decode_event(fields[_FIELD]))
            self._cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id


class RedisEventBus:
    """`EventBus` over Redis streams (see the module docstring for trim, lag and expiry)."""

    def __init__(self, url: str, *, prefix: str = "hw") -> None:
        # Two pools: subscribers hold a connection for as long as their XREAD blocks, and
        # must never make a publisher wait for one. The reader pool is unbounded on purpose:
        # one connection per concurrently blocked reader (Redis' maxclients is the real cap).
        self._client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url))
        self._reader = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url))
        self._prefix = prefix
        self._publish_script = self._client.register_script(_PUBLISH_LUA)

    def stream_key(self, run_id: str) -> str:
        return f"{self._prefix}:run-events:{run_id}"

    async def publish(self, run_id: str, events: Sequence[Event]) -> None:
        if not events:
            return
        # Module attributes are read per call so tests (and settings) can change them.
        finished = events[-1].type in bus.TERMINAL_EVENT_TYPES
        args: list[int | str | bytes] = [
            bus.MAX_RETAINED_EVENTS, SAFETY_TTL_SECONDS * 1000,
            max(1, round(bus.RETENTION_SECONDS * 1000)), 1 if finished else 0,
        ]
        for event in events:
            if event.seq < 1:  # 0-0 is not a valid stream id, and seqs start at 1
                raise ValueError(f"event seq must be >= 1, got {event.seq}")
            args += [f"0-{event.seq}", encode_event(event)]
        await self._publish_script(keys=[self.stream_key(run_id)], args=args)

    @asynccontextmanager
    async def subscribe(self, run_id: str, after_seq: int) -> AsyncIterator[_StreamSubscription]:
        # Nothing to set up or tear down server-side: the cursor is the whole subscription.
        yield _StreamSubscription(self._reader, self.stream_key(run_id), after_seq)

    async def last_seq(self, run_id: str) -> int:
        newest = await self._client.xrevrange(self.stream_key(run_id), count=1)
        return _seq_of(newest[0][0]) if newest else 0

    async def close(self) -> None:
        await self._reader.aclose(close_connection_pool=True)
        await self._client.aclose(close_connection_pool=True)
