"""Remote MCP servers: registered per workspace (secrets sealed), reached only through the egress gate,
their tools called by the mcp_tool node with the call in the trace, and failures typed, never hung."""

from __future__ import annotations

import threading
import time

import pytest
from mcp_support import create_app
from remote_support import mcp_flow, register, start_remote
from support.server import dump_database


@pytest.fixture
def ws(intranet):
    return intranet.new_workspace("mcp-client")


def test_a_private_address_is_refused_while_private_egress_is_off(workspace):
    for url in ("http://127.0.0.1:9/mcp", "http://10.1.2.3/mcp", "http://169.254.169.254/mcp", "http://[::1]:9/mcp",
                "http://2130706433/mcp"):
        response = register(workspace, "internal", url)
        assert response.status_code == 422, (url, response.text)
    with workspace.client() as c:
        assert c.get("/v1/mcp-servers").json() == []


def test_registering_needs_admin_and_never_returns_the_headers(ws, intranet, remote):
    chat_key = ws.create_key(scopes=["chatbot"])
    with ws.client(chat_key) as c:
        assert c.post("/v1/mcp-servers", json={"name": "x", "url": remote.url}).status_code == 403
        assert c.get("/v1/mcp-servers").status_code == 403
    created = register(ws, "tools", remote.url, remote.token)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["header_names"] == ["Authorization"] and remote.token not in created.text
    with ws.client() as c:
        listed = c.get("/v1/mcp-servers")
        assert remote.token not in listed.text and listed.json()[0]["name"] == "tools"
        assert register(ws, "tools", remote.url).status_code == 409
        tools = c.get(f"/v1/mcp-servers/{body['id']}/tools")
    assert tools.status_code == 200, tools.text
    assert {t["name"] for t in tools.json()} == {"add", "shout", "slow", "broken"}
    assert remote.token not in dump_database(intranet.resolved_database_url)
    other = intranet.new_workspace("other")
    with other.client() as c:
        assert c.get(f"/v1/mcp-servers/{body['id']}").status_code == 404
        assert c.delete(f"/v1/mcp-servers/{body['id']}").status_code == 404
    with ws.client() as c:
        assert c.delete(f"/v1/mcp-servers/{body['id']}").status_code == 204
        assert c.get("/v1/mcp-servers").json() == []


def test_a_flow_calls_a_remote_tool_and_the_call_is_in_the_trace(ws, remote):
    assert register(ws, "calc", remote.url, remote.token).status_code == 201
    app = create_app(ws, name="Adder", kind="workflow", graph=mcp_flow(
        "calc", "add", {"a": "{{ in.a }}", "b": 2}, {"sum": "{{ call.json.sum }}", "said": "{{ call.text }}"},
        inputs=[{"name": "a", "type": "integer", "required": True}]))
    with ws.client() as c:
        run = c.post("/v1/runs", json={"app_id": app["id"], "inputs": {"a": 40}}).json()
        events = c.get(f"/v1/runs/{run['id']}/events").json()
    assert run["status"] == "succeeded", run
    assert str(run["outputs"]["sum"]) == "42" and run["outputs"]["said"] == "42"
    call = next(e["data"] for e in events if e["type"] == "node_finished" and e["data"]["node_id"] == "call")
    assert call["node_type"] == "mcp_tool" and call["status"] == "succeeded"
    assert call["inputs"] == {"server": "calc", "tool": "add", "arguments": {"a": 40, "b": 2}}
    assert call["outputs"]["json"] == {"sum": 42} and call["outputs"]["is_error"] is False


def test_a_tool_error_and_an_unknown_server_fail_the_run_with_a_code(ws, remote):
    assert register(ws, "calc", remote.url, remote.token).status_code == 201
    broken = create_app(ws, name="Broken", kind="workflow", graph=mcp_flow("calc", "broken", {}, {"t": "{{ call.text }}"}))
    with ws.client() as c:
        run = c.post("/v1/runs", json={"app_id": broken["id"], "inputs": {}}).json()
    assert run["status"] == "failed" and run["error"]["code"] == "mcp_tool_error"
    assert "the tool broke" in run["error"]["message"]


def test_a_server_that_is_down_or_goes_away_mid_run_is_a_typed_error(ws, tmp_path):
    lost = start_remote(tmp_path)
    assert register(ws, "flaky", lost.url, lost.token).status_code == 201
    app = create_app(ws, name="Waits", kind="workflow",
                     graph=mcp_flow("flaky", "slow", {"seconds": 60}, {"t": "{{ call.text }}"}))
    results: list[dict] = []

    def run_it() -> None:
        with ws.client() as c:
            results.append(c.post("/v1/runs", json={"app_id": app["id"], "inputs": {}}).json())

    caller = threading.Thread(target=run_it)
    caller.start()
    time.sleep(2.0)  # the call is in flight on the remote server
    started = time.monotonic()
    lost.stop()
    caller.join(timeout=30)
    assert not caller.is_alive(), "the run hung after its MCP server went away"
    assert time.monotonic() - started < 15
    run = results[0]
    assert run["status"] == "failed" and run["error"]["code"] == "mcp_unavailable", run
    assert "flaky" in run["error"]["message"]
    with ws.client() as c:  # down from the start: the same typed error, quickly
        started = time.monotonic()
        again = c.post("/v1/runs", json={"app_id": app["id"], "inputs": {}}).json()
    assert again["status"] == "failed" and again["error"]["code"] == "mcp_unavailable"
    assert time.monotonic() - started < 10
