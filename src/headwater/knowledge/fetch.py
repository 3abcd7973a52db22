"""Fetching a document by URL, only through the SSRF-safe egress client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.errors import InvalidInput
from headwater.net.safe_http import EgressFailed, SafeHttpClient

if TYPE_CHECKING:
    from headwater.config import Settings

FETCH_TIMEOUT_SECONDS = 20.0


async def fetch_url(settings: "Settings", url: str, max_bytes: int) -> tuple[bytes, str | None, str]:
    """(body, content type, final URL). Refused addresses are 422, remote failures 502."""
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("url must be an http or https URL")
    allow_private = bool(getattr(settings, "egress_allow_private", False))
    async with SafeHttpClient(timeout=FETCH_TIMEOUT_SECONDS, max_bytes=max_bytes, allow_private=allow_private) as client:
        response = await client.get(url)
    if response.status_code >= 400:
        raise EgressFailed(f"fetching the URL failed: the server answered {response.status_code}")
    return response.content, response.headers.get("content-type"), response.url


def file_name_from_url(url: str) -> str | None:
    """The last path segment when it names a file of a known type (a hint for sniffing only)."""
    from urllib.parse import unquote, urlsplit

    from headwater.knowledge.sniffing import EXTENSIONS

    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    suffix = "." + segment.rsplit(".", 1)[-1].lower() if "." in segment else ""
    return segment if suffix in EXTENSIONS else None
