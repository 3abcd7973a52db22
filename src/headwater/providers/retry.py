"""Retrying a model stream without ever repeating text to the user.

A stream can only be restarted while nothing has been yielded: once a delta
has gone out, a retry would send the user the start of the answer twice (or
two different answers glued together), so the error propagates instead.
Provider SDKs are built with their own retries switched off; this is the
single place that decides when to try again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

from headwater import telemetry
from headwater.providers.base import ChatDelta, ProviderError

__all__ = ("stream_with_retries", "backoff_delay")


def backoff_delay(attempt: int, retry_after: float | None, base_delay: float, max_delay: float) -> float:
    """Seconds to wait before retry number `attempt` (0-based).

    An upstream `Retry-After` wins over our own schedule (it knows its rate
    window better than we do), but is capped so a server asking for minutes
    cannot park a user's request; the next attempt then fails fast instead.
    Otherwise exponential backoff with "equal jitter": at least half the step,
    so concurrent callers spread out without any of them retrying at once.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, max_delay)
    step = min(max_delay, base_delay * (2**attempt))
    return step / 2 + random.uniform(0, step / 2)


async def stream_with_retries(
    open_stream: Callable[[], AsyncIterator[ChatDelta]],
    *,
    max_retries: int,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
) -> AsyncIterator[ChatDelta]:
    """Yield from `open_stream()`, reopening it on a retryable `ProviderError`.

    Retries happen only before the first delta and at most `max_retries`
    times; after that the last error is raised unchanged.
    """
    attempt = 0
    while True:
        stream = open_stream()
        yielded = False
        try:
            async for delta in stream:
                yielded = True
                yield delta
            return
        except ProviderError as exc:
            if yielded or not exc.retryable or attempt >= max_retries:
                raise
            delay = backoff_delay(attempt, exc.retry_after, base_delay, max_delay)
            telemetry.provider_retry(exc)
        finally:
            # Closing the failed (or abandoned) attempt releases its connection
            # now rather than whenever the garbage collector gets to it.
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        attempt += 1
        await asyncio.sleep(delay)
