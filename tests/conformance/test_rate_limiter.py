"""Conformance of `RateLimiter` (ratelimit): every implementation, one suite.

A key gets `limit` requests per fixed one-minute window, then refusals that say
when the window ends; keys do not share windows; with Redis, every API process
shares each key's window.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from headwater.ratelimit import MemoryRateLimiter, RateLimiter

IMPLEMENTATIONS = ["memory", "redis"]
DEFAULT_PER_MINUTE = 3


@pytest.fixture(params=IMPLEMENTATIONS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def make_limiter(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], RateLimiter]]:
    """Builds limiters; with Redis, each one stands for another API process on the same Redis."""
    made: list[RateLimiter] = []
    if kind == "redis":
        from headwater.scaleout.redis_ratelimit import RedisRateLimiter

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")

        def make() -> RateLimiter:
            made.append(RedisRateLimiter(url, DEFAULT_PER_MINUTE, prefix=prefix))
            return made[-1]
    else:
        def make() -> RateLimiter:
            made.append(MemoryRateLimiter(DEFAULT_PER_MINUTE))
            return made[-1]
    yield make
    for limiter in made:
        await limiter.close()


@pytest.fixture
def limiter(make_limiter: Callable[[], RateLimiter]) -> RateLimiter:
    return make_limiter()


@pytest.fixture
def key_id() -> str:
    return f"key-{uuid.uuid4().hex}"


async def test_limit_allows_n_then_refuses_until_the_window_ends(limiter: RateLimiter, key_id: str) -> None:
    decisions = [await limiter.hit(key_id, 5) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)
    for _ in range(2):
        refused = await limiter.hit(key_id, 5)
        assert (refused.allowed, refused.limit, refused.remaining) == (False, 5, 0)
        assert 0 < refused.reset_after <= 60
        assert 1 <= int(refused.headers()["X-RateLimit-Reset"]) <= 60
    assert decisions[0].headers()["X-RateLimit-Limit"] == "5"


async def test_a_fresh_window_ends_a_minute_after_its_first_request(limiter: RateLimiter, key_id: str) -> None:
    first = await limiter.hit(key_id, 10)
    later = await limiter.hit(key_id, 10)
    # Redis reports the window's end from a whole-second TTL: compare to a second's precision.
    assert 58 <= first.reset_after <= 60
    assert 58 <= later.reset_after <= first.reset_after + 1
    assert math.ceil(later.reset_after) <= 60


async def test_default_limit_applies_without_one(limiter: RateLimiter, key_id: str) -> None:
    decisions = [await limiter.hit(key_id) for _ in range(DEFAULT_PER_MINUTE + 1)]
    assert [d.allowed for d in decisions] == [True] * DEFAULT_PER_MINUTE + [False]
    assert decisions[0].limit == DEFAULT_PER_MINUTE


async def test_keys_do_not_share_windows(limiter: RateLimiter, key_id: str) -> None:
    other = f"{key_id}-other"
    assert [(await limiter.hit(key_id, 2)).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.hit(other, 2)).allowed
    assert (await limiter.hit(other, 2)).remaining == 0
    assert not (await limiter.hit(other, 2)).allowed


async def test_processes_share_one_window(
        kind: str, make_limiter: Callable[[], RateLimiter], key_id: str) -> None:
    if kind == "memory":
        pytest.skip("one process: memory windows are per process by design")
    first, second = make_limiter(), make_limiter()
    decisions = [await (first if i % 2 == 0 else second).hit(key_id, 10) for i in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))


async def test_redis_limiter_fails_open_when_redis_is_down(key_id: str) -> None:
    from headwater.scaleout.redis_ratelimit import RedisRateLimiter

    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", DEFAULT_PER_MINUTE)  # nothing listens on port 1
    try:
        decision = await limiter.hit(key_id, 5)
    finally:
        await limiter.close()
    assert (decision.allowed, decision.limit) == (True, 5)
