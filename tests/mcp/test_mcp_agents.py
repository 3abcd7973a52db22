"""Agents and MCP: an agent using the tools of a real remote MCP server (`mcp:<server>/<tool>`), its calls in
the run's trace and its failures typed; and an agent app called as a tool over /mcp with the official SDK."""

from __future__ import annotations

import threading
import time
from typing import Any

from mcp_support import create_app, mcp_client
from remote_support import register, start_remote

from headwater.providers.scripted import script_block


def step(say: str = "", *calls: dict[str, Any]) -> dict[str, Any]:
    return {"say": say, **({"tool_calls": list(calls)} if calls else {})}


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def agent(workspace, tools: list[str], model: str = "scripted/tools", **extra: Any):
    with workspace.client() as c:
        return c.post("/v1/apps", json={"name": "Agent", "kind": "agent", "description": "Uses remote tools",
                                        "config": {"model": model, "tools": tools, **extra}})


def run_agent(workspace, app: dict, *entries: dict[str, Any]) -> tuple[dict, list[dict]]:
    with workspace.client() as c:
        run = c.post("/v1/runs", json={"app_id": app["id"], "inputs": {"query": script_block(list(entries))}}).json()
        events = c.get(f"/v1/runs/{run['id']}/events").json()
    return run, events


def tool_calls(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["type"] == "tool_call"]


def test_an_agent_calls_remote_tools_and_each_call_is_in_the_trace(intranet, remote):
    ws = intranet.new_workspace("agent-tools")
    assert register(ws, "calc", remote.url, remote.token).status_code == 201
    created = agent(ws, ["mcp:calc/add", "mcp:calc/broken", "calculator"])
    assert created.status_code == 201, created.text
    run, events = run_agent(ws, created.json(),
                            step("Adding remotely.", call("calc__add", a=40, b=2)),
                            step("Now the broken one.", call("calc__broken")),
                            step("The sum is 42; the other tool broke."))
    assert run["status"] == "succeeded", run
    assert run["outputs"]["text"] == "The sum is 42; the other tool broke."
    add, broken = tool_calls(events)
    assert (add["tool"], add["arguments"], add["result"]) == ("mcp:calc/add", {"a": 40, "b": 2}, "42")
    assert add["elapsed_ms"] >= 0 and "error" not in add
    # A tool answering with an error is an observation: the model went on.
    assert broken["tool"] == "mcp:calc/broken" and broken["error"] == "the tool broke" and "result" not in broken
    node = next(n for n in run["nodes"] if n["node_id"] == "agent")
    assert node["inputs"]["tools"] == ["calculator", "mcp:calc/add", "mcp:calc/broken"]
    assert node["inputs"]["native_tools"] is True
    assert [c["tool"] for s in node["outputs"]["steps"] for c in s.get("calls", [])] == [
        "mcp:calc/add", "mcp:calc/broken"]


def test_a_model_without_tool_calling_uses_a_remote_tool_by_its_model_name(intranet, remote):
    ws = intranet.new_workspace("agent-text")
    assert register(ws, "text.tools", remote.url, remote.token).status_code == 201
    created = agent(ws, ["mcp:text.tools/shout"], model="scripted/text")
    assert created.status_code == 201, created.text
    run, events = run_agent(ws, created.json(), step("I shout.", call("text_tools__shout", text="hello")),
                            step("Final Answer: HELLO"))
    assert run["status"] == "succeeded" and run["outputs"]["text"] == "HELLO", run
    [shout] = tool_calls(events)
    assert shout["tool"] == "mcp:text.tools/shout" and shout["result"] == "HELLO"


