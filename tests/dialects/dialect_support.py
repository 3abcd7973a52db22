"""Plain helpers for the dialect tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json

import httpx


def session_messages(workspace, session_id: str) -> list[tuple[str, str]]:
    with workspace.client() as c:
        response = c.get(f"/v1/sessions/{session_id}/messages")
        assert response.status_code == 200, response.text
        return [(m["role"], m["content"]) for m in response.json()]


def latest_run(workspace, app_id: str) -> tuple[dict, list[str]]:
    """The app's most recent run and the types of its recorded events."""
    with workspace.client() as c:
        run = c.get("/v1/runs", params={"app_id": app_id}).json()[0]
        events = c.get(f"/v1/runs/{run['id']}/events").json()
    return run, [e["type"] for e in events]


def make_public(workspace, app_id: str) -> None:
    with workspace.client() as c:
        response = c.put(f"/v1/apps/{app_id}", json={"is_public": True})
        assert response.status_code == 200 and response.json()["is_public"] is True


def sse_data(response: httpx.Response) -> list[dict]:
    """The JSON payloads of a streamed response's `data:` lines, in order (pings and other fields skipped)."""
    return [json.loads(line.partition(":")[2]) for line in response.iter_lines() if line.startswith("data:")]
