"""Helpers for flow-engine scenarios: build graphs, create apps, run them, read streams."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
from support.sse import sse_frames


def node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **config}


def chain(*ids: str) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in zip(ids, ids[1:])]


def edge(source: str, target: str, branch: str | None = None) -> dict[str, str]:
    found = {"source": source, "target": target}
    if branch is not None:
        found["branch"] = branch
    return found


def start(*inputs: str, **typed: str) -> dict[str, Any]:
    specs = [{"name": name, "type": "string", "required": True} for name in inputs]
    specs += [{"name": name, "type": kind, "required": True} for name, kind in typed.items()]
    return node("start", "start", inputs=specs)


class Flows:
    """One workspace's view of the flow API."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.client: httpx.Client = workspace.client()

    def create(self, kind: str, nodes: list, edges: list, *, name: str = "flow", **extra) -> dict[str, Any]:
        response = self.client.post("/v1/apps", json={"name": name, "kind": kind,
                                                      "graph": {"nodes": nodes, "edges": edges, **extra}})
        assert response.status_code == 201, response.text
        return response.json()

    def refused(self, kind: str, nodes: list, edges: list) -> str:
        response = self.client.post("/v1/apps", json={"name": "bad", "kind": kind,
                                                      "graph": {"nodes": nodes, "edges": edges}})
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    def run(self, app: dict, inputs: dict, **body) -> dict[str, Any]:
        response = self.client.post("/v1/runs", json={"app_id": app["id"], "inputs": inputs, **body})
        assert response.status_code == 200, response.text
        return response.json()

    def start_background(self, app: dict, inputs: dict) -> str:
        response = self.client.post("/v1/runs", json={"app_id": app["id"], "inputs": inputs, "background": True})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def get(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, run_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/runs/{run_id}/events")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: str, until=lambda run: run["status"] not in ("queued", "running"),
             timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(run_id)
            if until(run) or time.monotonic() > deadline:
                return run
            time.sleep(0.05)

    def stream(self, path: str, body: dict, *, stop_after=None) -> list[dict[str, Any]]:
        """SSE frames as {"event", "id", "data"}; `stop_after(frame)` true closes the connection early."""
        frames = []
        with self.client.stream("POST", path, json=body) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for frame in sse_frames(response.iter_lines()):
                frames.append(frame)
                if stop_after is not None and stop_after(frame):
                    break
        return frames



def node_started(events: list[dict], node_id: str) -> int:
    return sum(1 for e in events if e["type"] == "node_started" and e["data"]["node_id"] == node_id
               and "parent" not in e["data"])


def trace(run: dict, node_id: str) -> dict[str, Any]:
    return next(n for n in run["nodes"] if n["node_id"] == node_id and "parent" not in n)


class FakeApi(BaseHTTPRequestHandler):
    """A tiny JSON API on 127.0.0.1 that records the paths it was asked for."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        FakeApi.hits.append(self.path)
        body = json.dumps({"full_name": "acme/rockets", "stargazers_count": 42, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