def test_mcp_tools_are_checked_when_the_app_is_saved(intranet, remote):
    ws = intranet.new_workspace("agent-save")
    assert register(ws, "calc", remote.url, remote.token).status_code == 201
    unregistered = agent(ws, ["mcp:elsewhere/add"])
    assert unregistered.status_code == 422 and "elsewhere" in unregistered.text
    for malformed in ("mcp:calc", "mcp:/add", "mcp:calc/", "mcp:bad name/add"):
        response = agent(ws, [malformed])
        assert response.status_code == 422 and "mcp:<server>/<tool>" in response.text, (malformed, response.text)
    graph = {"nodes": [{"id": "start", "type": "start"},
                       {"id": "agent", "type": "agent", "model": "scripted/tools", "tools": ["mcp:elsewhere/add"]},
                       {"id": "answer", "type": "answer", "text": "{{ agent.text }}"}],
             "edges": [{"source": "start", "target": "agent"}, {"source": "agent", "target": "answer"}]}
    with ws.client() as c:
        flow = c.post("/v1/apps", json={"name": "Flow", "kind": "chatflow", "graph": graph})
        assert flow.status_code == 422 and "elsewhere" in flow.text
        graph["nodes"][1]["tools"] = ["mcp:calc/add"]
        assert c.post("/v1/apps", json={"name": "Flow", "kind": "chatflow", "graph": graph}).status_code == 201
    # A tool the server does not have, and a server deleted since the save, fail the run with a code.
    missing_tool = agent(ws, ["mcp:calc/divide"]).json()
    run, _ = run_agent(ws, missing_tool, step("", call("calc__divide")))
    assert run["status"] == "failed" and run["error"]["code"] == "mcp_unknown_tool", run
    assert "add" in run["error"]["message"]
    assert register(ws, "gone", remote.url, remote.token).status_code == 201
    orphan = agent(ws, ["mcp:gone/add"]).json()
    with ws.client() as c:
        assert c.delete("/v1/mcp-servers/gone").status_code == 204
    run, _ = run_agent(ws, orphan, step("", call("gone__add", a=1, b=2)))
    assert run["status"] == "failed" and run["error"]["code"] == "mcp_unknown_server", run


def test_a_remote_server_going_away_fails_the_agent_run_with_a_typed_error(intranet, tmp_path):
    ws = intranet.new_workspace("agent-flaky")
    lost = start_remote(tmp_path)
    try:
        assert register(ws, "flaky", lost.url, lost.token).status_code == 201
        app = agent(ws, ["mcp:flaky/slow"]).json()
        results: list[tuple[dict, list[dict]]] = []
        caller = threading.Thread(target=lambda: results.append(
            run_agent(ws, app, step("Waiting.", call("flaky__slow", seconds=60)), step("never"))))
        caller.start()
        time.sleep(2.0)  # the call is in flight on the remote server
        started = time.monotonic()
        lost.stop()
        caller.join(timeout=30)
        assert not caller.is_alive(), "the agent's run hung after its MCP server went away"
        assert time.monotonic() - started < 15
    finally:
        lost.stop()
    run, events = results[0]
    assert run["status"] == "failed" and run["error"]["code"] == "mcp_unavailable", run
    assert "flaky" in run["error"]["message"]
    [slow] = tool_calls(events)
    assert slow["tool"] == "mcp:flaky/slow" and slow["arguments"] == {"seconds": 60}
    assert "unavailable" in slow["error"] and slow["elapsed_ms"] >= 1000
    # Down from the start: the same typed error, quickly.
    started = time.monotonic()
    again, _ = run_agent(ws, app, step("", call("flaky__slow", seconds=1)))
    assert again["status"] == "failed" and again["error"]["code"] == "mcp_unavailable", again
    assert time.monotonic() - started < 10


async def test_an_agent_app_is_a_tool_over_mcp_and_may_itself_use_remote_tools(intranet, remote):
    ws = intranet.new_workspace("agent-over-mcp")
    assert register(ws, "calc", remote.url, remote.token).status_code == 201
    app = create_app(ws, name="Adder agent", kind="agent", description="Adds with a remote tool",
                     config={"model": "scripted/tools", "tools": ["mcp:calc/add"]})
    task = script_block([step("Adding.", call("calc__add", a=20, b=22)), step("It is 42.")])
    async with mcp_client(intranet, ws.admin_key) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool(app["slug"], {"input": task})
        missing = await client.call_tool(app["slug"], {})
    schema = tools[app["slug"]].input_schema
    assert schema["required"] == ["input"] and schema["properties"]["input"]["type"] == "string"
    assert tools[app["slug"]].description == "Adds with a remote tool"
    assert not result.is_error, result
    assert result.content[0].text == "It is 42."
    run_id = result.meta["headwater/run_id"]
    with ws.client() as c:
        run = c.get(f"/v1/runs/{run_id}").json()
        events = c.get(f"/v1/runs/{run_id}/events").json()
    assert run["status"] == "succeeded" and run["source"] == "mcp" and run["kind"] == "agent", run
    [add] = tool_calls(events)
    assert add["tool"] == "mcp:calc/add" and add["result"] == "42"
    assert missing.is_error and missing.content[0].text == "input 'input' is required"
