"""The run behaviour suite, once per deployment (`cluster`: embedded, or scale-out with processes A, B and a worker).

Whatever the mode, a run started through process A is followed live and stopped through
process B, resumes with Last-Event-ID without gap or duplicate, waits for a human and goes
on when answered through the other process, and a key's rate limit holds across processes.
"""

from __future__ import annotations

import threading
import time

from cluster import create_flow, run_status, sse_frames, wait_for

WORDS = " ".join(f"w{i}" for i in range(30))


def _chat_body(app: dict, stream: bool = True) -> dict:
    return {"model": app["slug"], "stream": stream, "messages": [{"role": "user", "content": WORDS}]}


def _follow(workspace, run_id: str, last_event_id: int | None = None, stop_after: int | None = None) -> list[dict]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    frames: list[dict] = []
    with workspace.client() as c, c.stream("GET", f"/v1/runs/{run_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in sse_frames(response.iter_lines()):
            frames.append({**frame, "status_then": None})
            if frame.get("event") == "token" and not any(f["status_then"] for f in frames):
                frames[-1]["status_then"] = run_status(c, run_id)
            if stop_after is not None and len(frames) >= stop_after:
                break
    return frames


def test_every_response_that_starts_a_run_names_it(cluster):
    on_a, _ = cluster.new_workspace()
    app = on_a.create_chatbot(model="fake/echo")
    flow = create_flow(on_a, "workflow", [
        {"id": "start", "type": "start", "inputs": [{"name": "text", "type": "string"}]},
        {"id": "end", "type": "end", "outputs": {"text": "{{ start.text }}"}}])
    with on_a.client() as c:
        calls = [
            c.post("/v1/chat/completions", json=_chat_body(app, stream=False)),
            c.post("/v1/runs", json={"app_id": app["id"], "inputs": {"message": "hi"}}),
            c.post("/v1/runs", json={"app_id": flow["id"], "inputs": {"text": "hi"}, "background": True}),
            c.post(f"/execute_workflow/{flow['id']}/execute", json={"input_data": {"text": "hi"}}),
            c.post(f"/v1/executions/{flow['id']}/async", json={"input_data": {"text": "hi"}}),
            c.post("/v1/chatbot/api/chat", json={"bot_id": app["id"], "message": "hi"}),
            c.post(f"/api/v1/prediction/{app['id']}", json={"question": "hi"}),
        ]
        with c.stream("POST", "/v1/chat/completions", json=_chat_body(app)) as streamed:
            streamed.read()
            calls.append(streamed)
        for response in calls:
            assert response.status_code in (200, 202), response.text
            run_id = response.headers.get("x-run-id")
            assert run_id, f"{response.request.url} answered without X-Run-Id"
            assert c.get(f"/v1/runs/{run_id}").status_code == 200


def test_a_streamed_chat_turn_started_on_a_is_followed_live_on_b(cluster):
    on_a, on_b = cluster.new_workspace()
    app = on_a.create_chatbot(model="fake/slow-60")
    with on_a.client() as c, c.stream("POST", "/v1/chat/completions", json=_chat_body(app)) as response:
        run_id = response.headers["x-run-id"]
        lines = response.iter_lines()
        next(line for line in lines if '"content":"w0 "' in line)
        followed = _follow(on_b, run_id)
        for _ in lines:  # A's own stream goes on to its end
            pass
    with on_a.client() as c:
        stored = c.get(f"/v1/runs/{run_id}/events").json()
    assert [int(f["id"]) for f in followed] == [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert [f["event"] for f in followed] == [e["type"] for e in stored]
    assert followed[-1]["event"] == "run_finished" and followed[-1]["data"]["status"] == "succeeded"
    assert "".join(f["data"]["text"] for f in followed if f["event"] == "token") == WORDS
    # Live: B saw tokens while the run was still going, not a replay of a finished run.
    assert next(f["status_then"] for f in followed if f["status_then"]) == "running"


def test_last_event_id_resumes_without_gap_or_duplicate(cluster):
    on_a, on_b = cluster.new_workspace()
    app = on_a.create_chatbot(model="fake/slow-40")
    with on_a.client() as c:
        started = c.post("/v1/runs", json={"app_id": app["id"], "inputs": {"message": WORDS}, "background": True})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    first = _follow(on_b, run_id, stop_after=6)
    rest = _follow(on_a, run_id, last_event_id=int(first[-1]["id"]))
    with on_b.client() as c:
        stored = c.get(f"/v1/runs/{run_id}/events").json()
    assert [int(f["id"]) for f in first + rest] == [e["seq"] for e in stored]
    assert rest[-1]["event"] == "run_finished"
    # After the end, a stream replays everything and closes.
    assert [int(f["id"]) for f in _follow(on_b, run_id)] == [e["seq"] for e in stored]


def test_a_streamed_chat_turn_on_a_is_stopped_through_b_within_a_second(cluster):
    on_a, on_b = cluster.new_workspace()
    app = on_a.create_chatbot(model="fake/slow-100")
    body = {"app_id": app["id"], "inputs": {"message": WORDS}}
    with on_a.client() as c, c.stream("POST", "/v1/runs?stream=true", json=body) as response:
        run_id = response.headers["x-run-id"]
        frames = sse_frames(response.iter_lines())
        next(f for f in frames if f.get("event") == "token")
        with on_b.client() as cb:
            asked = time.monotonic()
            stopped = cb.delete(f"/v1/runs/{run_id}")
            took = time.monotonic() - asked
        rest = list(frames)  # A's stream ends by itself, with the run's end
    assert stopped.status_code == 200, stopped.text
    assert took < 1.0, f"stop took {took:.2f} s"
    run = stopped.json()
    assert run["status"] == "cancelled" and run["outputs"]["partial"] is True
    assert run["outputs"]["text"].startswith("w0") and len(run["outputs"]["text"].split()) < 30
    assert rest[-1]["event"] == "run_finished" and rest[-1]["data"]["status"] == "cancelled"
    with on_a.client() as c:
        assert c.delete(f"/v1/runs/{run_id}").status_code == 409  # it has ended


def test_an_async_execution_is_streamed_on_b_and_cancelled_on_a(cluster):
    on_a, on_b = cluster.new_workspace()
    flow = create_flow(on_a, "workflow", [
        {"id": "start", "type": "start", "inputs": [{"name": "text", "type": "string"}]},
        {"id": "gen", "type": "llm", "model": "fake/slow-150", "prompt": "{{ start.text }}"},
        {"id": "end", "type": "end", "outputs": {"text": "{{ gen.text }}"}}])
    with on_a.client() as c:
        accepted = c.post(f"/v1/executions/{flow['id']}/async", json={"input_data": {"text": WORDS}})
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["execution_id"]
    frames: list[tuple[float, dict]] = []

    def follow_on_b() -> None:
        with on_b.client() as c, c.stream("GET", f"/v1/executions/{execution_id}/stream") as response:
            for frame in sse_frames(response.iter_lines()):
                frames.append((time.monotonic(), frame))

    reader = threading.Thread(target=follow_on_b, daemon=True)
    reader.start()
    wait_for(lambda: any(f["data"].get("type") == "token" for _, f in frames), timeout=20)
    with on_a.client() as c:
        asked = time.monotonic()
        cancelled = c.delete(f"/v1/executions/{execution_id}")
    reader.join(timeout=5)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED", cancelled.text
    assert not reader.is_alive(), "B's stream did not end after the cancel"
    ended_at, last = frames[-1]
    assert last["data"]["type"] == "error" and last["data"]["code"] == "cancelled"
    assert ended_at - asked < 1.0, f"B saw the cancel {ended_at - asked:.2f} s after it was asked"
    with on_b.client() as c:
        status = c.get(f"/v1/executions/{execution_id}").json()
    assert status["status"] == "CANCELLED"


def test_a_paused_run_started_on_a_is_answered_through_b(cluster):
    on_a, on_b = cluster.new_workspace()
    flow = create_flow(on_a, "workflow", [
        {"id": "start", "type": "start", "inputs": [{"name": "item", "type": "string"}]},
        {"id": "ask", "type": "human_input", "prompt": "Approve {{ start.item }}?"},
        {"id": "end", "type": "end", "outputs": {"answer": "{{ ask.text }}", "item": "{{ start.item }}"}}])
    with on_a.client() as c:
        started = c.post("/v1/runs", json={"app_id": flow["id"], "inputs": {"item": "a kettle"}, "background": True})
    run_id = started.json()["id"]
    with on_b.client() as cb:
        waiting = wait_for(lambda: (r := cb.get(f"/v1/runs/{run_id}").json())["status"] == "waiting" and r, 20)
        assert waiting["waiting"] == [{"node_id": "ask", "prompt": "Approve a kettle?"}]
        answered = cb.post(f"/v1/runs/{run_id}/input", json={"message": "yes", "background": True})
        assert answered.status_code == 202, answered.text
    with on_a.client() as c:
        done = wait_for(lambda: (r := c.get(f"/v1/runs/{run_id}").json())["status"] == "succeeded" and r, 20)
        events = c.get(f"/v1/runs/{run_id}/events").json()
    assert done["outputs"] == {"answer": "yes", "item": "a kettle"}
    started_nodes = [e["data"]["node_id"] for e in events if e["type"] == "node_started"]
    assert started_nodes.count("start") == 1  # resumed after the pause, not re-run


def test_a_keys_rate_limit_holds_across_processes(cluster):
    on_a, on_b = cluster.new_workspace()
    key = on_a.create_key("limited", scopes=["chatbot"], rate_limit=10)
    answers = []
    for i in range(11):
        server = (on_a if i % 2 == 0 else on_b).server
        with server.client(key) as c:
            answers.append(c.get("/v1/runs"))
    assert [r.status_code for r in answers[:10]] == [200] * 10
    assert answers[10].status_code == 429 and int(answers[10].headers["retry-after"]) >= 1
    assert answers[9].headers["x-ratelimit-remaining"] == "0"
