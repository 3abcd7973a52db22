"""Every dialect's way of running an app, each given one user message and returning the reply's text.

Used wherever a test must go through every dialect (template syntax is data;
no secret reaches a log line or a span). Streamed calls read the whole stream.
The apps are the tenant's (tenants.MAKERS), so a test may seed its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from tenants import Tenant


def _post(tenant: Tenant, path: str, body: dict, **kwargs) -> httpx.Response:
    with tenant.client() as client:
        response = client.post(path, json=body, **kwargs)
    assert response.status_code in (200, 202), f"{path}: {response.status_code} {response.text}"
    return response


def _stream(tenant: Tenant, path: str, body: dict, **kwargs) -> str:
    """The text of every `data:` line's payload, in order (pings and other fields skipped)."""
    texts = []
    with tenant.client() as client, client.stream("POST", path, json=body, **kwargs) as response:
        assert response.status_code == 200, f"{path}: {response.status_code} {response.read()!r}"
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                texts.append(_text_of(json.loads(line[5:])))
    return "".join(texts)


def _text_of(payload) -> str:
    if not isinstance(payload, dict):
        return ""
    if "choices" in payload:  # an OpenAI chunk
        return "".join((c.get("delta") or {}).get("content") or "" for c in payload["choices"])
    if payload.get("event") == "token":  # Flowise
        return str(payload.get("data", ""))
    if payload.get("type") == "token":  # Waterflai, WAYSCloud
        return str(payload.get("content", ""))
    if "text" in payload and "node_id" in payload:  # native token events
        return str(payload["text"])
    return ""


def _native(kind: str, stream: bool = False) -> Callable[[Tenant, str], str]:
    def call(tenant: Tenant, message: str) -> str:
        app = tenant.value({"chatbot": "chatbot_app", "chatflow": "chatflow_app", "workflow": "workflow_app"}[kind])
        inputs = {"message": message, "query": message} if kind != "workflow" else {"topic": message}
        if stream:
            return _stream(tenant, "/v1/runs", {"app_id": app, "inputs": inputs}, params={"stream": "true"})
        return str(_post(tenant, "/v1/runs", {"app_id": app, "inputs": inputs}).json()["outputs"])

    return call


def _openai(stream: bool):
    def call(tenant: Tenant, message: str) -> str:
        body = {"model": tenant.value("chatbot_app"), "messages": [{"role": "user", "content": message}]}
        if stream:
            return _stream(tenant, "/v1/chat/completions", {**body, "stream": True})
        return _post(tenant, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"]

    return call


def _waterflai(kind: str, stream: bool):
    def call(tenant: Tenant, message: str) -> str:
        app = tenant.value(f"{kind}_app")
        body = {"input_data": {"query": message} if kind == "chatflow" else {"topic": message}}
        if stream:
            return _stream(tenant, f"/execute_{kind}/{app}/stream_execute", body)
        answer = _post(tenant, f"/execute_{kind}/{app}/execute", body).json()
        return answer["choices"][0]["message"]["content"] if kind == "chatflow" else str(answer["outputs"])

    return call


def _wayscloud(kind: str, stream: bool):
    def call(tenant: Tenant, message: str) -> str:
        body = {"bot_id": tenant.value(f"{kind}_app"), "message": message}
        if stream:
            return _stream(tenant, "/v1/chatbot/api/chat/stream", body)
        return _post(tenant, "/v1/chatbot/api/chat", body).json()["response"]

    return call


def _flowise(kind: str, stream: bool):
    def call(tenant: Tenant, message: str) -> str:
        path = f"/api/v1/prediction/{tenant.value(f'{kind}_app')}"
        if stream:
            return _stream(tenant, path, {"question": message, "streaming": True})
        return _post(tenant, path, {"question": message}).json()["text"]

    return call


DIALECT_CALLS: dict[str, Callable[[Tenant, str], str]] = {
    "native chatbot": _native("chatbot"),
    "native chatflow": _native("chatflow"),
    "native workflow": _native("workflow"),
    "native chatbot streamed": _native("chatbot", stream=True),
    "native chatflow streamed": _native("chatflow", stream=True),
    "openai": _openai(stream=False),
    "openai streamed": _openai(stream=True),
    "waterflai chatflow": _waterflai("chatflow", stream=False),
    "waterflai chatflow streamed": _waterflai("chatflow", stream=True),
    "waterflai workflow": _waterflai("workflow", stream=False),
    "waterflai workflow streamed": _waterflai("workflow", stream=True),
    "wayscloud chatbot": _wayscloud("chatbot", stream=False),
    "wayscloud chatbot streamed": _wayscloud("chatbot", stream=True),
    "wayscloud chatflow": _wayscloud("chatflow", stream=False),
    "flowise chatbot": _flowise("chatbot", stream=False),
    "flowise chatbot streamed": _flowise("chatbot", stream=True),
    "flowise chatflow": _flowise("chatflow", stream=False),
}
