"""The one HTTP client for user-given URLs (http_request node, image URLs, URL ingestion).

Every hop, the first and each redirect, goes through the same gate before any
socket is opened:
  1. only http/https, no credentials in the URL, a valid host;
  2. the host is resolved once (or read as an IP literal in any spelling) and
     EVERY address must pass the address policy (strict by default: public
     unicast only);
  3. the checked address is pinned for this request: the network backend below
     connects to it instead of resolving the name again, so a DNS answer that
     changes between check and connect (DNS rebinding) cannot redirect us. The
     URL keeps the host name, so the Host header, TLS SNI and certificate
     verification are for the name the user gave.
The backend refuses to connect to any host that was not pinned by the gate, so
a code path that forgot the gate fails closed.

Size and time are capped: the body is read as a stream and abandoned (the
connection is closed) past `max_bytes`; the whole exchange, redirects
included, must finish within `timeout`. Cookies are never stored and proxies
from the environment are never used (the transport is used without
httpx.AsyncClient), so nothing leaks between callers sharing one client.

Logs carry scheme, host and port only: paths and query strings may hold secrets.

Streaming protocols that need a client of their own (MCP's Streamable HTTP,
through the `mcp` SDK's httpx2 client) get one from `pinned_stream_client()`:
the URL passes the same gate once, and the client's only network backend
connects to that checked address and to nothing else (no redirect leaves the
origin: the SDK refuses those itself, and any other host fails closed here).
"""

from __future__ import annotations

import asyncio
import contextvars
import json as jsonlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from headwater.errors import HeadwaterError, InvalidInput
from headwater.net.address_policy import (
    AddressPolicy,
    IPAddress,
    literal_ip,
    private_allowed_policy,
    strict_address_policy,
)

logger = logging.getLogger("headwater.net.safe_http")

Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = ("http", "https")
ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# RFC 9110 7.6.1 hop-by-hop headers, plus those the client must own itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CLIENT_OWNED_REQUEST_HEADERS = HOP_BY_HOP | {"host", "content-length"}
# The body we return is decoded, so these no longer describe it.
_STALE_RESPONSE_HEADERS = HOP_BY_HOP | {"content-encoding", "content-length"}
# Credentials that must not follow a redirect to another origin.
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

_DEFAULT_HEADERS = {
    "user-agent": "headwater",
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
}


class EgressRefused(InvalidInput):
    """422: the URL or an address it leads to is not allowed."""


class EgressFailed(HeadwaterError):
    """502: the remote side timed out, failed, or answered with something unusable."""

    status_code = 502


class EgressTooLarge(EgressFailed):
    """The response body exceeded the size cap."""


@dataclass
class SafeResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes
    url: str  # the final URL, after redirects

    def text(self) -> str:
        return self.content.decode(self._charset(), errors="replace")

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.content)
        except ValueError:
            raise EgressFailed("response body is not valid JSON") from None

    def _charset(self) -> str:
        content_type = self.headers.get("content-type", "")
        for part in content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"'")
                try:
                    "".encode(charset)
                    return charset
                except LookupError:
                    break
        return "utf-8"


# (host as httpx hands it to the backend, port) -> the checked IP to connect to.
# A ContextVar, so concurrent requests on one shared client never see each other's pins.
_pinned_addresses: contextvars.ContextVar[dict[tuple[str, int], str] | None] = contextvars.ContextVar(
    "headwater_safe_http_pins", default=None
)


class _UnpinnedHost(httpcore.ConnectError):
    pass


class _PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to the address the gate checked for this host, never to anything else."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pins = _pinned_addresses.get() or {}
        address = pins.get((host, port))
        if address is None:
            logger.error("egress backend refused an unchecked host %s:%s", host, port)
            raise _UnpinnedHost("host was not checked by the egress gate")
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise _UnpinnedHost("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx 0.28 has no network_backend argument; the pool is rebuilt with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=_PinnedNetworkBackend(),
        )


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


