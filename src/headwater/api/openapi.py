"""The OpenAPI document says how every route answers, errors and streams included.

FastAPI documents a route's success body and a validation error shaped as a
list; Headwater answers every error as `{"detail": "<message>"}` (api/errors.py)
and some routes as a stream. So, once the document is built: every operation
lists the error statuses it may answer with the one `Error` body, and every
operation that streams when asked (a `stream` query parameter or body field, a
`streaming` field, or a path ending in a stream) lists `text/event-stream` too.
Operations that may answer 202 (a body with `background`) list it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What went wrong, for a human."}},
    "required": ["detail"],
}
ERRORS = {
    "400": "The request could not be read (a malformed body, a NUL character in the path or query).",
    "401": "No credentials, or a wrong, revoked or expired key or password.",
    "403": "The key lacks the scope this route needs.",
    "404": "No such object in the caller's workspace (another workspace's objects are not found either).",
    "409": "The object is not in a state that allows this (a run already finished, a conversation of another app).",
    "413": "The body (or a file in it) is larger than the server accepts.",
    "415": "A file of a type that is not accepted, or whose content does not match its name.",
    "422": "The body, a query parameter or a file is not valid for this route.",
    "429": "Over the key's rate limit; `Retry-After` says when to come back.",
    "500": "A fault of the server (never with details).",
    "502": "The model provider failed.",
    "503": "The run's executor went away.",
    "504": "The model provider did not answer in time.",
}
PUBLIC_ERRORS = ("400", "404", "422", "429", "500")


def document_responses(app: FastAPI) -> None:
    """Post-process the app's OpenAPI document as described above (each time it is built)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        if not schema.get("x-headwater-responses"):
            _complete(schema)
            schema["x-headwater-responses"] = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            public = not operation.get("security") and _is_public(path, method)
            for status in (PUBLIC_ERRORS if public else ERRORS):
                responses[status] = {"description": ERRORS[status], "content": error}
            if _streams(path, operation, components):
                for status, response in responses.items():
                    if status.startswith("2"):
                        response.setdefault("content", {})["text/event-stream"] = {
                            "schema": {"type": "string", "description": "Server-Sent Events"}}
            if _body_property(operation, components, "background"):
                responses.setdefault("202", {"description": "Accepted: the run goes on in the background.",
                                             "content": {"application/json": {"schema": {"type": "object"}}}})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


# Routes that answer without credentials (tests/security/route_table.py keeps the full allowlist).
_PUBLIC = {("get", "/healthz"), ("get", "/api/v1/chatflows-streaming/{app_id}")}


def _is_public(path: str, method: str) -> bool:
    return (method, path) in _PUBLIC


def _streams(path: str, operation: dict[str, Any], components: dict[str, Any]) -> bool:
    if path.endswith(("/stream", "/stream_execute")):
        return True
    if any(p.get("name") == "stream" and p.get("in") == "query" for p in operation.get("parameters", [])):
        return True
    return bool(_body_property(operation, components, "stream") or _body_property(operation, components, "streaming"))


def _body_property(operation: dict[str, Any], components: dict[str, Any], name: str) -> bool:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    while "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return name in schema.get("properties", {})
