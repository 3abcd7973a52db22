"""Per-key request limits: a fixed one-minute window per key.

A fixed window is cheap and its reset time is exactly what `X-RateLimit-Reset`
reports. `RateLimiter` is the protocol: `MemoryRateLimiter` keeps the windows in
this process (embedded mode, one process), `headwater.scaleout.redis_ratelimit`
keeps them in Redis so a key's limit holds across every API process. Both pass
`tests/conformance/test_rate_limiter.py`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
        }


class RateLimiter(Protocol):
    async def hit(self, key_id: str, limit: int | None = None) -> RateDecision:
        """Count one request of the key in its current window; refused once `limit` are counted."""

    async def close(self) -> None:
        """Release connections."""


class MemoryRateLimiter:
    def __init__(self, default_per_minute: int, clock=time.monotonic):
        self.default_per_minute = default_per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key_id: str, limit: int | None = None) -> RateDecision:
        limit = limit or self.default_per_minute
        now = self._clock()
        started, count = self._windows.get(key_id, (now, 0))
        if now - started >= WINDOW_SECONDS:
            started, count = now, 0
        reset_after = WINDOW_SECONDS - (now - started)
        if count >= limit:
            self._windows[key_id] = (started, count)
            return RateDecision(False, limit, 0, reset_after)
        count += 1
        self._windows[key_id] = (started, count)
        if len(self._windows) > 100_000:  # forget idle keys rather than grow without bound
            self._prune(now)
        return RateDecision(True, limit, limit - count, reset_after)

    async def close(self) -> None:
        self._windows.clear()

    def _prune(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW_SECONDS}
