"""Time limits per node and per run, and stopping a run: DELETE or a client that goes away."""

from __future__ import annotations

import time

from flow_support import chain, node, sse_frames, start, trace

LONG = " ".join(f"w{i}" for i in range(60))


def _slow_app(flows, ms=200, **extra):
    nodes = [start("query"), node("gen", "llm", model=f"fake/slow-{ms}", prompt="{{ start.query }}", **extra),
             node("out", "answer", text="{{ gen.text }}")]
    return flows.create("chatflow", nodes, chain("start", "gen", "out"))


def test_a_node_over_its_timeout_fails_the_run_naming_it(flows):
    app = _slow_app(flows, ms=200, timeout=0.5)
    run = flows.run(app, {"query": LONG})
    assert run["status"] == "failed"
    assert run["error"]["code"] == "timeout" and run["error"]["node_id"] == "gen"
    gen = next(n for n in run["nodes"] if n["node_id"] == "gen")
    assert gen["status"] == "failed" and gen["error"]["code"] == "timeout"
    assert 0 < len(gen["outputs"]["text"].split()) < 60  # what it generated before the limit is kept
    types = [e["type"] for e in flows.events(run["id"])]
    assert types[-2:] == ["error", "run_finished"]


def test_a_run_over_the_graph_timeout_fails(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/slow-200", prompt="{{ start.query }}"),
             node("out", "answer", text="{{ gen.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "out"), timeout=0.5)
    run = flows.run(app, {"query": LONG})
    assert run["status"] == "failed" and run["error"]["code"] == "timeout"
    assert "run did not finish" in run["error"]["message"]


def test_delete_stops_a_running_graph_and_keeps_the_partial_output(flows):
    app = _slow_app(flows, ms=150)
    run_id = flows.start_background(app, {"query": LONG})
    flows.wait(run_id, until=lambda r: any(n["node_id"] == "gen" for n in r["nodes"]), timeout=20)
    time.sleep(0.5)  # let a few tokens through
    response = flows.client.delete(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "cancelled" and run["outputs"]["partial"] is True
    gen = next(n for n in run["nodes"] if n["node_id"] == "gen")
    assert gen["status"] == "cancelled"
    partial = gen["outputs"]["text"]
    assert partial.startswith("w0 ") and len(partial.split()) < 60
    # The model call really stopped: nothing was generated after the cancel.
    time.sleep(0.6)
    events = flows.events(run_id)
    assert events[-1]["type"] == "run_finished" and events[-1]["data"]["status"] == "cancelled"
    assert sum(1 for e in events if e["type"] == "token") == len(partial.split())
    assert trace(flows.get(run_id), "gen")["outputs"] == gen["outputs"]
    # Cancelling again, or a finished run, is a conflict.
    assert flows.client.delete(f"/v1/runs/{run_id}").status_code == 409


def test_a_streaming_client_that_disconnects_cancels_the_run(flows):
    app = _slow_app(flows, ms=150)
    frames = flows.stream("/v1/runs?stream=true", {"app_id": app["id"], "inputs": {"query": LONG}},
                          stop_after=lambda f: f.get("event") == "token" and f["data"]["text"].startswith("w1"))
    run_id = frames[0]["data"]["run_id"]
    run = flows.wait(run_id, timeout=10)
    assert run["status"] == "cancelled"
    assert run["outputs"]["text"].startswith("w0 w1") and run["outputs"]["partial"] is True
    assert len(run["outputs"]["text"].split()) < 60
    messages = flows.client.get(f"/v1/sessions/{run['session_id']}/messages").json()
    assert [m["role"] for m in messages] == ["user", "assistant"] and messages[1]["meta"]["partial"] is True


def test_a_streamed_run_deleted_elsewhere_ends_its_stream_with_run_finished(flows):
    app = _slow_app(flows, ms=100)
    with flows.client.stream("POST", "/v1/runs?stream=true", json={"app_id": app["id"], "inputs": {"query": LONG}},
                             timeout=10) as response:  # under the 15 s ping: a hang fails
        frames = sse_frames(response.iter_lines())
        run_id = next(frames)["data"]["run_id"]
        next(f for f in frames if f["event"] == "token")
        assert flows.client.delete(f"/v1/runs/{run_id}").status_code == 200
        rest = list(frames)  # the stream ends: it does not hang on the cancelled run
    assert rest[-1]["event"] == "run_finished" and rest[-1]["data"]["status"] == "cancelled"


def test_runs_of_another_workspace_cannot_be_cancelled_or_read(flows, other_flows):
    app = _slow_app(flows, ms=100)
    run_id = flows.start_background(app, {"query": "a b c d e f g h"})
    assert other_flows.client.delete(f"/v1/runs/{run_id}").status_code == 404
    assert other_flows.client.get(f"/v1/runs/{run_id}").status_code == 404
    assert other_flows.client.get(f"/v1/runs/{run_id}/events").status_code == 404
    assert flows.wait(run_id)["status"] == "succeeded"
