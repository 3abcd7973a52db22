"""Every dialect's way of running an app, each given one user message.

`DIALECT_REQUESTS` says how each dialect (streamed and not) asks for a run;
`call(name, tenant, message)` sends it and reads the whole answer (a stream to
its end) into a `DialectAnswer`; `DIALECT_CALLS` are the same calls for tests that
only need the reply's text of a successful run. The apps are the tenant's
(tenants.MAKERS), so a test may seed its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from tenants import Tenant


@dataclass(frozen=True)
class DialectRequest:
    app: str  # the tenant's object the request runs
    path: Callable[[str], str]  # the app's id -> the route
    body: Callable[[str, str], dict]  # (app id, message) -> the body
    stream: bool = False
    params: dict = field(default_factory=dict)
    reply: Callable[[dict], str] = lambda body: ""  # the reply's text in a non-streamed answer
    # A failed run is answered 200 with its record (status "failed" and the error), not with an HTTP error.
    fails_in_body: bool = False


@dataclass
class DialectAnswer:
    status: int
    text: str  # the reply's text (a stream: its tokens)
    body: str  # the answer as received
    run_id: str | None
    elapsed: float
    stream_errors: list[dict] = field(default_factory=list)  # a stream's error events
    frames: list = field(default_factory=list)  # a stream's data payloads


def _native(app: str, inputs: Callable[[str], dict], stream: bool = False) -> DialectRequest:
    return DialectRequest(app, lambda _: "/v1/runs", lambda app_id, m: {"app_id": app_id, "inputs": inputs(m)},
                          stream, {"stream": "true"} if stream else {}, lambda b: str((b.get("outputs") or {})),
                          fails_in_body=not stream)


def _chat_message(message: str) -> dict:
    return {"message": message, "query": message}


DIALECT_REQUESTS: dict[str, DialectRequest] = {
    "native chatbot": _native("chatbot_app", _chat_message),
    "native chatflow": _native("chatflow_app", _chat_message),
    "native workflow": _native("workflow_app", lambda m: {"topic": m}),
    "native chatbot streamed": _native("chatbot_app", _chat_message, stream=True),
    "native chatflow streamed": _native("chatflow_app", _chat_message, stream=True),
    "openai": DialectRequest(
        "chatbot_app", lambda _: "/v1/chat/completions",
        lambda app, m: {"model": app, "messages": [{"role": "user", "content": m}]},
        reply=lambda b: b["choices"][0]["message"]["content"]),
    "openai streamed": DialectRequest(
        "chatbot_app", lambda _: "/v1/chat/completions",
        lambda app, m: {"model": app, "stream": True, "messages": [{"role": "user", "content": m}]}, stream=True),
    "waterflai chatflow": DialectRequest(
        "chatflow_app", lambda app: f"/execute_chatflow/{app}/execute", lambda app, m: {"input_data": {"query": m}},
        reply=lambda b: b["choices"][0]["message"]["content"]),
    "waterflai chatflow streamed": DialectRequest(
        "chatflow_app", lambda app: f"/execute_chatflow/{app}/stream_execute",
        lambda app, m: {"input_data": {"query": m}}, stream=True),
    "waterflai workflow": DialectRequest(
        "workflow_app", lambda app: f"/execute_workflow/{app}/execute", lambda app, m: {"input_data": {"topic": m}},
        reply=lambda b: str(b.get("outputs")), fails_in_body=True),
    "waterflai workflow streamed": DialectRequest(
        "workflow_app", lambda app: f"/execute_workflow/{app}/stream_execute",
        lambda app, m: {"input_data": {"topic": m}}, stream=True),
    "wayscloud chatbot": DialectRequest(
        "chatbot_app", lambda _: "/v1/chatbot/api/chat", lambda app, m: {"bot_id": app, "message": m},
        reply=lambda b: b["response"]),
    "wayscloud chatbot streamed": DialectRequest(
        "chatbot_app", lambda _: "/v1/chatbot/api/chat/stream", lambda app, m: {"bot_id": app, "message": m},
        stream=True),
    "wayscloud chatflow": DialectRequest(
        "chatflow_app", lambda _: "/v1/chatbot/api/chat", lambda app, m: {"bot_id": app, "message": m},
        reply=lambda b: b["response"]),
    "flowise chatbot": DialectRequest(
        "chatbot_app", lambda app: f"/api/v1/prediction/{app}", lambda app, m: {"question": m},
        reply=lambda b: b["text"]),
    "flowise chatbot streamed": DialectRequest(
        "chatbot_app", lambda app: f"/api/v1/prediction/{app}", lambda app, m: {"question": m, "streaming": True},
        stream=True),
    "flowise chatflow": DialectRequest(
        "chatflow_app", lambda app: f"/api/v1/prediction/{app}", lambda app, m: {"question": m},
        reply=lambda b: b["text"]),
}


def call(name: str, tenant: Tenant, message: str, timeout: float = 60) -> DialectAnswer:
    spec = DIALECT_REQUESTS[name]
    app = tenant.value(spec.app)
    started = time.monotonic()
    with httpx.Client(base_url=tenant.server.base_url, headers={"X-API-Key": tenant.admin_key},
                      timeout=timeout) as client:
        request = client.build_request("POST", spec.path(app), json=spec.body(app, message), params=spec.params)
        response = client.send(request, stream=True)
        try:
            if spec.stream and response.status_code == 200:
                events = list(_sse_events(response.iter_lines()))
                frames = [payload for _, payload in events]
                body = json.dumps(frames)
                text = "".join(_token_text(name, payload) for name, payload in events)
                errors = [payload for name, payload in events if _is_error(name, payload)]
            else:
                body = response.read().decode()
                frames, errors = [], []
                try:
                    text = spec.reply(json.loads(body)) if response.status_code < 300 else ""
                except (ValueError, KeyError, TypeError):
                    text = ""
        finally:
            response.close()
    return DialectAnswer(response.status_code, text, body, response.headers.get("x-run-id"),
                         time.monotonic() - started, errors, frames)


def _sse_events(lines):
    """(event name or None, JSON payload) of each event with data (pings, `[DONE]` and the like left out)."""
    name, data = None, []
    for line in [*lines, ""]:
        if not line:
            if data:
                raw = "\n".join(data)
                if raw.strip() and raw.strip() != "[DONE]":
                    yield name, json.loads(raw)
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if not line[5:].startswith("{") else line[5:])


def _token_text(name: str | None, payload) -> str:
    if name == "token":  # native events
        return str(payload.get("text", ""))
    if not isinstance(payload, dict) or name is not None:
        return ""
    if "choices" in payload:  # an OpenAI chunk
        return "".join((c.get("delta") or {}).get("content") or "" for c in payload["choices"])
    if payload.get("event") == "token":  # Flowise
        return str(payload.get("data", ""))
    if payload.get("type") == "token":  # Waterflai, WAYSCloud
        return str(payload.get("content", ""))
    return ""


def _is_error(name: str | None, payload) -> bool:
    if name is not None:
        return name == "error"
    if not isinstance(payload, dict):
        return False
    return ("error" in payload and "choices" not in payload) or payload.get("type") == "error" or \
        payload.get("event") == "error"


def _successful(name: str) -> Callable[[Tenant, str], str]:
    def run(tenant: Tenant, message: str) -> str:
        answer = call(name, tenant, message)
        assert answer.status == 200 and not answer.stream_errors, f"{name}: {answer.status} {answer.body[:300]}"
        return answer.text

    return run


def _wait_for_reply(tenant: Tenant, path: str, role_field: str = "role", timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = [m for m in tenant.get(path) if m.get(role_field) == "assistant"]
        if replies:
            return replies[-1]["content"]
        time.sleep(0.05)
    raise AssertionError(f"no reply at {path}")


def _flowgen(kind: str) -> Callable[[Tenant, str], str]:
    """FlowGen chats: the message is taken at once (202), the reply comes in the chat's messages."""
    def run(tenant: Tenant, message: str) -> str:
        chat = tenant.post("/chats", {"name": "chat", "from_type": "flow", "from_flow": tenant.value(kind)}).json()
        tenant.post(f"/chats/{chat['id']}/messages", {"message": message})
        return _wait_for_reply(tenant, f"/chats/{chat['id']}/messages")

    return run


