"""Every route but the deliberately public ones refuses a caller without credentials.

Auth is a per-route dependency, so the inventory comes from the server's own
route table: a route added later without auth fails this test.
"""

from __future__ import annotations

import re
import uuid

import httpx

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    # The flowise SDK asks this without credentials; it answers only yes/404 (tests/dialects/test_flowise.py).
    ("GET", "/api/v1/chatflows-streaming/{app_id}"),
    # Studio sign-in: checks the admin user/password or admin key itself (tests/studio/test_session_api.py).
    ("POST", "/studio/api/session"),
    # Also public, and kept out of the OpenAPI document: `/` (redirect to /studio), the Studio page
    # shell `/studio` and its static files `/studio/assets/{version}/{name}`. They carry no workspace
    # data (tests/studio/test_session_api.py::test_public_studio_routes_reveal_nothing).
    ("GET", "/"),
    ("GET", "/studio"),
    ("GET", "/studio/assets/{version}/{name}"),
}
# Mounted outside the OpenAPI schema (the MCP SDK's ASGI endpoint), so listed here by hand.
NOT_IN_OPENAPI = [("GET", "/mcp"), ("POST", "/mcp"), ("DELETE", "/mcp")]


def _routes(server) -> list[tuple[str, str]]:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    routes = []
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
        for method in operations:
            if (method.upper(), path) not in PUBLIC:
                routes.append((method.upper(), concrete))
    return routes + NOT_IN_OPENAPI


def _variants(path: str) -> list[str]:
    return [
        path,
        path.upper(),
        "/" + path,
        path.replace("/", "//"),
        path.replace("v1", "%76%31", 1),
        "/v1/../" + path.lstrip("/"),
        "/./" + path.lstrip("/"),
        path + "/",
    ]


def test_every_private_route_needs_credentials(server):
    routes = _routes(server)
    assert len(routes) >= 15, routes  # the inventory itself must not come back empty
    failures = []
    with httpx.Client(base_url=server.base_url, timeout=10, follow_redirects=False) as client:
        for method, path in routes:
            for variant in _variants(path):
                response = client.request(method, variant, json={})
                if response.request.url.path == "/" and response.headers.get("location") == "/studio":
                    continue  # httpx reads "//x" as a host name and asks for "/": the public redirect to the Studio
                allowed = {401} if variant == path else {401, 404, 405, 307}
                if response.status_code not in allowed:
                    failures.append((method, variant, response.status_code))
                if response.status_code == 307:  # a redirect must not lead past auth either
                    target = client.request(method, response.headers["location"], json={})
                    if target.status_code not in (401, 404, 405):
                        failures.append((method, variant, "redirect", target.status_code))
    assert failures == []


def test_no_header_grants_trust(server):
    spoofed = {
        "x-request-from": "internal",
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "X-Forwarded-User": "admin",
        "X-Remote-User": "admin",
    }
    with httpx.Client(base_url=server.base_url, headers=spoofed) as client:
        assert client.get("/v1/apps").status_code == 401
        assert client.get("/v1/workspaces").status_code == 401
