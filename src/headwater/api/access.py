"""One log line and the request metrics for every request, and a request id on every answer.

Pure ASGI (no buffering, streams stay streams). The line says who asked (the
key's id, never the key), what was answered (status, duration, the run started
or followed from `X-Run-Id`), under which route template: paths carry ids, the
query is left out (it is the client's, and could hold anything). An SSE answer or
a WebSocket counts as an open stream until it ends.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from headwater import telemetry

log = logging.getLogger("headwater.access")
REQUEST_ID_HEADER = b"x-request-id"
KEY_ID_STATE = "key_id"
# A client's own request id is kept when it is a plain token: it goes into logs.
_CLIENT_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._\-]{1,64}$")
UNMATCHED = "<unmatched>"


class AccessLog:
    def __init__(self, app, enabled: bool = True):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        seen = {"status": None, "run_id": None, "stream": None}

        async def observed_send(message):
            kind = message["type"]
            if kind == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", []))
                for name, value in headers:
                    if name.lower() == b"x-run-id":
                        seen["run_id"] = value.decode("latin-1")
                    elif name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        seen["stream"] = "sse"
                message["headers"] = headers + [(REQUEST_ID_HEADER, request_id.encode())]
                if seen["stream"]:
                    telemetry.OPEN_STREAMS.labels("sse").inc()
            elif kind == "websocket.accept":
                seen["status"], seen["stream"] = 101, "websocket"
                telemetry.OPEN_STREAMS.labels("websocket").inc()
            elif kind == "websocket.close" and seen["status"] is None:
                seen["status"] = 403  # refused before the handshake was accepted
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            if seen["status"] is None:
                seen["status"] = 500
            raise
        finally:
            if seen["stream"]:
                telemetry.OPEN_STREAMS.labels(seen["stream"]).dec()
            self._record(scope, request_id, seen, time.perf_counter() - started)

    def _record(self, scope, request_id: str, seen: dict, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = scope.get("method", "WEBSOCKET")
        status = seen["status"] or 0
        telemetry.HTTP_REQUESTS.labels(method, template, str(status)).inc()
        telemetry.HTTP_LATENCY.labels(method, template).observe(elapsed)
        if not self.enabled:
            return
        state = scope.get("state", {})
        client = scope.get("client")
        log.info("%s %s %s", method, template, status, extra={
            "request_id": request_id, "method": method, "route": template, "path": scope.get("path"),
            "status": status, "duration_ms": round(elapsed * 1000, 1), "key_id": state.get(KEY_ID_STATE),
            "run_id": seen["run_id"], "client": client[0] if client else None,
        })


def _request_id(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER and _CLIENT_REQUEST_ID.match(value):
            return value.decode()
    return uuid.uuid4().hex
