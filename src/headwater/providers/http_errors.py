"""Turning an upstream HTTP failure into the right `ProviderError`.

Shared by the SDK-backed providers so OpenAI-compatible servers and Anthropic
classify failures the same way: whether a status is worth retrying, and what
the message says, must not depend on which vendor failed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from headwater.providers.base import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = ("error_for_status", "parse_retry_after", "redact", "upstream_message")

# Upstream bodies can be whole HTML error pages; the user needs the gist only.
MAX_DETAIL_CHARS = 500


def error_for_status(
    status: int, detail: str, *, retry_after: float | None = None
) -> ProviderError:
    if status == 429:
        return ProviderRateLimited(detail, status=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(detail, status=status)
    if status == 408:
        # "Request Timeout": the server gave up waiting, which is as transient as our own timeout.
        return ProviderTimeout(detail, status=status)
    if status >= 500:
        return ProviderUnavailable(detail, status=status, retry_after=retry_after)
    if status >= 400:
        return ProviderBadRequest(detail, status=status)
    # A status below 400 with an error means the error arrived inside a 200
    # stream; without a status to go by it is not safe to retry.
    return ProviderError(detail, status=status or None)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` / `Retry-After` (delta-seconds or HTTP date)."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def upstream_message(body: Any, fallback: str) -> str:
    """The human part of an error body: `{"error": {"message": ...}}` in both vendors' formats."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return fallback


def redact(text: str, secret: str | None) -> str:
    """Remove the API key from text that may echo it (some servers quote the bad key back)."""
    if secret:
        text = text.replace(secret, "***")
    if len(text) > MAX_DETAIL_CHARS:
        text = text[:MAX_DETAIL_CHARS] + "..."
    return text
