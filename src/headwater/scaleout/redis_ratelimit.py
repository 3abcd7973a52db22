"""Scale-out rate limits: each key's one-minute fixed window is a counter in Redis.

Built on the `limits` library (its async Redis storage through redis-py, and its
fixed-window strategy), so the counting is the library's well-trodden Lua
script: the first hit of a window creates the counter with a 60 s TTL, every
hit increments it atomically, so all API processes share one window per key.
Keys look like `{prefix}:LIMITER/{key_id}/{limit}/1/minute`: the limit is part
of the key, so changing a key's limit starts it a fresh window.

If Redis cannot be reached the request is allowed and a warning logged: an
outage of the limiter must not turn into an outage of the API (fail open).
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from headwater.ratelimit import WINDOW_SECONDS, RateDecision

log = logging.getLogger(__name__)


def _limits_uri(url: str) -> str:
    """`limits` picks its async storage by scheme: redis://… becomes async+redis://…"""
    return url if url.startswith("async+") else f"async+{url}"


class RedisRateLimiter:
    def __init__(self, url: str, default_per_minute: int, *, prefix: str = "hw") -> None:
        self.default_per_minute = default_per_minute
        # Our own pool (handed to `limits`), so `close` can release it; `limits` would
        # otherwise default to coredis, which is not installed.
        self._pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2)
        storage = RedisStorage(_limits_uri(url), implementation="redispy", key_prefix=prefix,
                               connection_pool=self._pool)
        self._limiter = FixedWindowRateLimiter(storage)

    async def hit(self, key_id: str, limit: int | None = None) -> RateDecision:
        limit = limit or self.default_per_minute
        item = RateLimitItemPerMinute(limit)
        try:
            allowed = await self._limiter.hit(item, key_id)
            stats = await self._limiter.get_window_stats(item, key_id)
        except (redis.RedisError, OSError) as error:
            log.warning("rate limit: Redis unreachable (%r); allowing key %s", error, key_id)
            return RateDecision(True, limit, limit, WINDOW_SECONDS)
        # The window's end comes from a whole-second TTL: keep it in (0, 60] so clients
        # told to retry are never told "now" while the window is still open.
        reset_after = min(WINDOW_SECONDS, max(1.0, stats.reset_time - time.time()))
        return RateDecision(allowed, limit, stats.remaining if allowed else 0, reset_after)

    async def close(self) -> None:
        await self._pool.aclose()
