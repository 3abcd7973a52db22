"""The server's own route table, as the security tests walk it.

Everything here is read from `create_app().routes` (HTTP and WebSocket routes,
mounts, routes left out of the OpenAPI schema), never hand-listed, so a route
added later is covered the day it lands. What a route needs from a caller is read
from its dependencies (`require_scope`, `get_instance_admin`, `get_principal`);
the few routes that check a scope in their body say so in INLINE_SCOPES.
"""

from __future__ import annotations

import http.client
import inspect
import json
import re
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route, WebSocketRoute

from headwater.api import deps
from headwater.config import Settings

WEBSOCKET = "WEBSOCKET"
# Reachable without credentials, on purpose; each says why. An entry for a route that does not
# exist (yet) is harmless: it makes nothing public, auth is decided by the route itself.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "load balancers probe it",
    ("GET", "/openapi.json"): "the API's own description",
    ("GET", "/docs"): "the API's own description",
    ("GET", "/docs/oauth2-redirect"): "the API's own description",
    ("GET", "/redoc"): "the API's own description",
    ("GET", "/api/v1/chatflows-streaming/{app_id}"): "the flowise SDK asks it without a key; yes/404 only",
    ("GET", "/"): "redirects to the Studio page",
    ("GET", "/studio"): "the Studio page shell, no data",
    ("GET", "/studio/assets/{version}/{name}"): "the Studio's static files",
    ("POST", "/studio/api/session"): "Studio sign-in checks the credentials it is given",
}
# Routes that take any key and then check a scope themselves.
INLINE_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/vector/upsert/{app_id}"): "knowledge",
    ("POST", "/api/v1/prediction/{app_id}"): "chatbot",
    (WEBSOCKET, "/chats/{chat_id}/ws"): "chatbot",
    # The MCP endpoint authenticates each request itself (api/mcp_server.py), with the scope that runs apps.
    ("GET", "/mcp"): "chatbot",
    ("POST", "/mcp"): "chatbot",
    ("DELETE", "/mcp"): "chatbot",
    # Reading the Studio session and signing out need its cookie (their own dependency, web/routes.py).
    ("GET", "/studio/api/session"): "any",
    ("DELETE", "/studio/api/session"): "any",
}
MOUNT_METHODS = ("GET", "POST", "DELETE")


@dataclass(frozen=True)
class RouteInfo:
    method: str  # an HTTP method, or WEBSOCKET
    path: str  # the template, e.g. /v1/apps/{app_id}
    route: Any = field(compare=False, repr=False)
    is_mount: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{([^}:]+)(?::[^}]*)?\}", self.path)

    @property
    def is_public(self) -> bool:
        return self.key in PUBLIC

    @property
    def is_websocket(self) -> bool:
        return self.method == WEBSOCKET

    @property
    def takes_body(self) -> bool:
        """A body in its signature, or one its OpenAPI entry documents (a route that reads it itself)."""
        if getattr(self.route, "body_field", None) is not None:
            return True
        operation = openapi()["paths"].get(self.path, {}).get(self.method.lower(), {})
        return "requestBody" in operation

    @property
    def query_params(self) -> list[str]:
        dependant = getattr(self.route, "dependant", None)
        if dependant is None:
            return []
        names: list[str] = []
        for found in _walk_dependants(dependant):
            names += [q.alias or q.name for q in found.query_params]
        return names

    @property
    def required_scope(self) -> str | None:
        """'instance_admin', 'admin', 'chatbot', 'knowledge', 'any' (a key of any scope), or None (no dependency says)."""
        if self.key in INLINE_SCOPES:
            return INLINE_SCOPES[self.key]
        dependant = getattr(self.route, "dependant", None)
        if dependant is None:
            return None
        found: set[str] = set()
        for sub in _walk_dependants(dependant):
            call = sub.call
            if call is deps.get_instance_admin:
                found.add("instance_admin")
            elif getattr(call, "__qualname__", "").startswith("require_scope."):
                found.add(inspect.getclosurevars(call).nonlocals["scope"])
            elif call in (deps.get_principal, deps.get_optional_principal):
                found.add("any")
        for strongest in ("instance_admin", "admin", "chatbot", "knowledge", "any"):
            if strongest in found:
                return strongest
        return None

    def fill(self, values: dict[str, str]) -> str:
        return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", lambda m: values[m.group(1)], self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _walk_dependants(dependant):
    stack = [dependant]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.dependencies)


def _contexts(routes):
    try:  # FastAPI that keeps included routers as such: read the effective routes through them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into app.routes
        yield from routes
        return
    yield from iter_route_contexts(routes)


