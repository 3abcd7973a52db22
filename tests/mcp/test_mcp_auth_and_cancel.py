"""/mcp keeps the rules of every route (keys, scopes, workspaces, revocation), and a cancelled call stops its run."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from mcp_support import mcp_client

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def test_mcp_answers_401_without_a_key_on_every_verb_and_spelling(server):
    with httpx.Client(base_url=server.base_url, timeout=10, follow_redirects=False) as client:
        for method in ("GET", "POST", "DELETE"):
            assert client.request(method, "/mcp", json=INIT, headers=ACCEPT).status_code == 401
            for variant in ("/MCP", "//mcp", "/mcp/", "/./mcp", "/%6dcp", "/v1/../mcp"):
                response = client.request(method, variant, json=INIT, headers=ACCEPT)
                assert response.status_code in (401, 404, 405, 307), (method, variant)
                if response.status_code == 307 and "mcp" in response.headers["location"].lower():
                    assert client.request(method, response.headers["location"], json=INIT,
                                          headers=ACCEPT).status_code in (401, 404, 405)
        wrong = client.post("/mcp", json=INIT, headers={**ACCEPT, "X-API-Key": "hw_not_a_key"})
        assert wrong.status_code == 401 and wrong.json()["detail"]
        assert "Traceback" not in wrong.text


async def test_another_workspace_sees_none_of_the_apps(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo")
    other = server.new_workspace("other")
    other.create_chatbot(model="fake/echo", name="Theirs")
    async with mcp_client(server, other.admin_key) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        call = await client.call_tool(bot["slug"], {"message": "hi"})
    assert bot["slug"] not in names or names == ["theirs"]
    assert names == ["theirs"]
    assert call.is_error and "unknown tool" in call.content[0].text


async def test_a_key_without_the_chatbot_scope_is_refused(workspace, server):
    key = workspace.create_key(scopes=["knowledge"])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post("/mcp", json=INIT, headers={**ACCEPT, "X-API-Key": key})
    assert response.status_code == 403


async def test_a_revoked_key_is_refused_at_once_even_in_an_open_session(workspace, server):
    workspace.create_chatbot(model="fake/echo")
    with workspace.client() as c:
        created = c.post("/v1/api-keys", json={"name": "mcp", "scopes": ["chatbot"]}).json()
    async with mcp_client(server, created["key"], mode="legacy") as client:
        assert len((await client.list_tools()).tools) == 1
        with workspace.client() as c:
            assert c.delete(f"/v1/api-keys/{created['id']}").status_code == 204
        with pytest.raises(Exception):
            await client.list_tools()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post("/mcp", json=INIT, headers={**ACCEPT, "X-API-Key": created["key"]})
    assert response.status_code == 401


async def test_the_rate_limit_of_the_key_applies(workspace, server):
    key = workspace.create_key(rate_limit=2)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        statuses = [(await client.post("/mcp", json=INIT, headers={**ACCEPT, "X-API-Key": key})) for _ in range(3)]
    assert [r.status_code for r in statuses][:2] == [200, 200]
    assert statuses[2].status_code == 429 and statuses[2].headers["Retry-After"]
    assert statuses[0].headers["X-RateLimit-Limit"] == "2"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancelling_a_call_stops_its_run(workspace, server, mode):
    bot = workspace.create_chatbot(model="fake/slow-200")
    words = " ".join(f"w{i}" for i in range(50))
    run_ids: list[str] = []
    tokens: list[str] = []

    async def on_progress(progress, total, message):
        if message and message.startswith("run "):
            run_ids.append(message.split()[1])
        elif message and message.startswith("w"):
            tokens.append(message)

    async with mcp_client(server, workspace.admin_key, mode=mode) as client:
        with anyio.move_on_after(1.5) as scope:
            await client.call_tool(bot["slug"], {"message": words}, progress_callback=on_progress)
        assert scope.cancelled_caught
        assert run_ids and tokens
        run = await _settled_run(server, workspace.admin_key, run_ids[0])
    assert run["status"] == "cancelled"
    assert run["outputs"]["partial"] is True
    assert run["outputs"]["text"].startswith("w0 ")
    assert len(run["outputs"]["text"].split()) < 50


async def _settled_run(server, key: str, run_id: str, within: float = 5.0) -> dict:
    """The run once it is no longer running (polled without blocking the client's event loop)."""
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": key}) as client:
        deadline = time.monotonic() + within
        while True:
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            if run["status"] != "running" or time.monotonic() > deadline:
                return run
            await anyio.sleep(0.1)
