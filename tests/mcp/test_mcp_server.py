"""/mcp with the official MCP client SDK over real HTTP: tools are the workspace's apps, calls are runs."""

from __future__ import annotations

import pytest
from mcp_support import create_app, mcp_client, workflow_graph


async def test_tools_are_the_workspace_apps_with_schemas(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo", name="Echo bot")
    flow = create_app(workspace, name="Trip", kind="workflow", description="Plans a trip", graph=workflow_graph())
    create_app(workspace, name="Hidden", kind="chatbot", config={"model": "fake/echo", "mcp": False})
    async with mcp_client(server, workspace.admin_key) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {bot["slug"], flow["slug"]}
    assert tools[bot["slug"]].input_schema["required"] == ["message"]
    assert set(tools[bot["slug"]].input_schema["properties"]) == {"message", "session_id"}
    trip = tools[flow["slug"]]
    assert trip.description == "Plans a trip"
    assert trip.input_schema["properties"]["days"]["type"] == "integer"
    assert trip.input_schema["properties"]["metric"] == {"type": "boolean", "default": True}
    assert trip.input_schema["required"] == ["city", "days"]


@pytest.mark.parametrize("bearer", [False, True])
async def test_calling_a_chatbot_is_a_run(workspace, server, bearer):
    bot = workspace.create_chatbot(model="fake/echo")
    async with mcp_client(server, workspace.admin_key, bearer=bearer) as client:
        result = await client.call_tool(bot["slug"], {"message": "hello over mcp"})
    assert not result.is_error
    assert result.content[0].text == "hello over mcp"
    run_id = result.meta["headwater/run_id"]
    with workspace.client() as c:
        run = c.get(f"/v1/runs/{run_id}").json()
        events = c.get(f"/v1/runs/{run_id}/events").json()
    assert run["status"] == "succeeded" and run["source"] == "mcp"
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"


async def test_a_workflow_takes_typed_inputs_and_names_a_missing_one(workspace, server):
    flow = create_app(workspace, name="Trip", kind="workflow", graph=workflow_graph())
    async with mcp_client(server, workspace.admin_key) as client:
        result = await client.call_tool(flow["slug"], {"city": "Oslo", "days": "3"})
        missing = await client.call_tool(flow["slug"], {"city": "Oslo"})
        wrong_type = await client.call_tool(flow["slug"], {"city": "Oslo", "days": "many"})
        unknown = await client.call_tool("no-such-app", {})
    assert not result.is_error
    assert result.structured_content["summary"] == "Oslo for 3 days"
    assert result.structured_content["twice"] in (6, "6")
    run_id = result.meta["headwater/run_id"]
    with workspace.client() as c:
        run = c.get(f"/v1/runs/{run_id}").json()
        events = c.get(f"/v1/runs/{run_id}/events").json()
    assert run["status"] == "succeeded" and run["inputs"]["days"] == "3"
    assert [e["data"]["node_id"] for e in events if e["type"] == "node_finished"] == ["in", "out"]
    assert missing.is_error and missing.content[0].text == "input 'days' is required"
    assert wrong_type.is_error and "days" in wrong_type.content[0].text and "integer" in wrong_type.content[0].text
    assert unknown.is_error and "unknown tool" in unknown.content[0].text
    for failed in (missing, wrong_type, unknown):
        assert "Traceback" not in failed.content[0].text


async def test_a_chatflow_and_its_session(workspace, server):
    graph = {"nodes": [
        {"id": "in", "type": "start"},
        {"id": "gen", "type": "llm", "model": "fake/context", "prompt": "{{ in.query }}", "memory": True},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"}],
        "edges": [{"source": "in", "target": "gen"}, {"source": "gen", "target": "out"}]}
    flow = create_app(workspace, name="Talk", kind="chatflow", graph=graph)
    async with mcp_client(server, workspace.admin_key) as client:
        schema = {t.name: t for t in (await client.list_tools()).tools}[flow["slug"]].input_schema
        first = await client.call_tool(flow["slug"], {"message": "first question"})
        session_id = first.meta["headwater/session_id"]
        second = await client.call_tool(flow["slug"], {"message": "second question", "session_id": session_id})
    assert schema["required"] == ["message"]
    assert not first.is_error and not second.is_error
    assert "first question" in second.content[0].text  # the memory of the session reached the model
    assert second.meta["headwater/session_id"] == session_id


async def test_progress_notifications_carry_the_run_and_its_tokens(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo")
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, message))

    async with mcp_client(server, workspace.admin_key) as client:
        result = await client.call_tool(bot["slug"], {"message": "one two three"}, progress_callback=on_progress)
    run_id = result.meta["headwater/run_id"]
    messages = [m for _, m in seen]
    assert messages[0] == f"run {run_id} started"
    assert ["one ", "two ", "three"] == [m for m in messages if m in ("one ", "two ", "three")]
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