def _origin(url: httpx.URL) -> str:
    """What may be logged or shown: scheme, host and port, never path or query."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


class SafeHttpClient:
    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        address_policy: AddressPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._resolver = resolver or _system_resolver
        if address_policy is not None:
            self._policy = address_policy
        else:
            self._policy = private_allowed_policy if allow_private else strict_address_policy
        self._transport = _PinnedTransport(ssl_context or httpx.create_ssl_context())

    async def __aenter__(self) -> SafeHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def get(self, url: str, **kw: Any) -> SafeResponse:
        return await self.request("GET", url, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> SafeResponse:
        method = method.upper()
        if method not in ALLOWED_METHODS:
            raise EgressRefused(f"HTTP method {method[:20]!r} is not allowed")
        if json is not None and content is not None:
            raise EgressRefused("give either json or content, not both")
        total_timeout = self.timeout if timeout is None else timeout
        limit = self.max_bytes if max_bytes is None else max_bytes
        user_headers: dict[str, str] = {}
        for name, value in (headers or {}).items():
            if not isinstance(name, str) or not isinstance(value, str) or any(
                bad in name + value for bad in ("\r", "\n", "\0")
            ):
                raise EgressRefused("header names and values must be single-line strings")
            if name.lower() not in _CLIENT_OWNED_REQUEST_HEADERS:
                user_headers[name.lower()] = value
        body = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            user_headers.setdefault("content-type", "application/json")

        token = _pinned_addresses.set({})
        try:
            async with asyncio.timeout(total_timeout):
                return await self._follow(method, url, params, user_headers, body, total_timeout, limit)
        except TimeoutError:
            raise EgressFailed(f"request timed out after {total_timeout:g}s") from None
        finally:
            _pinned_addresses.reset(token)

    async def _follow(
        self,
        method: str,
        url: str,
        params: Any,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        limit: int,
    ) -> SafeResponse:
        current = await self._check_url(url)
        if params is not None:
            current = current.copy_merge_params(params)
        for hop in range(self.max_redirects + 1):
            request = httpx.Request(method, current, headers={**_DEFAULT_HEADERS, **headers}, content=body)
            request.extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
            response = await self._send(request, limit)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            try:
                target = current.join(location)
            except httpx.InvalidURL:
                raise EgressFailed("redirect location is not a valid URL") from None
            target = await self._check_url(str(target))
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = None
                headers = {k: v for k, v in headers.items() if k != "content-type"}
            if (target.scheme, target.host, target.port) != (current.scheme, current.host, current.port):
                headers = {k: v for k, v in headers.items() if k not in _ORIGIN_BOUND_HEADERS}
            logger.debug("egress redirect %s -> %s", _origin(current), _origin(target))
            current = target
        raise EgressFailed(f"too many redirects (more than {self.max_redirects})")

    async def _send(self, request: httpx.Request, limit: int) -> SafeResponse:
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            raise EgressFailed(f"timed out talking to {_origin(request.url)}") from None
        except _UnpinnedHost:
            raise EgressRefused("connection to an unchecked host refused") from None
        except httpx.HTTPError as exc:
            raise EgressFailed(f"could not reach {_origin(request.url)}: {type(exc).__name__}") from None
        response.request = request
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise EgressTooLarge(f"response is larger than {limit} bytes")
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > limit:
                    raise EgressTooLarge(f"response is larger than {limit} bytes")
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise EgressFailed(f"timed out reading from {_origin(request.url)}") from None
        except httpx.HTTPError as exc:
            raise EgressFailed(f"failed reading from {_origin(request.url)}: {type(exc).__name__}") from None
        finally:
            # Closing an unfinished response drops its connection instead of pooling it.
            await response.aclose()
        logger.debug("egress %s %s -> %s (%d bytes)", request.method, _origin(request.url), response.status_code, received)
        return SafeResponse(
            status_code=response.status_code,
            headers={
                name: value
                for name, value in response.headers.items()
                if name.lower() not in _STALE_RESPONSE_HEADERS
            },
            content=b"".join(chunks),
            url=str(request.url),
        )

    async def _check_url(self, url: str) -> httpx.URL:
        """Refuse a URL unless its scheme, form and every address of its host pass; pin the address."""
        if not isinstance(url, str):
            url = str(url)
        scheme = urlsplit(url).scheme.lower() if ":" in url else ""
        if scheme not in ALLOWED_SCHEMES:
            shown = scheme[:20] or "none"
            raise EgressRefused(f"URL scheme {shown!r} is not allowed (only http and https)")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise EgressRefused(self._why_unparseable(url)) from None
        if parsed.userinfo:
            raise EgressRefused("URLs with credentials (user:password@) are not allowed")
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise EgressRefused("URL has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal = literal_ip(host)
        except ValueError:
            raise EgressRefused("URL host is not a valid IPv6 address") from None
        if literal is not None:
            reason = self._policy(literal, port)
            if reason:
                logger.info("egress refused: literal address (%s)", reason)
                raise EgressRefused(f"address {literal} is not allowed ({reason})")
            addresses: list[IPAddress] = [literal]
        else:
            addresses = await self._resolve(host, port)
            for address in addresses:
                reason = self._policy(address, port)
                if reason:
                    # The resolved address is not shown: it would map internal DNS for the caller.
                    logger.info("egress refused: host %s resolves to a non-public address (%s)", host, reason)
                    raise EgressRefused(f"host {host!r} resolves to an address that is not allowed ({reason})")
        pins = _pinned_addresses.get()
        if pins is None:
            raise RuntimeError("_check_url used outside SafeHttpClient.request")
        pins[(host, port)] = str(addresses[0])
        return parsed

    async def check_origin(self, url: str) -> tuple[httpx.URL, str]:
        """The URL, checked by the gate, and the address its host may be reached at (for a pinned client)."""
        token = _pinned_addresses.set({})
        try:
            parsed = await self._check_url(url)
            pins = _pinned_addresses.get() or {}
        finally:
            _pinned_addresses.reset(token)
        host = parsed.raw_host.decode("ascii")
        return parsed, pins[(host, parsed.port or (443 if parsed.scheme == "https" else 80))]

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            raw = await self._resolver(host, port)
        except (OSError, UnicodeError):
            raise EgressFailed(f"could not resolve host {host!r}") from None
        addresses: list[IPAddress] = []
        for text in raw:
            try:
                addresses.append(literal_ip(text) or _not_an_ip(text))
            except ValueError:
                raise EgressFailed(f"could not resolve host {host!r}") from None
        if not addresses:
            raise EgressFailed(f"could not resolve host {host!r}")
        return addresses

    def _why_unparseable(self, url: str) -> str:
        """httpx rejects some spellings (0177.0.0.1) outright; say what they denote if we can."""
        try:
            host = urlsplit(url).hostname or ""
            literal = literal_ip(host) if host else None
        except ValueError:
            literal = None
        if literal is not None:
            reason = self._policy(literal, 80)
            if reason:
                return f"address {literal} is not allowed ({reason})"
        return "URL is not valid"


def _not_an_ip(text: str) -> IPAddress:
    raise ValueError(text)


class _OneOriginBackend:
    """An httpcore2 network backend that connects to one checked (host, port), at its pinned address."""

    def __init__(self, host: str, port: int, address: str) -> None:
        import httpcore2

        self._inner = httpcore2.AnyIOBackend()
        self._error = httpcore2.ConnectError
        self._allowed = (host, port)
        self._address = address

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if (host, port) != self._allowed:
            logger.error("egress stream backend refused an unchecked host %s:%s", host, port)
            raise self._error("host was not checked by the egress gate")
        return await self._inner.connect_tcp(
            self._address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise self._error("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def pinned_stream_client(
    url: str, *, allow_private: bool, headers: dict[str, str] | None = None, timeout: float = 30.0,
    read_timeout: float | None = None, resolver: Resolver | None = None,
):
    """An `httpx2.AsyncClient` for streaming to `url`'s origin only, through the gate (EgressRefused if not).

    No environment proxies, no cookies kept between clients (each caller gets its own),
    no redirects followed by the client itself.
    """
    import httpcore2
    import httpx2

    gate = SafeHttpClient(allow_private=allow_private, resolver=resolver)
    parsed, address = await gate.check_origin(url)
    await gate.aclose()
    for name, value in (headers or {}).items():
        if any(bad in name + value for bad in ("\r", "\n", "\0")):
            raise EgressRefused("header names and values must be single-line strings")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    ssl_context = transport._pool._ssl_context  # noqa: SLF001 - keep httpx2's verified TLS settings
    # Like _PinnedTransport: the pool is rebuilt around a backend that only reaches the checked address.
    transport._pool = httpcore2.AsyncConnectionPool(  # noqa: SLF001
        ssl_context=ssl_context, max_connections=20, max_keepalive_connections=5, keepalive_expiry=5.0,
        network_backend=_OneOriginBackend(host, port, address),
    )
    return httpx2.AsyncClient(
        transport=transport, headers=headers, trust_env=False, follow_redirects=False,
        timeout=httpx2.Timeout(timeout, read=read_timeout if read_timeout is not None else timeout),
    )