def _mcp(kind: str) -> Callable[[Tenant, str], str]:
    """The app as an MCP tool, called with the official SDK over /mcp."""
    def run(tenant: Tenant, message: str) -> str:
        import asyncio

        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async def call_tool() -> str:
            async with httpx2.AsyncClient(headers={"X-API-Key": tenant.admin_key}, timeout=30) as http:
                transport = streamable_http_client(f"{tenant.server.base_url}/mcp", http_client=http)
                async with Client(transport, cache=None) as client:
                    result = await client.call_tool(tenant.obj(kind)["slug"], {"message": message})
            assert not result.is_error, result
            return result.content[0].text

        return asyncio.run(call_tool())

    return run


def playground(tenant: Tenant, message: str) -> str:
    """A playground workflow with the tenant's agent app; whatever the agent makes of it (for the secrets test)."""
    started = tenant.post("/api/chat/playground/start", {"input": message},
                          params={"appId": tenant.value("agent_app"), "workflowMode": "React"}).json()
    deadline = time.monotonic() + 30
    while tenant.get(f"/api/workflows/{started['id']}/status")["status"] == "running":
        assert time.monotonic() < deadline, "the playground workflow did not settle"
        time.sleep(0.05)
    return json.dumps(tenant.get(f"/api/workflows/{started['id']}/messages"))


DIALECT_CALLS: dict[str, Callable[[Tenant, str], str]] = {
    **{name: _successful(name) for name in DIALECT_REQUESTS},
    "flowgen chatbot": _flowgen("chatbot_app"),
    "flowgen chatflow": _flowgen("chatflow_app"),
    "mcp chatbot": _mcp("chatbot_app"),
    "mcp chatflow": _mcp("chatflow_app"),
}
