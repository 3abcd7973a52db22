"""Workspace isolation, generated from the route table: another workspace's objects are 404 everywhere.

Cells of the matrix: every private route that names an object (in its path, its
query or its body, see tenants.OBJECT_PARAMS and BODY_REFS) × every verb × each
way of naming workspace B's object (its id, its slug, alone among workspace A's
objects) × two callers of workspace A (its admin key, and the instance admin
acting in its own workspace). Each cell must be 404 (a WebSocket: refused or
closed 4404). The same request by B on its own objects must not be 404, which
proves each cell names a real object. No answer to A ever carries an id of B's.
Bodies naming `workspace_id`, `owner_id` or `role` are refused (422).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from bodies import body_schema, example_body
from route_table import count, socket_outcome, report
from tenants import BODY_REFS, SLUGGED, Tenant, object_for

OWNERSHIP_FIELDS = ("workspace_id", "owner_id", "role")
# Workspace management is the instance admin's, across workspaces by design: a workspace admin gets 403.
INSTANCE_ADMIN_ONLY = "instance_admin"
# 502-504 say an upstream (a provider at an address that answers nothing) failed: not the server's fault.
SERVER_FAULTS = {500, 501, 505}


def _callers(server, tenant_a: Tenant) -> list[tuple[str, dict[str, str]]]:
    basic = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    return [("workspace A's admin key", {"X-API-Key": tenant_a.admin_key}),
            ("the instance admin", {"Authorization": f"Basic {basic}"})]


def _body_with_refs(route, tenant: Tenant, slug: bool = False) -> Any:
    body = example_body(route) if route.takes_body else None
    if isinstance(body, dict):
        for _, name, _ in BODY_REFS:
            kind = object_for(route.path, name, BODY_REFS)
            if kind is not None:
                body[name] = tenant.value(kind, slug and kind in SLUGGED)
    return body


def _query_refs(route) -> list[tuple[str, str]]:
    return [(name, kind) for name in route.query_params if (kind := object_for(route.path, name))]


def _send(client: httpx.Client, method: str, path: str, body: Any, params: dict | None = None) -> httpx.Response:
    # Streams are read to their end: a stream of another workspace's run must not even start.
    with client.stream(method, path, json=body, params=params) as response:
        response.read()
        return response


def _cells(route, tenant_a: Tenant, tenant_b: Tenant):
    """(what is foreign, path, body, query) for every way this route can name one of B's objects."""
    params = route.params
    a_values = tenant_a.path_values(route)
    body_a = _body_with_refs(route, tenant_a)
    if params:
        yield "B's ids", route.fill(tenant_b.path_values(route)), body_a, None
        if any(object_for(route.path, p) in SLUGGED for p in params):
            yield "B's slugs", route.fill(tenant_b.path_values(route, slug=True)), body_a, None
        if len(params) > 1:
            b_values = tenant_b.path_values(route)
            for name in params:
                yield f"B's {name} among A's", route.fill({**a_values, name: b_values[name]}), body_a, None
    if isinstance(body_a, dict) and any(object_for(route.path, f, BODY_REFS) for _, f, _ in BODY_REFS):
        yield "B's object in the body", route.fill(a_values), _body_with_refs(route, tenant_b), None
        yield "B's slug in the body", route.fill(a_values), _body_with_refs(route, tenant_b, slug=True), None
    for name, kind in _query_refs(route):
        yield f"B's {name} in the query", route.fill(a_values), body_a, {name: tenant_b.value(kind)}


def test_workspace_a_gets_404_for_every_object_of_workspace_b(server, routes, tenant_a, tenant_b):
    failures: list[tuple] = []
    cells = controls = 0
    private = [r for r in routes if not r.is_public and not r.is_mount]
    # Deleting routes go last, so a cell that wrongly succeeded cannot hide the others.
    ordered = sorted(private, key=lambda r: (r.method == "DELETE", r.path))
    for route in ordered:
        for label, path, body, query in _cells(route, tenant_a, tenant_b):
            for caller, headers in _callers(server, tenant_a):
                instance_only = route.required_scope == INSTANCE_ADMIN_ONLY
                if instance_only and caller == "the instance admin":
                    continue
                expected = 403 if instance_only else 404
                cells += 1
                if route.is_websocket:
                    outcome = socket_outcome(server.port, path, headers, wait=1.0)
                    if outcome.refused_as != expected:
                        failures.append((str(route), label, caller, str(outcome)))
                    continue
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
                    response = _send(client, route.method, path, body, query)
                status, text = response.status_code, response.text
                if query is not None and status < 300:
                    if any(found in text for found in tenant_b.ids()):
                        failures.append((str(route), label, caller, status, "answer names B's objects"))
                elif status != expected:
                    failures.append((str(route), label, caller, status, text[:200]))
        if route.method != "DELETE" and not route.required_scope == INSTANCE_ADMIN_ONLY and (
                route.params or _query_refs(route) or body_schema(route)):
            controls += 1
            failures += _control(server, route, tenant_b)
    count("isolation matrix cells", cells)
    count("isolation controls (B on its own objects)", controls)
    assert cells >= 60
    assert not failures, report(failures)
    failures = _b_is_intact(tenant_b)
    assert not failures, report(failures)