@cache
def app_routes() -> tuple[RouteInfo, ...]:
    """Every (method, path) the server answers, HEAD left out (it follows GET)."""
    from headwater.server import create_app

    app = create_app(Settings(data_dir="/nonexistent-route-table", admin_key="hw_route_table"))
    found: list[RouteInfo] = []
    for context in _contexts(app.routes):
        original = getattr(context, "original_route", context)
        path = context.path
        if isinstance(original, (APIWebSocketRoute, WebSocketRoute)):
            found.append(RouteInfo(WEBSOCKET, path, context))
        elif isinstance(original, Mount):
            found += [RouteInfo(method, path.rstrip("/") or "/", context, is_mount=True) for method in MOUNT_METHODS]
        elif isinstance(original, (APIRoute, Route)):
            found += [RouteInfo(method, path, context) for method in sorted(context.methods or ()) if method != "HEAD"]
        else:
            raise AssertionError(f"a route of a kind the security tests do not know: {original!r} at {path}")
    return tuple(sorted(set(found), key=lambda r: (r.path, r.method)))


@cache
def openapi() -> dict[str, Any]:
    from headwater.server import create_app

    return create_app(Settings(data_dir="/nonexistent-route-table", admin_key="hw_route_table")).openapi()


def path_variants(path: str) -> list[str]:
    """Spellings of `path` that a prefix-matching auth check would get wrong (Flowise CVE-2024-31621)."""
    first, _, rest = path.lstrip("/").partition("/")
    encoded_first = "".join(f"%{ord(c):02X}" for c in first[:2]) + first[2:]
    return [
        path.upper(),
        path.swapcase(),
        "/" + path,
        path.replace("/", "//"),
        f"/{encoded_first}/{rest}" if rest else f"/{encoded_first}",
        path.replace("/", "%2F"),
        f"/{first}/../{path.lstrip('/')}",
        f"/{first}/%2e%2e/{path.lstrip('/')}",
        "/./" + path.lstrip("/"),
        path + "/",
        path + "/.",
        path + ";x",
        path + "%00",
        path + "?x=../../",
    ]


class RawClient:
    """HTTP/1.1 with the path sent byte for byte (httpx would normalise dot segments away)."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body, headers["Content-Type"] = b"{}", "application/json"
        for attempt in range(2):
            try:
                self.connection.putrequest(method, path, skip_accept_encoding=True)
                for name, value in headers.items():
                    self.connection.putheader(name, value)
                if body is not None:
                    self.connection.putheader("Content-Length", str(len(body)))
                self.connection.endheaders(body)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def detail_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail"))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


@dataclass(frozen=True)
class SocketOutcome:
    """How a WebSocket attempt ended: refused at the handshake (`status`), closed (`close_code`), or left open."""

    status: int | None = None
    close_code: int | None = None
    frames: tuple[str, ...] = ()

    @property
    def refused_as(self) -> int | None:
        """The HTTP status of a refused handshake, or the close code's HTTP twin (4401 -> 401)."""
        if self.status is not None:
            return self.status
        if self.close_code is not None and 4000 <= self.close_code < 5000:
            return self.close_code - 4000
        return None

    def __str__(self) -> str:
        if self.status is not None:
            return f"handshake refused {self.status}"
        return f"closed {self.close_code}" if self.close_code is not None else f"open ({len(self.frames)} frames)"


def socket_outcome(port: int, path: str, headers: dict[str, str] | None = None,
                   first_frame: dict | None = None, wait: float = 3.0) -> SocketOutcome:
    """Connect, optionally send one frame, and read until the server closes or `wait` passes."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    frames: list[str] = []
    try:
        with connect(f"ws://127.0.0.1:{port}{path}", additional_headers=headers or {}, open_timeout=5,
                     proxy=None, compression=None) as socket:
            if first_frame is not None:
                socket.send(json.dumps(first_frame))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    frame = socket.recv(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
                frames.append(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))
        return SocketOutcome(frames=tuple(frames))
    except InvalidStatus as exc:
        return SocketOutcome(status=exc.response.status_code)
    except ConnectionClosed as exc:
        return SocketOutcome(close_code=exc.rcvd.code if exc.rcvd else 1006, frames=tuple(frames))


# What the security tests tried, printed at the end of the run (conftest.pytest_terminal_summary).
COUNTS: dict[str, int] = {}


def count(name: str, n: int = 1) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + n


def report(failures: list) -> str:
    """A failure list as one line each, for the assertion message."""
    return f"{len(failures)} failing:\n" + "\n".join(str(f) for f in failures)
