"""Objects of one workspace for the security tests, made on first use, and the registry naming them.

A route's path parameters (and the query and body fields that name objects) are
filled from `OBJECT_PARAMS`: (path pattern, parameter name) → which object of
the workspace. A route with a parameter that no entry fills makes the tests
fail, naming it: a new route needs one line here, not a new test.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from route_table import RouteInfo

# (path regex, parameter name, object); the first entry whose regex matches the path wins.
OBJECT_PARAMS: list[tuple[str, str, str]] = [
    (r"^/execute_chatflow/", "app_id", "chatflow_app"),
    (r"^/execute_workflow/|^/v1/executions/\{app_id\}", "app_id", "workflow_app"),
    (r"^/api/chat/playground/", "appId", "agent_app"),
    (r"", "app_id", "chatbot_app"),
    (r"", "workspace_id", "workspace"),
    (r"", "key_id", "api_key"),
    (r"", "provider_id", "provider"),
    (r"", "session_id", "session"),
    (r"", "sessionId", "session"),
    (r"", "chatId", "session"),
    (r"", "run_id", "run"),
    (r"", "execution_id", "execution"),
    (r"", "kb_id", "knowledge_base"),
    (r"", "document_id", "document"),
    (r"", "chat_id", "chat"),
    (r"", "workflow_id", "thread"),
    (r"", "workflowId", "thread"),
    (r"^/api/workflows/", "message_id", "thread_message"),
    (r"^/api/workflows/", "messageId", "thread_message"),
    (r"", "file_id", "thread_file"),
    (r"^/v1/mcp-servers/", "id", "mcp_server"),
    (r"", "server_id", "mcp_server"),
]
# Body fields that name an object the request acts on (the rest of a body is data).
BODY_REFS: list[tuple[str, str, str]] = [
    (r"^/v1/runs$", "app_id", "any_app"),
    (r"^/v1/chat/completions$", "model", "chatbot_app"),
    (r"^/v1/chatbot/api/chat", "bot_id", "chatbot_app"),
    (r"^/chats$", "from_flow", "chatbot_app"),
]
# Objects that also have a slug, accepted wherever their id is.
SLUGGED = {"chatbot_app", "chatflow_app", "workflow_app", "agent_app", "any_app", "knowledge_base"}


def sqlite_only(test):
    """Backend-independent checks (HTTP handling, middleware) run on the SQLite server alone."""
    import pytest

    return pytest.mark.parametrize("server", ["sqlite"], indirect=True)(test)


def object_for(path: str, name: str, table: list[tuple[str, str, str]] = OBJECT_PARAMS) -> str | None:
    for pattern, param, kind in table:
        if param == name and re.search(pattern, path):
            return kind
    return None


def unfillable(route: RouteInfo) -> list[str]:
    return [name for name in route.params if object_for(route.path, name) is None]


WORKFLOW_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "topic", "required": True}]},
        {"id": "gen", "type": "llm", "model": "fake/echo", "prompt": "about {{ start.topic }}"},
        {"id": "end", "type": "end", "outputs": {"text": "{{ gen.text }}"}},
    ],
    "edges": [{"source": "start", "target": "gen"}, {"source": "gen", "target": "end"}],
}
CHATFLOW_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "query", "required": True}]},
        {"id": "gen", "type": "llm", "model": "fake/echo", "prompt": "{{ start.query }}", "memory": True},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
    ],
    "edges": [{"source": "start", "target": "gen"}, {"source": "gen", "target": "out"}],
}


@dataclass
class Tenant:
    """A workspace on the test server with one object of every kind, each made the first time it is asked for."""

    server: Any
    id: str
    admin_key: str
    label: str
    _objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, server, label: str) -> "Tenant":
        workspace = server.new_workspace(label)
        return cls(server, workspace.id, workspace.admin_key, label)

    def client(self, key: str | None = None) -> httpx.Client:
        return self.server.client(key or self.admin_key)

    def key(self, *scopes: str) -> str:
        """A key with exactly these scopes (made once per set)."""
        name = "+".join(sorted(scopes))
        if name not in self._keys:
            with self.client() as c:
                response = c.post("/v1/api-keys", json={"name": f"{self.label}-{name}", "scopes": list(scopes)})
                assert response.status_code == 201, response.text
                self._keys[name] = response.json()["key"]
        return self._keys[name]

    def revoked_key(self) -> str:
        if "revoked" not in self._keys:
            with self.client() as c:
                created = c.post("/v1/api-keys", json={"name": f"{self.label}-revoked", "scopes": ["admin"]}).json()
                assert c.delete(f"/v1/api-keys/{created['id']}").status_code == 204
            self._keys["revoked"] = created["key"]
        return self._keys["revoked"]

    # -- objects -----------------------------------------------------------------------------

    def obj(self, kind: str) -> dict[str, Any]:
        """{"id": ..., "slug"?: ...} of this workspace's object of `kind`."""
        if kind not in self._objects:
            maker = MAKERS.get(kind)
            if maker is None:
                raise AssertionError(f"no maker for objects of kind {kind!r}: add one to tenants.MAKERS")
            self._objects[kind] = maker(self)
        return self._objects[kind]

    def value(self, kind: str, slug: bool = False) -> str:
        found = self.obj(kind)
        return found["slug"] if slug else found["id"]

    def made(self) -> dict[str, dict[str, Any]]:
        return dict(self._objects)

    def ids(self) -> set[str]:
        """Every id this workspace's objects have (UUIDs: unique to it), its own id included."""
        found = {self.id}
        for value in self._objects.values():
            found |= {v for k, v in value.items() if k.endswith("id") and isinstance(v, str) and len(v) >= 32}
        return found

    def path_values(self, route: RouteInfo, slug: bool = False) -> dict[str, str]:
        values = {}
        for name in route.params:
            kind = object_for(route.path, name)
            if kind is None and route.is_public:  # a public route names no workspace object
                values[name] = "x"
                continue
            assert kind is not None, f"{route}: no object for {{{name}}}"
            values[name] = self.value(kind, slug and kind in SLUGGED)
        return values

    # -- helpers for makers ------------------------------------------------------------------

    def post(self, path: str, body: dict | None = None, expect: int | tuple[int, ...] = (200, 201, 202),
             **kwargs) -> httpx.Response:
        with self.client() as c:
            response = c.post(path, json=body, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{self.label}: POST {path}: {response.status_code} {response.text}"
        return response

    def get(self, path: str, **kwargs) -> Any:
        with self.client() as c:
            response = c.get(path, **kwargs)
        assert response.status_code == 200, f"{self.label}: GET {path}: {response.status_code} {response.text}"
        return response.json()

    def wait_run(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/v1/runs/{run_id}")
            if run["status"] not in ("queued", "running") or time.monotonic() > deadline:
                return run
            time.sleep(0.05)


def _app(kind: str, **fields) -> Callable[[Tenant], dict[str, Any]]:
    def make(tenant: Tenant) -> dict[str, Any]:
        body = {"name": f"{tenant.label} {kind}", "slug": f"{tenant.label}-{kind}-{uuid.uuid4().hex[:6]}",
                "kind": kind, **fields}
        app = tenant.post("/v1/apps", body).json()
        return {"id": app["id"], "slug": app["slug"], "app_id": app["id"]}

    return make


def _session(tenant: Tenant) -> dict[str, Any]:
    app = tenant.obj("chatbot_app")
    run = tenant.post("/v1/runs", {"app_id": app["id"], "inputs": {"message": f"hello from {tenant.label}"}}).json()
    return {"id": run["session_id"], "run_id": run["id"]}


def _run(tenant: Tenant) -> dict[str, Any]:
    session = tenant.obj("session")
    return {"id": session["run_id"], "session_id": session["id"]}


def _execution(tenant: Tenant) -> dict[str, Any]:
    app = tenant.obj("workflow_app")
    started = tenant.post(f"/v1/executions/{app['id']}/async", {"input_data": {"topic": "rivers"}}).json()
    tenant.wait_run(started["execution_id"])
    return {"id": started["execution_id"]}


def _knowledge_base(tenant: Tenant) -> dict[str, Any]:
    kb = tenant.post("/v1/knowledge-bases", {"name": f"{tenant.label} handbook",
                                             "slug": f"{tenant.label}-kb-{uuid.uuid4().hex[:6]}"}).json()
    return {"id": kb["id"], "slug": kb["slug"]}


def _document(tenant: Tenant) -> dict[str, Any]:
    kb = tenant.obj("knowledge_base")
    created = tenant.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                          {"text": f"The secret word of {tenant.label} is heron.", "title": "words"}).json()
    document_id = created["documents"][0]["id"]
    deadline = time.monotonic() + 30
    while tenant.get(f"/v1/knowledge-bases/{kb['id']}/documents/{document_id}")["status"] not in ("ready", "error"):
        assert time.monotonic() < deadline, "document was not indexed in time"
        time.sleep(0.05)
    return {"id": document_id, "kb_id": kb["id"]}


def _provider(tenant: Tenant) -> dict[str, Any]:
    provider = tenant.post("/v1/providers", {"name": f"p{uuid.uuid4().hex[:8]}", "type": "openai",
                                             "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-not-used"}).json()
    return {"id": provider["id"]}


def _api_key(tenant: Tenant) -> dict[str, Any]:
    created = tenant.post("/v1/api-keys", {"name": f"{tenant.label} listed", "scopes": ["chatbot"]}).json()
    return {"id": created["id"]}


def _workspace(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id}


def _chat(tenant: Tenant) -> dict[str, Any]:
    app = tenant.obj("chatbot_app")
    chat = tenant.post("/chats", {"name": f"{tenant.label} chat", "from_type": "flow", "from_flow": app["id"]}).json()
    return {"id": chat["id"]}


def _thread(tenant: Tenant) -> dict[str, Any]:
    app = tenant.obj("agent_app")
    files = [{"name": "note.txt", "type": "file", "data": "data:text/plain;base64,aGVsbG8="}]
    started = tenant.post("/api/chat/playground/start", {"input": "hello", "files": files},
                          params={"appId": app["id"], "workflowMode": "React"}).json()
    deadline = time.monotonic() + 30
    while tenant.get(f"/api/workflows/{started['id']}/status")["status"] == "running":
        assert time.monotonic() < deadline, "the playground workflow did not settle"
        time.sleep(0.1)
    return {"id": started["id"]}


def _thread_message(tenant: Tenant) -> dict[str, Any]:
    thread = tenant.obj("thread")
    messages = tenant.get(f"/api/workflows/{thread['id']}/messages")
    assert messages, "the playground workflow has no message"
    return {"id": messages[0]["id"], "files": messages[0].get("files") or []}


def _thread_file(tenant: Tenant) -> dict[str, Any]:
    files = tenant.obj("thread_message")["files"]
    assert files, "the playground message has no file"
    return {"id": files[0].get("id") or files[0].get("fileId")}


def _mcp_server(tenant: Tenant) -> dict[str, Any]:
    # A public address literal: registering checks the address (no DNS here), it does not connect.
    server = tenant.post("/v1/mcp-servers", {"name": f"m{uuid.uuid4().hex[:8]}",
                                             "url": "https://1.1.1.1/mcp"}).json()
    return {"id": server["id"]}


MAKERS: dict[str, Callable[[Tenant], dict[str, Any]]] = {
    "workspace": _workspace,
    "api_key": _api_key,
    "provider": _provider,
    # Public: a key of another workspace must still not reach it.
    "chatbot_app": _app("chatbot", config={"model": "fake/echo"}, is_public=True),
    "chatflow_app": _app("chatflow", graph=CHATFLOW_GRAPH),
    "workflow_app": _app("workflow", graph=WORKFLOW_GRAPH),
    "agent_app": _app("agent", config={"mode": "react", "model": "fake/echo"}),
    "any_app": lambda tenant: tenant.obj("chatflow_app"),
    "session": _session,
    "run": _run,
    "execution": _execution,
    "knowledge_base": _knowledge_base,
    "document": _document,
    "chat": _chat,
    "thread": _thread,
    "thread_message": _thread_message,
    "thread_file": _thread_file,
    "mcp_server": _mcp_server,
}
