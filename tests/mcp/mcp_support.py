"""The official `mcp` client SDK against a Headwater server, over real HTTP."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def mcp_client(server, key: str | None, *, bearer: bool = False, mode: str = "auto", timeout: float = 30):
    """A connected `mcp.Client` for `server`'s /mcp, authenticated by `key` (X-API-Key, or Bearer)."""
    headers = {}
    if key:
        headers = {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            yield client


def workflow_graph() -> dict:
    return {
        "nodes": [
            {"id": "in", "type": "start", "inputs": [
                {"name": "city", "type": "string", "required": True, "description": "Where"},
                {"name": "days", "type": "integer", "required": True},
                {"name": "metric", "type": "boolean", "default": True},
            ]},
            {"id": "out", "type": "end", "outputs": {
                "summary": "{{ in.city }} for {{ in.days }} days", "twice": "{{ in.days * 2 }}",
            }},
        ],
        "edges": [{"source": "in", "target": "out"}],
    }


def create_app(workspace, **body) -> dict:
    with workspace.client() as c:
        response = c.post("/v1/apps", json=body)
        response.raise_for_status()
        return response.json()
