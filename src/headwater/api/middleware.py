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
