"""API keys: shown once, stored hashed, scoped, revocable at once; every credential form."""

from __future__ import annotations

import base64

from support.server import dump_database


def test_key_is_shown_once_and_never_listed(workspace):
    with workspace.client() as c:
        created = c.post("/v1/api-keys", json={"name": "ci", "scopes": ["chatbot"]})
        assert created.status_code == 201
        body = created.json()
        key = body["key"]
        assert key.startswith("hw_") and len(key) > 40
        assert body["prefix"] == key[:10]
        listing = c.get("/v1/api-keys").json()
    assert key not in str(listing)
    listed = next(item for item in listing if item["id"] == body["id"])
    assert set(listed) >= {"id", "name", "prefix", "scopes", "created_at", "last_used_at"}
    assert "key" not in listed


def test_database_holds_no_plaintext_key(workspace, server):
    key = workspace.create_key("secret-check")
    with workspace.client(key) as c:
        assert c.get("/v1/apps").status_code == 200
    dumped = dump_database(server.resolved_database_url)
    assert key not in dumped
    assert workspace.admin_key not in dumped
    assert key[10:30] not in dumped


def test_revoked_key_is_refused_at_once(workspace):
    key = workspace.create_key("short-lived")
    with workspace.client(key) as c:
        assert c.get("/v1/apps").status_code == 200
    with workspace.client() as admin:
        key_id = next(k["id"] for k in admin.get("/v1/api-keys").json() if k["name"] == "short-lived")
        assert admin.delete(f"/v1/api-keys/{key_id}").status_code == 204
        assert admin.delete(f"/v1/api-keys/{key_id}").status_code == 404
    with workspace.client(key) as c:
        response = c.get("/v1/apps")
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked credentials"}


def test_missing_and_wrong_credentials_are_401(server):
    with server.client() as anonymous:
        response = anonymous.get("/v1/apps")
        assert response.status_code == 401
        assert "detail" in response.json()
    with server.client("hw_not_a_real_key") as wrong:
        assert wrong.get("/v1/apps").status_code == 401


def test_every_header_form_is_accepted(workspace, server):
    key = workspace.create_key("forms")
    for headers in ({"X-API-Key": key}, {"X-API-KEY": key}, {"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        with server.client(**headers) as c:
            assert c.get("/v1/apps").status_code == 200, headers


def test_basic_auth_for_the_admin_user(server):
    good = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    bad = base64.b64encode(b"admin:wrong").decode()
    with server.client(Authorization=f"Basic {good}") as c:
        assert c.get("/v1/workspaces").status_code == 200
    with server.client(Authorization=f"Basic {bad}") as c:
        assert c.get("/v1/workspaces").status_code == 401


def test_scopes_limit_what_a_key_may_do(workspace):
    chatbot_key = workspace.create_key("bot", ["chatbot"])
    knowledge_key = workspace.create_key("kb", ["knowledge"])
    app = workspace.create_chatbot()
    with workspace.client(chatbot_key) as c:
        assert c.post("/v1/api-keys", json={"name": "x"}).status_code == 403
        assert c.post("/v1/apps", json={"name": "x", "kind": "chatbot"}).status_code == 403
        ok = c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200
    with workspace.client(knowledge_key) as c:
        denied = c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": "hi"}]})
        assert denied.status_code == 403
        assert "chatbot" in denied.json()["detail"]


def test_only_the_instance_admin_manages_workspaces(workspace):
    with workspace.client() as c:  # a workspace admin, not the instance admin
        assert c.post("/v1/workspaces", json={"name": "nope"}).status_code == 403
        assert c.get("/v1/workspaces").status_code == 403


def test_rate_limit_per_key(workspace):
    key = workspace.create_key("limited", rate_limit=3)
    with workspace.client(key) as c:
        responses = [c.get("/v1/apps") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "3"
    assert responses[0].headers["X-RateLimit-Remaining"] == "2"
    assert int(responses[0].headers["X-RateLimit-Reset"]) > 0
    assert int(responses[3].headers["Retry-After"]) >= 1
    assert "rate limit" in responses[3].json()["detail"]
