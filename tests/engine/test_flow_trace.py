"""Every run leaves a full node-by-node trace; streams and the stored trace agree event for event."""

from __future__ import annotations

from flow_support import chain, node, start, trace


def test_the_trace_shows_inputs_outputs_timings_and_usage(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/echo", system="be kind", prompt="Say: {{ start.query }}"),
             node("out", "answer", text="{{ gen.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "out"))
    run = flows.run(app, {"query": "hello there"})
    assert run["status"] == "succeeded" and run["kind"] == "chatflow"
    gen = trace(run, "gen")
    assert gen["inputs"]["prompt"] == "Say: hello there" and gen["inputs"]["system"] == "be kind"
    assert gen["outputs"]["text"] == "Say: hello there"
    assert gen["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert gen["elapsed_ms"] is not None and gen["started_at"] <= gen["finished_at"]
    assert run["usage"] == gen["usage"] and run["elapsed_ms"] is not None
    events = flows.events(run["id"])
    tokens = [e["data"]["text"] for e in events if e["type"] == "token"]
    assert "".join(tokens) == "Say: hello there"  # the llm's tokens are the reply's stream
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"


def test_a_stream_carries_exactly_the_persisted_events(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/echo", prompt="{{ start.query }}"),
             node("out", "answer", text="{{ gen.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "out"))
    words = " ".join(f"t{i}" for i in range(200))
    frames = flows.stream("/v1/runs?stream=true", {"app_id": app["id"], "inputs": {"query": words}})
    run_id = frames[0]["data"]["run_id"]
    stored = flows.events(run_id)  # read right after the stream ended: already complete
    assert [(int(f["id"]), f["event"]) for f in frames] == [(e["seq"], e["type"]) for e in stored]
    assert frames[-1]["event"] == "run_finished" and frames[-1]["data"]["outputs"]["text"] == words


def test_failures_are_recorded_with_an_error_event(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/fail", prompt="{{ start.query }}"),
             node("out", "answer", text="{{ gen.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "out"))
    run = flows.run(app, {"query": "x"})
    assert run["status"] == "failed" and run["error"]["code"] == "provider_error" and run["error"]["node_id"] == "gen"
    events = flows.events(run["id"])
    error = next(e for e in events if e["type"] == "error")
    assert error["data"]["node_id"] == "gen" and "fake provider failure" in error["data"]["message"]
    assert flows.client.get(f"/v1/sessions/{run['session_id']}/messages").json() == []  # no half exchange
    unknown = [start("query"), node("gen", "llm", model="nobody/none", prompt="x"), node("out", "answer", text="{{ gen.text }}")]
    run = flows.run(flows.create("chatflow", unknown, chain("start", "gen", "out")), {"query": "x"})
    assert run["status"] == "failed" and "nobody" in run["error"]["message"]


def test_chatbot_apps_run_through_the_same_route(flows, workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    run = flows.run(bot, {"message": "hi bot"})
    assert run["status"] == "succeeded" and run["outputs"]["text"] == "hi bot" and run["kind"] == "chatbot"
    accepted = flows.client.post("/v1/runs", json={"app_id": bot["id"], "inputs": {"message": "later"}, "background": True})
    assert accepted.status_code == 202
    assert flows.wait(accepted.json()["id"])["outputs"]["text"] == "later"
    frames = flows.stream("/v1/runs?stream=true", {"app_id": bot["id"], "inputs": {"message": "a b"}})
    assert [f["event"] for f in frames][-1] == "run_finished"
    bad = flows.client.post("/v1/runs", json={"app_id": bot["id"], "inputs": {}, "unknown": 1})
    assert bad.status_code == 422
