"""Every route but the deliberately public ones refuses a caller who may not use it.

Auth is a per-route dependency, so the inventory comes from the server's own
route table (route_table.py: HTTP and WebSocket routes, mounts, routes the
OpenAPI schema leaves out): a route added later without auth fails here.
Without credentials, with a revoked key, with a wrong password, under every
spelling of its path and with every "trust me" header: 401. With a key of the
wrong scope: 403. WebSocket routes refuse the handshake or close with 4401/4403.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from route_table import PUBLIC, RawClient, detail_of, path_variants, socket_outcome, report
from tenants import unfillable

SPOOFED = {
    "x-request-from": "internal",
    "X-Forwarded-For": "127.0.0.1",
    "X-Real-IP": "127.0.0.1",
    "X-Forwarded-Host": "localhost",
    "X-Forwarded-User": "admin",
    "X-Remote-User": "admin",
    "X-Original-URL": "/healthz",
    "X-Rewrite-URL": "/healthz",
    "Forwarded": "for=127.0.0.1;host=localhost",
    "X-Internal": "true",
    "X-Workspace-Id": "default",
}
# Without credentials a spelling either reaches the route (401), no route (404, 405),
# is refused as malformed (400), or is redirected to the canonical path (followed: 401).
VARIANT_ANSWERS = {400, 401, 404, 405, 307, 308}
# Which key lacks a scope a route needs: chatbot-only and knowledge-only keys of the same workspace.
LACKING = {"admin": [("chatbot",), ("knowledge",)], "chatbot": [("knowledge",)],
           "knowledge": [("chatbot",)], "instance_admin": [("admin",)]}


def _random_path(route) -> str:
    return route.fill({name: str(uuid.uuid4()) for name in route.params})


def _private(routes):
    return [r for r in routes if not r.is_public]


def test_the_route_table_is_whole_and_every_private_route_declares_its_auth(routes):
    assert len(routes) >= 50, [str(r) for r in routes]  # the inventory itself must not come back empty
    assert {("POST", "/v1/chat/completions"), ("GET", "/metrics")} <= {r.key for r in routes}
    problems = []
    for route in _private(routes):
        if route.required_scope is None and not route.is_mount:
            problems.append(f"{route}: no auth dependency (and not in route_table.PUBLIC or INLINE_SCOPES)")
        if missing := unfillable(route):
            problems.append(f"{route}: no object for {missing}: add them to tenants.OBJECT_PARAMS")
    assert problems == []
    assert set(PUBLIC) & {r.key for r in routes}, "the public allowlist matches no route"


def test_every_private_route_refuses_a_caller_without_credentials(server, routes):
    failures = []
    raw = RawClient(server.port)
    try:
        for route in _private(routes):
            path = _random_path(route)
            if route.is_websocket:
                for headers in ({}, SPOOFED):
                    outcome = socket_outcome(server.port, path, headers, first_frame={"type": "hello"})
                    if outcome.refused_as != 401:
                        failures.append((str(route), "websocket", str(outcome)))
                continue
            for headers in ({}, SPOOFED):
                status, answer_headers, body = raw.request(route.method, path, headers)
                if status != 401:
                    failures.append((str(route), "spoofed" if headers else "bare", status, detail_of(body)))
                elif "www-authenticate" not in answer_headers or "Traceback" in body.decode("utf-8", "replace"):
                    failures.append((str(route), "401 without WWW-Authenticate or with a trace"))
    finally:
        raw.close()
    assert not failures, report(failures)


def test_no_spelling_of_a_private_path_gets_past_auth(server, routes):
    failures = []
    raw = RawClient(server.port)
    try:
        for route in _private(routes):
            if route.is_websocket:
                continue
            for variant in path_variants(_random_path(route)):
                status, headers, body = raw.request(route.method, variant)
                if status not in VARIANT_ANSWERS:
                    failures.append((str(route), variant, status, detail_of(body)))
                elif status in (307, 308):  # a redirect must not lead past auth either
                    target, _, _ = raw.request(route.method, headers["location"].removeprefix(server.base_url))
                    if target not in (401, 404, 405):
                        failures.append((str(route), variant, "redirected", target))
    finally:
        raw.close()
    assert not failures, report(failures)


def test_revoked_keys_and_wrong_passwords_are_401_everywhere(server, routes, tenant_a):
    revoked = tenant_a.revoked_key()
    wrong_password = base64.b64encode(b"admin:not-the-password").decode()
    credentials = [
        {"X-API-Key": revoked}, {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Basic {wrong_password}"}, {"X-API-Key": "hw_" + "x" * 43},
    ]
    failures = []
    raw = RawClient(server.port)
    try:
        for route in _private(routes):
            path = _random_path(route)
            for headers in credentials:
                if route.is_websocket:
                    outcome = socket_outcome(server.port, path, headers)
                    if outcome.refused_as != 401:
                        failures.append((str(route), list(headers), str(outcome)))
                    continue
                status, _, body = raw.request(route.method, path, headers)
                if status != 401:
                    failures.append((str(route), list(headers), status, detail_of(body)))
        for route in routes:
            if route.is_websocket and not route.is_public:  # a revoked key in the browser's auth frame
                outcome = socket_outcome(server.port, _random_path(route), first_frame={"type": "auth", "api_key": revoked})
                if outcome.refused_as != 401:
                    failures.append((str(route), "auth frame", str(outcome)))
    finally:
        raw.close()
    assert not failures, report(failures)


@pytest.mark.parametrize("spoofed", [False, True], ids=["plain", "spoofed-headers"])
def test_a_key_of_the_wrong_scope_is_403_on_its_own_objects(server, routes, tenant_a, spoofed):
    """With real objects of the key's own workspace: a missing scope check would answer 2xx, not 404."""
    failures = []
    checked = 0
    raw = RawClient(server.port)
    try:
        for route in _private(routes):
            for scopes in LACKING.get(route.required_scope or "", []):
                key = tenant_a.key(*scopes)
                headers = {"X-API-Key": key, **(SPOOFED if spoofed else {})}
                path = route.fill(tenant_a.path_values(route))
                checked += 1
                if route.is_websocket:
                    outcome = socket_outcome(server.port, path, headers)
                    if outcome.refused_as != 403:
                        failures.append((str(route), scopes, str(outcome)))
                    continue
                status, _, body = raw.request(route.method, path, headers)
                if status != 403:
                    failures.append((str(route), scopes, status, detail_of(body)))
    finally:
        raw.close()
    assert checked >= 30
    assert not failures, report(failures)
