"""The Studio session cookie at the API level: what it opens, what it never opens, and its CSRF rule.

Runs against the shared real server of each backend (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import re
from contextlib import closing

import httpx

from headwater.api.studio_routes import STUDIO_ROUTES

SESSION = "/studio/api/session"


def sign_in(server, **credentials) -> tuple[httpx.Client, dict, httpx.Response]:
    client = httpx.Client(base_url=server.base_url, timeout=30)
    if not credentials:
        credentials = {"username": "admin", "password": server.admin_password}
    response = client.post(SESSION, json=credentials)
    assert response.status_code == 201, response.text
    return client, response.json(), response


def test_password_sign_in_sets_a_strict_httponly_expiring_cookie(server):
    client, body, response = sign_in(server)
    with closing(client):
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("hw_studio=")
        assert "HttpOnly" in cookie
        assert re.search(r"SameSite=strict", cookie, re.IGNORECASE)
        assert "Path=/" in cookie
        max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
        assert 3600 <= max_age <= 12 * 3600
        assert body["method"] == "password" and body["scopes"] == ["admin"]
        token = client.cookies["hw_studio"]
        assert token not in response.text  # the body carries the CSRF token, never the session token
        again = client.get(SESSION)
        assert again.status_code == 200
        assert again.json()["csrf_token"] == body["csrf_token"]


def test_state_changing_request_without_csrf_token_is_403(server):
    client, body, _ = sign_in(server)
    with closing(client):
        assert client.get("/v1/apps").status_code == 200  # reads need no token
        refused = client.post("/v1/api-keys", json={"name": "no-token"})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        wrong = client.post("/v1/api-keys", json={"name": "wrong"}, headers={"X-CSRF-Token": "not-the-token"})
        assert wrong.status_code == 403
        for method, path in (("DELETE", "/v1/apps/nope"), ("PUT", "/v1/apps/nope"), ("DELETE", "/v1/runs/nope")):
            assert client.request(method, path, json={}).status_code == 403, (method, path)
        accepted = client.post("/v1/api-keys", json={"name": "with-token"}, headers={"X-CSRF-Token": body["csrf_token"]})
        assert accepted.status_code == 201
        names = [k["name"] for k in client.get("/v1/api-keys").json()]
        assert "with-token" in names and "no-token" not in names and "wrong" not in names


def test_cookie_is_refused_by_routes_the_studio_does_not_use(server):
    client, body, _ = sign_in(server)
    headers = {"X-CSRF-Token": body["csrf_token"]}
    with closing(client):
        # The admin user is the instance admin, yet the cookie does not open instance administration...
        assert client.get("/v1/workspaces").status_code == 401
        assert client.post("/v1/workspaces", json={"name": "x"}, headers=headers).status_code == 401
        # ...nor the dialects (but the OpenAI-compatible chat route the Studio chats through).
        assert client.get("/metrics").status_code == 401
        assert client.get("/v1/models").status_code == 401
        assert client.post("/execute_workflow/x/execute", json={}, headers=headers).status_code == 401


def test_every_listed_studio_route_exists(server):
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    served = {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations}
    assert STUDIO_ROUTES <= served, sorted(STUDIO_ROUTES - served)


def test_sign_in_with_admin_key_acts_exactly_as_that_key(server, workspace):
    client, body, _ = sign_in(server, api_key=workspace.admin_key)
    headers = {"X-CSRF-Token": body["csrf_token"]}
    with closing(client):
        assert body["method"] == "api_key" and body["workspace_id"] == workspace.id
        created = client.post("/v1/apps", json={"name": "via cookie", "kind": "chatbot", "config": {"model": "fake/echo"}},
                              headers=headers)
        assert created.status_code == 201
    # The app landed in the key's workspace, not in the default one.
    with workspace.client() as owner:
        assert created.json()["id"] in [a["id"] for a in owner.get("/v1/apps").json()]
    with server.client(server.admin_key) as default_admin:
        assert default_admin.get(f"/v1/apps/{created.json()['id']}").status_code == 404


def test_sign_in_refuses_wrong_and_non_admin_credentials(server, workspace):
    with httpx.Client(base_url=server.base_url) as client:
        wrong = client.post(SESSION, json={"username": "admin", "password": "nope"})
        assert wrong.status_code == 401 and "detail" in wrong.json()
        assert "set-cookie" not in wrong.headers
        assert client.post(SESSION, json={"api_key": "hw_not_a_key"}).status_code == 401
        chatbot_key = workspace.create_key("chat-only", ["chatbot"])
        refused = client.post(SESSION, json={"api_key": chatbot_key})
        assert refused.status_code == 403
        assert "admin scope" in refused.json()["detail"]
        assert client.post(SESSION, json={}).status_code == 422
        cross_site = client.post(SESSION, json={"username": "admin", "password": server.admin_password},
                                 headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403


def test_deleting_the_key_ends_its_sessions_at_once(server, workspace):
    key = workspace.create_key("studio-user", ["admin"])
    client, _, _ = sign_in(server, api_key=key)
    with closing(client):
        assert client.get("/v1/apps").status_code == 200
        with workspace.client() as owner:
            key_id = next(k["id"] for k in owner.get("/v1/api-keys").json() if k["name"] == "studio-user")
            assert owner.delete(f"/v1/api-keys/{key_id}").status_code == 204
        assert client.get("/v1/apps").status_code == 401
        assert client.get(SESSION).status_code == 401


def test_sign_out_needs_the_token_and_ends_the_session(server):
    client, body, _ = sign_in(server)
    with closing(client):
        token = client.cookies["hw_studio"]
        assert client.delete(SESSION).status_code == 403
        signed_out = client.delete(SESSION, headers={"X-CSRF-Token": body["csrf_token"]})
        assert signed_out.status_code == 204
        assert "hw_studio=" in signed_out.headers["set-cookie"]
    # Replaying the old cookie opens nothing: the session is gone from the server.
    with httpx.Client(base_url=server.base_url, cookies={"hw_studio": token}) as replay:
        assert replay.get("/v1/apps").status_code == 401
        assert replay.get(SESSION).status_code == 401


def test_expired_session_is_refused(server):
    client, _, _ = sign_in(server)
    with closing(client):
        _expire_all_sessions(server.resolved_database_url)
        response = client.get("/v1/apps")
        assert response.status_code == 401
        assert "sign in again" in response.json()["detail"]


def test_header_credentials_win_over_the_cookie(server, workspace):
    client, _, _ = sign_in(server)  # instance admin by cookie
    chatbot_key = workspace.create_key("narrow", ["chatbot"])
    with closing(client):
        # With a key in the header the cookie is ignored: the narrower key decides, no CSRF token involved.
        response = client.post("/v1/api-keys", json={"name": "x"}, headers={"X-API-Key": chatbot_key})
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]


def test_session_table_holds_no_usable_token(server):
    from support.server import dump_database

    client, body, _ = sign_in(server)
    with closing(client):
        token = client.cookies["hw_studio"]
    dumped = dump_database(server.resolved_database_url)
    assert token not in dumped and body["csrf_token"] not in dumped
    assert server.admin_password not in dumped


def test_public_studio_routes_reveal_nothing(server):
    with httpx.Client(base_url=server.base_url) as client:
        root = client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/studio"
        page = client.get("/studio")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        script = re.search(r'src="(/studio/assets/[^"]+/app\.js)"', page.text).group(1)
        asset = client.get(script, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
        assert "immutable" in asset.headers["cache-control"]
        assert client.get(script, headers={"If-None-Match": asset.headers["etag"]}).status_code == 304
        for probe in ("/studio/assets/v/nope.js", "/studio/assets/v/index.html", "/studio/assets/v/..%2f..%2fconfig.py",
                      "/studio/assets/v/%2e%2e/routes.py"):
            assert client.get(probe).status_code == 404, probe


def _expire_all_sessions(database_url: str) -> None:
    from sqlalchemy import update

    from headwater.store.db import create_engine
    from headwater.store.models import utcnow
    from headwater.store.studio_models import StudioSession

    async def expire() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(update(StudioSession).values(expires_at=utcnow()))
        finally:
            await engine.dispose()

    asyncio.run(expire())

