"""Plain helpers for the dialect tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json

import httpx
import pytest
import requests
from flowise import Flowise, PredictionData


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


def chatbot_trace(tokens: int) -> list[str]:
    """The event types of a chatbot turn: the run of its implied graph start → llm → answer."""
    return (["run_started", "node_started", "node_finished", "node_started"] + ["token"] * tokens
            + ["node_finished", "node_started", "node_finished", "run_finished"])


def make_public(workspace, app_id: str) -> None:
    with workspace.client() as c:
        response = c.put(f"/v1/apps/{app_id}", json={"is_public": True})
        assert response.status_code == 200 and response.json()["is_public"] is True


def sse_data(response: httpx.Response) -> list[dict]:
    """The JSON payloads of a streamed response's `data:` lines, in order (pings and other fields skipped)."""
    return [json.loads(line.partition(":")[2]) for line in response.iter_lines() if line.startswith("data:")]


def create_chatflow(workspace, *nodes: dict, name: str = "Flow") -> dict:
    """A chatflow app: a start node, then `nodes` ({"id", "type", ...config}) one after another."""
    chain = [{"id": "start", "type": "start"}, *nodes]
    graph = {"nodes": chain, "edges": [{"source": a["id"], "target": b["id"]} for a, b in zip(chain, chain[1:])]}
    with workspace.client() as c:
        response = c.post("/v1/apps", json={"name": name, "kind": "chatflow", "graph": graph})
        assert response.status_code == 201, response.text
        return response.json()


def llm_chatflow(workspace, model: str = "fake/context", name: str = "Flow", **llm) -> dict:
    """start -> llm (the message, with the conversation's memory) -> answer (the llm's text, streamed)."""
    return create_chatflow(
        workspace,
        {"id": "gen", "type": "llm", "model": model, "memory": True, **llm},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
        name=name,
    )


def asking_chatflow(workspace, name: str = "Shop") -> dict:
    """start -> human_input (asks a size) -> answer that uses the message and the answer."""
    return create_chatflow(
        workspace,
        {"id": "ask", "type": "human_input", "prompt": "Which size?"},
        {"id": "out", "type": "answer", "text": "You asked {{ start.query }} in size {{ ask.text }}"},
        name=name,
    )


def run_events(workspace, run_id: str) -> list[dict]:
    with workspace.client() as c:
        response = c.get(f"/v1/runs/{run_id}/events")
        assert response.status_code == 200, response.text
        return response.json()


def app_runs(workspace, app_id: str) -> list[dict]:
    with workspace.client() as c:
        return c.get("/v1/runs", params={"app_id": app_id}).json()


def wayscloud_stream(workspace, key: str, body: dict, timeout: float = 30) -> tuple[int, str, list[dict]]:
    """POST /v1/chatbot/api/chat/stream: (status, content type, the `data:` payloads or the error body)."""
    with workspace.server.client(key) as c, c.stream("POST", "/v1/chatbot/api/chat/stream", json=body,
                                                     timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, response.headers["content-type"], [response.json()]
        return response.status_code, response.headers["content-type"], sse_data(response)


def predict(client: Flowise, app_id: str, question: str, **fields) -> dict:
    """A Flowise prediction through the official SDK."""
    (reply,) = client.create_prediction(PredictionData(chatflowId=app_id, question=question, **fields))
    return reply


def predict_stream(client: Flowise, app_id: str, question: str, **fields) -> list[dict]:
    """A streamed Flowise prediction: the SDK yields the JSON text of each `data:` line."""
    chunks = client.create_prediction(PredictionData(chatflowId=app_id, question=question, streaming=True, **fields))
    return [json.loads(chunk) for chunk in chunks]


def refused(call) -> requests.Response:
    """The error response of an SDK call that must fail (the SDK raises requests' HTTPError)."""
    with pytest.raises(requests.HTTPError) as caught:
        call()
    return caught.value.response
