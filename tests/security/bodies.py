"""A small valid request body for any route, made from its OpenAPI schema.

Required fields only, each given the plainest value its schema allows. A few
routes get a body that also makes sense to the service (a user message last, an
input a flow declares): EXAMPLES. Object references in bodies (tenants.BODY_REFS)
are filled by the caller.
"""

from __future__ import annotations

import copy
from typing import Any

from route_table import RouteInfo, openapi

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): {"model": "", "messages": [{"role": "user", "content": "hello"}]},
    ("POST", "/v1/runs"): {"app_id": "", "inputs": {"query": "hello", "message": "hello"}},
    ("POST", "/v1/runs/{run_id}/input"): {"message": "yes"},
    ("POST", "/v1/knowledge-bases/{kb_id}/documents"): {"text": "A heron is a bird.", "title": "birds"},
    ("POST", "/v1/knowledge-bases/{kb_id}/query"): {"query": "heron"},
    ("POST", "/api/v1/vector/upsert/{app_id}"): {"text": "A heron is a bird."},
    ("POST", "/api/v1/prediction/{app_id}"): {"question": "hello"},
    ("POST", "/execute_chatflow/{app_id}/execute"): {"input_data": {"query": "hello"}},
    ("POST", "/execute_chatflow/{app_id}/stream_execute"): {"input_data": {"query": "hello"}},
    ("POST", "/execute_workflow/{app_id}/execute"): {"input_data": {"topic": "rivers"}},
    ("POST", "/execute_workflow/{app_id}/stream_execute"): {"input_data": {"topic": "rivers"}},
    ("POST", "/v1/executions/{app_id}/async"): {"input_data": {"topic": "rivers"}},
    ("POST", "/v1/chatbot/api/chat"): {"bot_id": "", "message": "hello"},
    ("POST", "/v1/chatbot/api/chat/stream"): {"bot_id": "", "message": "hello"},
    ("PUT", "/v1/apps/{app_id}"): {"description": "edited"},
    ("POST", "/v1/apps"): {"name": "made", "kind": "chatbot", "config": {"model": "fake/echo"}},
    ("POST", "/v1/providers"): {"name": "made", "type": "openai", "base_url": "http://127.0.0.1:9/v1"},
}


def body_schema(route: RouteInfo) -> dict[str, Any] | None:
    operation = openapi()["paths"].get(route.path, {}).get(route.method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    schema = (content.get("application/json") or {}).get("schema")
    return resolve(schema) if schema else None


def example_body(route: RouteInfo) -> Any:
    if route.key in EXAMPLES:
        return copy.deepcopy(EXAMPLES[route.key])
    schema = body_schema(route)
    return {} if schema is None else example(schema)


def example(schema: dict[str, Any], depth: int = 0) -> Any:
    schema = resolve(schema)
    if depth > 8:
        return None
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            options = [resolve(s) for s in schema[combined] if resolve(s).get("type") != "null"]
            return example(options[0], depth + 1) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] is not None:
        return copy.deepcopy(schema["default"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example(properties[name], depth + 1) for name in schema.get("required", []) if name in properties}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [example(schema.get("items", {}), depth + 1) for _ in range(count)]
    if kind == "string":
        if schema.get("format") in ("uri", "url"):
            return "https://example.com/"
        return "x" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return False
    return "x"


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = openapi()["components"]["schemas"][name]
    return schema
