"""Fixtures of the conformance suites: the Redis URL (or a skip), and a key prefix per test.

Every suite runs each protocol against all its implementations; the Redis ones
use a prefix of their own (`hwtest-<random>`) for every key and channel, and
delete only the keys under it afterwards, so they can share a Redis with
anything else (never FLUSHDB/FLUSHALL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = os.environ.get("HEADWATER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_unavailable_reason() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return f"Redis at {REDIS_URL.removeprefix('redis://')} not reachable: {error}"
    finally:
        client.close()
    return None


@pytest.fixture
def redis_url(redis_unavailable_reason: str | None) -> str:
    if redis_unavailable_reason:
        pytest.skip(redis_unavailable_reason)
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_unavailable_reason: str | None) -> Iterator[str]:
    """A namespace no other test (or process) uses; its keys are deleted after the test."""
    prefix = f"hwtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    if redis_unavailable_reason:
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def run_id() -> str:
    return f"run-{uuid.uuid4().hex}"
