"""`http_request`: one HTTP call through the SSRF-safe egress client (`headwater.net.safe_http`).

`{"method": "GET", "url": "https://api.example.com/items/{{ start.id }}", "params": {...},
"headers": {...}, "json": {...} | "body": "text", "timeout": 10}`. URL, header,
param and body values are templates; JSON bodies keep native values for lone
expressions. Outputs `status_code`, `headers`, `body` (text) and `json` (parsed
body, or null). Private, loopback, link-local and reserved addresses are
refused by the client (422 `egress_refused`) unless the server allows private
egress. A status of 400 or more fails the node only with `fail_on_error_status`.
"""

from __future__ import annotations

import json as jsonlib
from typing import Any, Literal

from pydantic import Field, model_validator

from headwater.engine.context import NodeContext
from headwater.engine.errors import NodeFailed
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type

SENSITIVE_HEADERS = ("authorization", "cookie", "x-api-key", "proxy-authorization", "api-key")
_clients: dict[bool, Any] = {}


class HttpRequestConfig(NodeConfig):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str = Field(min_length=1, max_length=8000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    params: dict[str, str] = Field(default_factory=dict, max_length=100)
    body: str | None = Field(default=None, max_length=1_000_000)
    json_body: Any = Field(default=None, alias="json")
    timeout: float = Field(default=10.0, gt=0, le=120)
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1, le=10 * 1024 * 1024)
    fail_on_error_status: bool = False

    @model_validator(mode="after")
    def _one_body(self) -> "HttpRequestConfig":
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either 'body' or 'json', not both")
        return self


def _client(allow_private: bool):
    """One shared client per policy: connections are pooled, pins are per request."""
    from headwater.net.safe_http import SafeHttpClient

    client = _clients.get(allow_private)
    if client is None:
        client = _clients[allow_private] = SafeHttpClient(allow_private=allow_private)
    return client


def _string_leaves(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def _render_json(ctx: NodeContext, value: Any) -> Any:
    if isinstance(value, str):
        return ctx.evaluate(value)
    if isinstance(value, dict):
        return {key: _render_json(ctx, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_json(ctx, item) for item in value]
    return value


def _masked(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


@node_type("http_request")
class HttpRequestNode(Node):
    Config = HttpRequestConfig
    outputs = ("status_code", "headers", "body", "json", "url")
    effectful = True

    def templates(self):
        config: HttpRequestConfig = self.config
        yield config.url
        yield from config.headers.values()
        yield from config.params.values()
        if config.body is not None:
            yield config.body
        yield from _string_leaves(config.json_body)

    async def run(self, ctx: NodeContext) -> NodeResult:
        from headwater.net.safe_http import EgressFailed

        config: HttpRequestConfig = self.config
        url = ctx.render(config.url).strip()
        headers = {name: ctx.render(value) for name, value in config.headers.items()}
        params = {name: ctx.render(value) for name, value in config.params.items()} or None
        json_body = _render_json(ctx, config.json_body) if config.json_body is not None else None
        content = ctx.render(config.body).encode() if config.body is not None else None
        ctx.record_inputs(method=config.method, url=url, headers=_masked(headers), params=params)
        allow_private = bool(getattr(ctx.run.settings, "egress_allow_private", False))
        try:
            response = await _client(allow_private).request(
                config.method, url, headers=headers, params=params, json=json_body, content=content,
                timeout=config.timeout, max_bytes=config.max_bytes,
            )
        except EgressFailed as exc:
            raise NodeFailed(exc.detail, code="http_error", status_code=502) from None
        # EgressRefused is an InvalidInput: it fails the node as a 422 naming the refusal.
        body = response.text()
        try:
            parsed = jsonlib.loads(body) if body else None
        except ValueError:
            parsed = None
        if config.fail_on_error_status and response.status_code >= 400:
            raise NodeFailed(f"{config.method} answered HTTP {response.status_code}", code="http_error")
        return NodeResult(outputs={
            "status_code": response.status_code, "headers": dict(response.headers), "body": body,
            "json": parsed, "url": response.url,
        })
