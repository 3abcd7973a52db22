"""Conversation threads: how soon a WebSocket follower hears of a new turn, and what a chatData poll costs."""

from __future__ import annotations

import json
import statistics
import time

import httpx
from websockets.sync.client import connect

from bench.context import Context
from bench.scenarios import ROUTE_MISSING, Skip, scenario

TURNS_FOR_LATENCY = 20
STORED_ITEMS = 1000  # a turn of an agent on the mock stores 3: the message, the reply, the turn's stats


def _settle(client: httpx.Client, path: str, busy: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get(path).json()["status"] == busy:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} still {busy} after {timeout:g}s")
        time.sleep(0.005)


@scenario("threads", "Conversation threads: WebSocket and chatData", order=70)
def threads(ctx: Context) -> None:
    """FlowGen: a chat with a chatbot on the mock (16 tokens, no delay); a WebSocket client
    is attached, then `POST /chats/{id}/messages` is sent and the time to the socket's first
    frame (the user's message) and to its first token frame is taken, over sequential turns.
    Playground: a workflow of an agent on the mock is filled with 1,000 items (message, reply
    and stats per turn); then `GET .../chatData` (everything) and `chatData?afterTimestamp=<last>`
    (a poll with nothing new) are measured against `GET /v1/runs/{id}` (one run's record) as
    the baseline, same load (one client, closed loop), same run."""
    admin = ctx.admin
    if not admin.route_available("GET", "/chats/{id}") or not admin.route_available(
            "GET", "/api/chat/playground/{id}/chatData"):
        raise Skip(ROUTE_MISSING)
    client = admin.client
    headers = ctx.auth_headers(admin.admin_key)
    ws_url = ctx.base_url("headwater").replace("http://", "ws://")

    bot = ctx.chatbot_for(16, 0)
    chat = client.post("/chats", json={"name": "bench", "from_type": "flow", "from_flow": bot["id"]}).json()
    first_frame_ms, first_token_ms = [], []
    turns = TURNS_FOR_LATENCY if not ctx.config.quick else 5
    with connect(f"{ws_url}/chats/{chat['id']}/ws", additional_headers=headers) as ws:
        ws.recv(timeout=10)  # the status on connect
        for _ in range(turns):
            sent = time.perf_counter()
            response = client.post(f"/chats/{chat['id']}/messages", json={"message": "Tell me about rivers."})
            response.raise_for_status()
            first = json.loads(ws.recv(timeout=10))
            first_frame_ms.append((time.perf_counter() - sent) * 1000)
            assert first["type"] == "message", first
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame["type"] == "token" and len(first_token_ms) < len(first_frame_ms):
                    first_token_ms.append((time.perf_counter() - sent) * 1000)
                if frame.get("status") == "completed":
                    break
    ctx.record("POST message -> first WebSocket frame", turns=turns,
               p50_ms=statistics.median(first_frame_ms), max_ms=max(first_frame_ms), all_ms=first_frame_ms)
    ctx.record("POST message -> first token frame", turns=turns,
               p50_ms=statistics.median(first_token_ms), max_ms=max(first_token_ms))

    agent = admin.create_app({"name": "bench-agent", "kind": "agent",
                              "config": {"model": f"mock/{ctx.mock_model(16, 0)}", "mode": "react"}}).json()
    started = time.perf_counter()
    workflow = None
    stored = 0
    while stored < STORED_ITEMS:
        params = {"workflowId": workflow["id"]} if workflow else {"appId": agent["id"], "workflowMode": "React"}
        response = client.post("/api/chat/playground/start", params=params, json={"input": "Tell me about rivers."})
        response.raise_for_status()
        workflow = response.json()
        _settle(client, f"/api/workflows/{workflow['id']}/status", "running")
        stored += 3
    fill_seconds = time.perf_counter() - started
    data = client.get(f"/api/chat/playground/{workflow['id']}/chatData").json()
    items = sum(len(data[k]) for k in ("messages", "logs", "stats", "documents"))
    last = max(item["_createdAt"] for k in ("messages", "stats") for item in data[k])
    run_id = workflow["runId"]
    ctx.note(f"threads: {items} stored items written by {stored // 3} turns in {fill_seconds:.1f} s")
    for label, path in (("GET /v1/runs/{id} (baseline)", f"/v1/runs/{run_id}"),
                        (f"chatData, all {items} items", f"/api/chat/playground/{workflow['id']}/chatData"),
                        ("chatData?afterTimestamp=<last> (nothing new)",
                         f"/api/chat/playground/{workflow['id']}/chatData?afterTimestamp={last!r}")):
        ctx.measure(label, target="headwater", path=path, body="", method="GET", concurrency=1, expect="",
                    headers=headers, stored_items=items)
