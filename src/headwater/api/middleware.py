"""Pure ASGI middleware (no per-request task or body buffering, so streams stay cheap)."""

from __future__ import annotations

import orjson

from headwater.api.deps import RATE_LIMIT_STATE


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or while they stream in."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _reject(send, 400, "invalid Content-Length")
                if declared > self.max_bytes:
                    return await _reject(send, 413, f"request body larger than {self.max_bytes} bytes")
        received = 0
        response_started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await _reject(send, 413, f"request body larger than {self.max_bytes} bytes")


class RateLimitHeaders:
    """Adds the X-RateLimit-* headers that the auth dependency computed to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                limits = scope.get("state", {}).get(RATE_LIMIT_STATE)
                if limits:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    extra = [
                        (k.lower().encode(), v.encode()) for k, v in limits.items() if k.lower().encode() not in present
                    ]
                    message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InputGuard:
    """Refuses input that would reach the store or the validators in a harmful shape, before any route sees it.

    - A NUL character in the path or the query: PostgreSQL cannot store one in text, so
      an id carrying it would fail deep down as a 500 (400 here instead).
    - A JSON body that is not JSON, is not UTF-8, nests deeper than `max_depth`, holds
      more than `max_items` values or an object with more than `max_keys` keys (422). A
      million-key object is cheap to send and, left to the route, costs a validation
      error per key: seconds of CPU and a gigabyte of memory. Parsing here with orjson
      costs a fraction of that and nothing is kept.
    - A string with a NUL character or a number beyond the 64-bit integer range in a JSON
      body (422): neither store holds them, so they would fail deep down as a 500.
    The checked body is handed on unchanged; later `receive` calls (a client disconnecting
    from a stream) go to the connection as before.
    """

    def __init__(self, app, max_depth: int, max_items: int, max_keys: int):
        self.app = app
        self.max_depth = max_depth
        self.max_items = max_items
        self.max_keys = max_keys

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if "\x00" in scope.get("path", "") or _has_nul(scope.get("query_string", b"")):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 4400})
            return await _reject(send, 400, "NUL characters are not accepted in the path or the query")
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or not _may_be_json(scope):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its body
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip() and (problem := self._problem(scope, body)):
            return await _reject(send, 422, problem)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _problem(self, scope, body: bytes) -> str | None:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if _header(scope, b"content-type") is None:
                return None  # not JSON and not said to be: the route decides what it is
            return f"the body is not valid JSON: {str(exc).split(':')[0]}"
        return _shape_problem(value, self.max_depth, self.max_items, self.max_keys)


def _shape_problem(value, max_depth: int, max_items: int, max_keys: int) -> str | None:
    stack = [(value, 1)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "strings in the body may not contain NUL characters"
            continue
        if isinstance(node, (int, float)) and not -(2**63) <= node < 2**63:  # orjson reads big ints as floats
            return "numbers in the body must lie within the 64-bit integer range"
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            return f"the JSON body nests deeper than {max_depth} levels"
        items += len(node)
        if items > max_items:
            return f"the JSON body has more than {max_items} values"
        if isinstance(node, dict):
            if len(node) > max_keys:
                return f"a JSON object in the body has more than {max_keys} keys"
            for key in node:
                if "\x00" in key:
                    return "strings in the body may not contain NUL characters"
            stack.extend((child, depth + 1) for child in node.values())
        else:
            stack.extend((child, depth + 1) for child in node)
    return None


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _may_be_json(scope) -> bool:
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return True  # checked only if it parses as JSON (routes that read raw bodies accept that)
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def _has_nul(query: bytes) -> bool:
    return b"\x00" in query or b"%00" in query


class _TooLarge(Exception):
    pass


async def _reject(send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
