"""Helpers of the agent and thread scenarios: scripts for the scripted provider, agents, polling, WebSockets."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def script(*entries: dict[str, Any]) -> str:
    """A message that makes the scripted provider reply with `entries`, one per model call."""
    return f"<script>{json.dumps(list(entries))}</script>"


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def step(say: str = "", *calls: dict[str, Any], delay_ms: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = {"say": say}
    if calls:
        entry["tool_calls"] = list(calls)
    if delay_ms:
        entry["delay_ms"] = delay_ms
    return entry


def node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **config}


def chain(*ids: str) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in zip(ids, ids[1:])]


def create_agent(client: httpx.Client, *, model: str = "scripted/tools", **config: Any) -> dict[str, Any]:
    response = client.post("/v1/apps", json={"name": config.pop("name", "Agent"), "kind": "agent",
                                             "config": {"model": model, **config}})
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(fetch, until, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(interval)


def events_of(client: httpx.Client, run_id: str, type_: str | None = None) -> list[dict[str, Any]]:
    response = client.get(f"/v1/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return [e for e in response.json() if type_ is None or e["type"] == type_]


def socket(base_url: str, path: str, key: str | None = None):
    headers = {"X-API-Key": key} if key else None
    return connect(base_url.replace("http://", "ws://") + path, additional_headers=headers, open_timeout=10)


def frames_until(ws, done, timeout: float = 30.0) -> list[dict[str, Any]]:
    """JSON frames received until `done(frame)` is true (that frame included)."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no final frame in time; got {frames}")
        frame = json.loads(ws.recv(timeout=remaining))
        frames.append(frame)
        if done(frame):
            return frames


def close_code(ws, timeout: float = 10.0) -> int | None:
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


class SlowApi(BaseHTTPRequestHandler):
    """GET /slow?ms=N answers after N ms; every request's (path, came, went) is kept in `calls`."""

    calls: list[tuple[str, float, float | None]] = []
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 - the http.server hook
        came = time.monotonic()
        with self.lock:
            index = len(self.calls)
            self.calls.append((self.path, came, None))
        query = parse_qs(urlsplit(self.path).query)
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        body = b'{"ok": true}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the caller went away (a stopped tool call)
            pass
        with self.lock:
            self.calls[index] = (self.path, came, time.monotonic())

    def log_message(self, *args):
        pass
