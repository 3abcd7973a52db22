"""The routes the Studio page calls: the only ones that accept its session cookie.

Matched on the route FastAPI resolved (method and path template), after routing,
so no spelling of a path reaches another route with the cookie. Everything else
(workspaces, metrics, the dialects other than the chat route) needs a key or
Basic auth even from a signed-in browser. tests/studio/test_session_api.py
checks that every entry names a real route.
"""

from __future__ import annotations

from fastapi import Request

STUDIO_ROUTES: frozenset[tuple[str, str]] = frozenset({
    ("GET", "/v1/api-keys"), ("POST", "/v1/api-keys"), ("DELETE", "/v1/api-keys/{key_id}"),
    ("GET", "/v1/apps"), ("POST", "/v1/apps"), ("GET", "/v1/apps/{app_id}"), ("PUT", "/v1/apps/{app_id}"),
    ("DELETE", "/v1/apps/{app_id}"), ("GET", "/v1/apps/{app_id}/versions"),
    ("POST", "/v1/apps/validate"), ("POST", "/v1/apps/import"), ("GET", "/v1/apps/{app_id}/export"),
    ("GET", "/v1/providers"), ("POST", "/v1/providers"), ("GET", "/v1/providers/{provider_id}"),
    ("DELETE", "/v1/providers/{provider_id}"), ("GET", "/v1/providers/{provider_id}/models"),
    ("GET", "/v1/knowledge-bases"), ("POST", "/v1/knowledge-bases"), ("GET", "/v1/knowledge-bases/{kb_id}"),
    ("DELETE", "/v1/knowledge-bases/{kb_id}"), ("GET", "/v1/knowledge-bases/{kb_id}/documents"),
    ("POST", "/v1/knowledge-bases/{kb_id}/documents"),
    ("DELETE", "/v1/knowledge-bases/{kb_id}/documents/{document_id}"),
    ("POST", "/v1/knowledge-bases/{kb_id}/query"),
    ("GET", "/v1/runs"), ("POST", "/v1/runs"), ("GET", "/v1/runs/{run_id}"), ("GET", "/v1/runs/{run_id}/events"),
    ("POST", "/v1/runs/{run_id}/input"), ("GET", "/v1/runs/{run_id}/stream"), ("DELETE", "/v1/runs/{run_id}"),
    ("GET", "/v1/sessions"), ("GET", "/v1/sessions/{session_id}/messages"),
    ("POST", "/v1/chat/completions"),
})


def accepts_studio_cookie(request: Request) -> bool:
    route = request.scope.get("route")
    return route is not None and (request.method, getattr(route, "path", None)) in STUDIO_ROUTES
