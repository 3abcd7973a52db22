from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from headwater.providers.base import (
    ChatDelta,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from headwater.providers.retry import backoff_delay, stream_with_retries


class Script:
    """Each call to open() plays the next attempt: a list of texts, optionally ending in an error."""

    def __init__(self, *attempts: list[str | ProviderError]):
        self.attempts = list(attempts)
        self.opened = 0
        self.closed = 0

    def open(self) -> AsyncIterator[ChatDelta]:
        steps = self.attempts[self.opened]
        self.opened += 1

        async def run() -> AsyncIterator[ChatDelta]:
            try:
                for step in steps:
                    if isinstance(step, ProviderError):
                        raise step
                    yield ChatDelta(text=step)
            finally:
                self.closed += 1

        return run()


async def collect(stream: AsyncIterator[ChatDelta]) -> str:
    return "".join([d.text async for d in stream])


async def test_retries_429_and_503_then_succeeds():
    script = Script(
        [ProviderRateLimited("slow down", status=429)],
        [ProviderUnavailable("down", status=503)],
        ["hello ", "world"],
    )
    text = await collect(stream_with_retries(script.open, max_retries=2, base_delay=0.001))
    assert text == "hello world"
    assert script.opened == 3
    assert script.closed == 3  # failed attempts are closed, not left to the GC


async def test_retries_timeouts():
    script = Script([ProviderTimeout("timed out")], ["ok"])
    assert await collect(stream_with_retries(script.open, max_retries=1, base_delay=0.001)) == "ok"


async def test_honours_retry_after():
    script = Script([ProviderRateLimited("slow down", status=429, retry_after=0.2)], ["ok"])
    started = time.perf_counter()
    assert await collect(stream_with_retries(script.open, max_retries=1, base_delay=0.001)) == "ok"
    assert time.perf_counter() - started >= 0.2


async def test_retry_after_is_capped_at_max_delay():
    script = Script([ProviderRateLimited("slow down", status=429, retry_after=60)], ["ok"])
    started = time.perf_counter()
    assert await collect(stream_with_retries(script.open, max_retries=1, max_delay=0.05)) == "ok"
    assert time.perf_counter() - started < 1


async def test_does_not_retry_after_first_delta():
    error = ProviderUnavailable("dropped", status=503)
    script = Script(["partial "], ["never"])
    script.attempts[0].append(error)
    received: list[str] = []
    with pytest.raises(ProviderUnavailable) as caught:
        async for delta in stream_with_retries(script.open, max_retries=3, base_delay=0.001):
            received.append(delta.text)
    assert caught.value is error
    assert received == ["partial "]
    assert script.opened == 1


async def test_gives_up_after_max_retries_with_last_error():
    errors = [ProviderUnavailable(f"down {i}", status=503) for i in range(3)]
    script = Script(*[[e] for e in errors], ["too late"])
    with pytest.raises(ProviderUnavailable) as caught:
        await collect(stream_with_retries(script.open, max_retries=2, base_delay=0.001))
    assert caught.value is errors[2]
    assert script.opened == 3


@pytest.mark.parametrize("error", [ProviderBadRequest("no such model", status=404), ProviderError("odd")])
async def test_does_not_retry_permanent_errors(error):
    script = Script([error], ["never"])
    with pytest.raises(type(error)):
        await collect(stream_with_retries(script.open, max_retries=3, base_delay=0.001))
    assert script.opened == 1


async def test_zero_retries_raises_first_error():
    script = Script([ProviderRateLimited("slow", status=429)], ["never"])
    with pytest.raises(ProviderRateLimited):
        await collect(stream_with_retries(script.open, max_retries=0))
    assert script.opened == 1


async def test_closing_the_consumer_closes_the_attempt():
    script = Script(["a", "b", "c"])
    stream = stream_with_retries(script.open, max_retries=1)
    assert (await anext(stream)).text == "a"
    await stream.aclose()
    assert script.closed == 1


def test_backoff_grows_and_is_bounded():
    for attempt in range(8):
        step = min(8.0, 0.5 * 2**attempt)
        assert step / 2 <= backoff_delay(attempt, None, 0.5, 8.0) <= step
    assert backoff_delay(0, 3.0, 0.5, 8.0) == 3.0
    assert backoff_delay(0, 30.0, 0.5, 8.0) == 8.0