def _control(server, route, tenant_b: Tenant) -> list[tuple]:
    """B's own request on B's objects is not 404: the cells above named real objects."""
    path = route.fill(tenant_b.path_values(route))
    if route.is_websocket:
        outcome = socket_outcome(server.port, path, {"X-API-Key": tenant_b.admin_key}, wait=0.5)
        return [] if outcome.refused_as is None else [(str(route), "control", str(outcome))]
    query = {name: tenant_b.value(kind) for name, kind in _query_refs(route)} or None
    with tenant_b.client() as client:
        response = _send(client, route.method, path, _body_with_refs(route, tenant_b), query)
    if response.status_code == 404 or response.status_code in SERVER_FAULTS:
        return [(str(route), "control by B", response.status_code, response.text[:200])]
    return []


def _b_is_intact(tenant_b: Tenant) -> list[str]:
    """Every object of B made for the matrix is still there for B."""
    reads = {
        "chatbot_app": "/v1/apps/{id}", "chatflow_app": "/v1/apps/{id}", "workflow_app": "/v1/apps/{id}",
        "agent_app": "/v1/apps/{id}", "knowledge_base": "/v1/knowledge-bases/{id}", "provider": "/v1/providers/{id}",
        "session": "/v1/sessions/{id}/messages", "run": "/v1/runs/{id}", "execution": "/v1/executions/{id}",
        "chat": "/chats/{id}", "thread": "/api/workflows/{id}",
    }
    missing = []
    with tenant_b.client() as client:
        for kind, found in tenant_b.made().items():
            if kind in reads and client.get(reads[kind].format(id=found["id"])).status_code != 200:
                missing.append(kind)
        document = tenant_b.made().get("document")
        if document and client.get(f"/v1/knowledge-bases/{document['kb_id']}/documents/{document['id']}").status_code != 200:
            missing.append("document")
        key = tenant_b.made().get("api_key")
        if key and key["id"] not in {k["id"] for k in client.get("/v1/api-keys").json()}:
            missing.append("api_key")
    return missing


def test_no_answer_to_workspace_a_names_an_object_of_workspace_b(server, routes, tenant_a, tenant_b):
    """Every GET route, called by A on A's own objects, never shows B's ids (lists, traces, streams)."""
    for kind in ("chatbot_app", "chatflow_app", "workflow_app", "session", "execution", "document", "provider"):
        tenant_b.obj(kind)  # B has something of every kind a list could leak
    failures, checked = [], 0
    with httpx.Client(base_url=server.base_url, headers={"X-API-Key": tenant_a.admin_key}, timeout=30) as client:
        for route in routes:
            if route.method != "GET" or route.is_public or route.is_websocket or route.is_mount:
                continue
            if route.required_scope == INSTANCE_ADMIN_ONLY:
                continue
            checked += 1
            response = _send(client, "GET", route.fill(tenant_a.path_values(route)), None)
            leaked = [found for found in tenant_b.ids() if found in response.text]
            if response.status_code in SERVER_FAULTS or leaked:
                failures.append((str(route), response.status_code, leaked))
    count("GET routes checked for leaks", checked)
    assert checked >= 20
    assert not failures, report(failures)


def test_bodies_that_claim_ownership_are_refused(server, routes, tenant_a, tenant_b):
    """A body may not name a workspace, an owner or a role: 422, and nothing is written."""
    failures, checked = [], 0
    for route in routes:
        if route.is_public or route.is_websocket or not route.takes_body:
            continue
        body = _body_with_refs(route, tenant_a)
        if not isinstance(body, dict):
            continue
        path = route.fill(tenant_a.path_values(route))
        key = server.admin_key if route.required_scope == INSTANCE_ADMIN_ONLY else tenant_a.admin_key
        for name in OWNERSHIP_FIELDS:
            checked += 1
            value = {"workspace_id": tenant_b.id, "owner_id": tenant_b.id, "role": "admin"}[name]
            with server.client(key) as client:
                response = _send(client, route.method, path, {**body, name: value})
            if response.status_code != 422:
                failures.append((str(route), name, response.status_code, response.text[:160]))
    count("ownership-claiming bodies", checked)
    assert checked >= 30
    assert not failures, report(failures)



def test_mcp_shows_and_runs_only_the_callers_apps(server, routes, tenant_a, tenant_b):
    """Over /mcp (when the server has it), another workspace's apps are neither listed nor callable."""
    if not any(route.path == "/mcp" for route in routes):
        return
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    theirs = [tenant_b.obj(kind)["slug"] for kind in ("chatbot_app", "chatflow_app", "workflow_app")]
    mine = tenant_a.obj("chatbot_app")["slug"]

    async def as_a():
        async with httpx2.AsyncClient(headers={"X-API-Key": tenant_a.admin_key}, timeout=30) as http:
            async with Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http), cache=None) as client:
                listed = [tool.name for tool in (await client.list_tools()).tools]
                calls = [await client.call_tool(slug, {"message": "hello"}) for slug in theirs]
        return listed, calls

    listed, calls = asyncio.run(as_a())
    count("isolation matrix cells", len(theirs) * 2)
    assert mine in listed and not set(theirs) & set(listed)
    assert all(call.is_error for call in calls)
    assert not any(found in str(call.content) for call in calls for found in tenant_b.ids())
