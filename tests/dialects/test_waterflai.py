"""Waterflai execution routes: chatflows, workflows and async executions, over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

CHATFLOW = {
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "query", "required": True}]},
        {"id": "gen", "type": "llm", "model": "fake/context", "prompt": "{{ start.query }}", "memory": True},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
    ],
    "edges": [{"source": "start", "target": "gen"}, {"source": "gen", "target": "out"}],
}
WORKFLOW = {
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "topic", "required": True}, {"name": "n", "type": "integer"}]},
        {"id": "gen", "type": "llm", "model": "fake/echo", "prompt": "about {{ start.topic }}"},
        {"id": "end", "type": "end", "outputs": {"text": "{{ gen.text }}", "n": "{{ start.n }}"}},
    ],
    "edges": [{"source": "start", "target": "gen"}, {"source": "gen", "target": "end"}],
}


def _app(workspace, kind, graph, name="flow"):
    with workspace.client() as c:
        response = c.post("/v1/apps", json={"name": name, "kind": kind, "graph": graph})
        assert response.status_code == 201, response.text
        return response.json()


def _data(response: httpx.Response) -> list[dict]:
    frames, ids = [], []
    for line in response.iter_lines():
        if line.startswith("data:"):
            frames.append(json.loads(line[5:]))
        elif line.startswith("id:"):
            ids.append(int(line[3:]))
    return frames, ids


@pytest.fixture
def key(workspace):
    return workspace.create_key("caller", ["chatbot"])


def test_execute_chatflow_answers_as_a_chat_completion_with_memory(workspace, server, key):
    app = _app(workspace, "chatflow", CHATFLOW)
    with server.client(key) as c:
        first = c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {"query": "I am Ada", "user_id": "u1"}})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["object"] == "chat.completion" and body["model"] == app["slug"]
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "user: I am Ada"}
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0
        conversation = body["conversation_id"]
        second = c.post(f"/execute_chatflow/{app['slug']}/execute",
                        json={"input_data": {"messages": "who am I?", "conversation_id": conversation}}).json()
        assert second["choices"][0]["message"]["content"] == "user: I am Ada\nassistant: user: I am Ada\nuser: who am I?"
        listed = c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {"messages": [
            {"role": "user", "content": "earlier"}, {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "text", "text": "now"}]}]}}).json()
        assert listed["choices"][0]["message"]["content"] == "user: earlier\nassistant: noted\nuser: now"
        run = c.get(f"/v1/runs/{listed['execution_id']}").json()
        assert run["source"] == "waterflai" and run["status"] == "succeeded"


def test_execute_chatflow_refuses_bad_requests(workspace, server, key, other_workspace):
    app = _app(workspace, "chatflow", CHATFLOW)
    workflow = _app(workspace, "workflow", WORKFLOW, "wf")
    with server.client(key) as c:
        assert c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {}}).status_code == 422
        assert c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {"messages": [
            {"role": "assistant", "content": "x"}]}}).status_code == 422
        assert c.post(f"/execute_chatflow/{workflow['id']}/execute", json={"input_data": {"query": "x"}}).status_code == 422
        assert c.post("/execute_chatflow/nope/execute", json={"input_data": {"query": "x"}}).status_code == 404
    with server.client(other_workspace.admin_key) as c:
        assert c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {"query": "x"}}).status_code == 404
    with server.client() as c:
        assert c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {"query": "x"}}).status_code == 401


def test_stream_execute_chatflow_sends_waterflai_events(workspace, server, key):
    app = _app(workspace, "chatflow", CHATFLOW)
    with server.client(key) as c:
        with c.stream("POST", f"/execute_chatflow/{app['id']}/stream_execute", json={"input_data": {"query": "a b c"}}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            frames, ids = _data(r)
    types = [f["type"] for f in frames]
    assert types[0] == "execution_started" and types[-1] == "execution_completed"
    assert {"node_started", "node_completed", "token"} <= set(types)
    assert all("timestamp" in f and f["timestamp"].endswith("Z") for f in frames)
    assert "".join(f["content"] for f in frames if f["type"] == "token") == "user: a b c"
    assert frames[-1]["output"] == "user: a b c" and frames[-1]["usage"]["completion_tokens"] == 4
    assert ids == sorted(ids)


def test_execute_workflow_returns_outputs_and_node_results(workspace, server, key):
    app = _app(workspace, "workflow", WORKFLOW)
    with server.client(key) as c:
        response = c.post(f"/execute_workflow/{app['id']}/execute", json={"input_data": {"topic": "rivers", "n": "3"}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed" and body["outputs"] == {"text": "about rivers", "n": 3}
        assert [n["node_id"] for n in body["node_results"]] == ["start", "gen", "end"]
        assert body["node_results"][1]["outputs"]["text"] == "about rivers"
        assert body["usage"]["completion_tokens"] == 2 and body["elapsed_ms"] >= 0
        missing = c.post(f"/execute_workflow/{app['id']}/execute", json={"input_data": {}})
        assert missing.status_code == 422 and "topic" in missing.json()["detail"]
        with c.stream("POST", f"/execute_workflow/{app['id']}/stream_execute", json={"input_data": {"topic": "lakes"}}) as r:
            frames, _ = _data(r)
        assert frames[-1]["type"] == "execution_completed" and frames[-1]["output"] == {"text": "about lakes", "n": None}
        completed = [f for f in frames if f["type"] == "node_completed"]
        assert [f["node_id"] for f in completed] == ["start", "gen", "end"]


def test_a_failing_workflow_reports_the_error(workspace, server, key):
    graph = json.loads(json.dumps(WORKFLOW))
    graph["nodes"][1]["model"] = "fake/fail"
    app = _app(workspace, "workflow", graph)
    with server.client(key) as c:
        body = c.post(f"/execute_workflow/{app['id']}/execute", json={"input_data": {"topic": "x"}}).json()
        assert body["status"] == "failed" and body["error"]["node_id"] == "gen"
        with c.stream("POST", f"/execute_workflow/{app['id']}/stream_execute", json={"input_data": {"topic": "x"}}) as r:
            frames, _ = _data(r)
        assert frames[-1]["type"] == "error" and "fake provider failure" in frames[-1]["message"]
    chat = json.loads(json.dumps(CHATFLOW))
    chat["nodes"][1]["model"] = "fake/fail"
    failing_chat = _app(workspace, "chatflow", chat, "failing")
    with server.client(key) as c:
        response = c.post(f"/execute_chatflow/{failing_chat['id']}/execute", json={"input_data": {"query": "x"}})
        assert response.status_code == 502 and "fake provider failure" in response.json()["detail"]


def test_a_stream_client_that_disconnects_cancels_the_execution(workspace, server, key):
    graph = json.loads(json.dumps(CHATFLOW))
    graph["nodes"][1]["model"] = "fake/slow-150"
    app = _app(workspace, "chatflow", graph)
    words = " ".join(f"w{i}" for i in range(60))
    with server.client(key) as c:
        with c.stream("POST", f"/execute_chatflow/{app['id']}/stream_execute", json={"input_data": {"query": words}}) as r:
            execution_id = None
            for line in r.iter_lines():
                if line.startswith("data:"):
                    frame = json.loads(line[5:])
                    execution_id = execution_id or frame.get("execution_id")
                    if frame["type"] == "token":
                        break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            run = c.get(f"/v1/runs/{execution_id}").json()
            if run["status"] != "running":
                break
            time.sleep(0.1)
    assert run["status"] == "cancelled" and run["outputs"]["partial"] is True


def test_async_execution_status_stream_and_cancel(workspace, server, key, other_workspace):
    app = _app(workspace, "workflow", WORKFLOW)
    with server.client(key) as c:
        accepted = c.post(f"/v1/executions/{app['id']}/async", json={"input_data": {"topic": "seas", "n": 2}})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        execution_id = body["execution_id"]
        assert body["status_url"] == f"/v1/executions/{execution_id}"
        assert body["stream_url"] == f"/v1/executions/{execution_id}/stream"
        assert body["cancel_url"] == f"/v1/executions/{execution_id}"
        with c.stream("GET", body["stream_url"]) as r:
            frames, ids = _data(r)
        assert frames[0]["type"] == "execution_started" and frames[-1]["type"] == "execution_completed"
        assert frames[-1]["output"] == {"text": "about seas", "n": 2}
        status = c.get(body["status_url"]).json()
        assert status["status"] == "COMPLETED" and status["progress"] == 1.0
        assert status["completed_nodes"] == status["total_nodes"] == 3 and status["current_node"] is None
        assert status["final_output"] == {"text": "about seas", "n": 2} and status["error_message"] is None
        assert status["retry_count"] == 0
        for field in ("created_at", "started_at", "completed_at"):
            assert status[field]
        # Resume from Last-Event-ID: exactly the events after it, no gap or duplicate.
        with c.stream("GET", body["stream_url"], headers={"Last-Event-ID": str(ids[2])}) as r:
            _, later = _data(r)
        assert later == ids[3:]
        assert c.delete(body["cancel_url"]).status_code == 409  # already completed
    with server.client(other_workspace.admin_key) as c:
        assert c.get(f"/v1/executions/{execution_id}").status_code == 404
        assert c.get(f"/v1/executions/{execution_id}/stream").status_code == 404
        assert c.delete(f"/v1/executions/{execution_id}").status_code == 404


def test_async_execution_can_be_followed_live_and_cancelled(workspace, server, key):
    graph = json.loads(json.dumps(WORKFLOW))
    graph["nodes"][1]["model"] = "fake/slow-100"
    graph["nodes"][1]["stream"] = True
    app = _app(workspace, "workflow", graph)
    words = " ".join(f"w{i}" for i in range(80))
    with server.client(key) as c:
        execution_id = c.post(f"/v1/executions/{app['id']}/async", json={"input_data": {"topic": words}}).json()["execution_id"]
        seen = []
        with c.stream("GET", f"/v1/executions/{execution_id}/stream") as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    if seen[-1]["type"] == "token" and len(seen) > 6:
                        break
        running = c.get(f"/v1/executions/{execution_id}").json()
        assert running["status"] == "RUNNING" and running["current_node"] == "gen"
        assert 0 < running["progress"] < 1 and running["completed_nodes"] == 1
        cancelled = c.delete(f"/v1/executions/{execution_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        assert c.get(f"/v1/executions/{execution_id}").json()["status"] == "CANCELLED"
        with c.stream("GET", f"/v1/executions/{execution_id}/stream") as r:
            frames, _ = _data(r)
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "cancelled"
        assert c.delete(f"/v1/executions/{execution_id}").status_code == 409


def test_async_execution_of_a_chatbot_is_refused(workspace, server, key):
    bot = workspace.create_chatbot(model="fake/echo")
    with server.client(key) as c:
        response = c.post(f"/v1/executions/{bot['id']}/async", json={"input_data": {"query": "x"}})
        assert response.status_code == 422
        assert c.post("/v1/executions/nope/async", json={"input_data": {}}).status_code == 404
