"""Human in the loop: a run pauses, keeps its state, and resumes exactly where it stopped."""

from __future__ import annotations

from flow_support import chain, edge, node, node_started, start, trace


def _approval_nodes():
    nodes = [
        start("request"),
        node("draft", "llm", model="fake/echo", prompt="{{ start.request }}"),
        node("ask", "human_input", prompt="Approve: {{ draft.text }}?"),
        node("decide", "condition", cases=[{"id": "yes", "when": "{{ ask.text | lower == 'yes' }}"}]),
        node("ok", "end", outputs={"decision": "approved", "draft": "{{ draft.text }}", "said": "{{ ask.text }}"}),
        node("no", "end", outputs={"decision": "rejected", "said": "{{ ask.text }}"}),
    ]
    edges = [*chain("start", "draft", "ask", "decide"), edge("decide", "ok", "yes"), edge("decide", "no", "default")]
    return nodes, edges


def test_a_run_pauses_for_input_and_resumes_without_rerunning_finished_nodes(flows):
    app = flows.create("workflow", *_approval_nodes())
    paused = flows.run(app, {"request": "a new laptop"})
    assert paused["status"] == "waiting"
    assert paused["waiting"] == [{"node_id": "ask", "prompt": "Approve: a new laptop?"}]
    assert trace(paused, "ask")["status"] == "waiting"
    events = flows.events(paused["id"])
    assert events[-1]["type"] == "human_input_required"

    resumed = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "YES"})
    assert resumed.status_code == 200, resumed.text
    run = resumed.json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"decision": "approved", "draft": "a new laptop", "said": "YES"}
    events = flows.events(run["id"])
    assert node_started(events, "draft") == 1 and node_started(events, "start") == 1
    assert node_started(events, "ask") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert run["usage"]["completion_tokens"] == 3  # the model ran once, before the pause


def test_answering_a_run_that_is_not_waiting_is_a_conflict(flows, other_flows):
    app = flows.create("workflow", *_approval_nodes())
    paused = flows.run(app, {"request": "chairs"})
    assert other_flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes"}).status_code == 404
    assert flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "no"}).json()["outputs"]["decision"] == "rejected"
    again = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes"})
    assert again.status_code == 409
    simple = flows.create("workflow", [start("x"), node("end", "end", outputs={"x": "{{ start.x }}"})], chain("start", "end"))
    done = flows.run(simple, {"x": "1"})
    assert flows.client.post(f"/v1/runs/{done['id']}/input", json={"message": "hi"}).status_code == 409
    assert flows.client.post("/v1/runs/no-such-run/input", json={"message": "hi"}).status_code == 404


def test_a_waiting_run_can_be_answered_in_the_background_and_streamed(flows):
    app = flows.create("workflow", *_approval_nodes())
    paused = flows.run(app, {"request": "desk"})
    accepted = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes", "background": True})
    assert accepted.status_code == 202 and accepted.json() == {"id": paused["id"], "status": "queued"}
    assert flows.wait(paused["id"])["outputs"]["decision"] == "approved"
    again = flows.run(app, {"request": "lamp"})
    frames = flows.stream(f"/v1/runs/{again['id']}/input?stream=true", {"message": "no"})
    assert frames[-1]["event"] == "run_finished" and frames[-1]["data"]["outputs"]["decision"] == "rejected"
    assert [int(f["id"]) for f in frames] == sorted(int(f["id"]) for f in frames)


def test_a_waiting_run_can_be_cancelled(flows):
    app = flows.create("workflow", *_approval_nodes())
    paused = flows.run(app, {"request": "boat"})
    cancelled = flows.client.delete(f"/v1/runs/{paused['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes"}).status_code == 409


def test_a_chatflow_saves_the_exchange_only_when_the_run_ends(flows):
    nodes = [start("query"), node("ask", "human_input", prompt="Which size?"),
             node("out", "answer", text="You asked {{ start.query }} in size {{ ask.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "ask", "out"))
    paused = flows.run(app, {"query": "a shirt"})
    assert flows.client.get(f"/v1/sessions/{paused['session_id']}/messages").json() == []
    run = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "XL"}).json()
    messages = flows.client.get(f"/v1/sessions/{run['session_id']}/messages").json()
    assert [(m["role"], m["content"]) for m in messages] == [("user", "a shirt"), ("assistant", "You asked a shirt in size XL")]


def test_a_waiting_run_whose_app_was_deleted_fails_cleanly_when_answered(flows):
    app = flows.create("workflow", *_approval_nodes())
    paused = flows.run(app, {"request": "kayak"})
    assert flows.client.delete(f"/v1/apps/{app['id']}").status_code == 204
    answered = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes"})
    assert answered.status_code == 200, answered.text
    run = answered.json()
    assert run["status"] == "failed" and run["error"]["code"] == "app_missing"
    assert flows.events(run["id"])[-1]["type"] == "run_finished"
