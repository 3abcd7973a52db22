"""Every call leaves a run record with its ordered event trace; disconnecting cancels."""

from __future__ import annotations

import threading
import time

import httpx


def test_a_chat_call_is_recorded_with_its_events(workspace):
    app = workspace.create_chatbot(model="fake/echo")
    with workspace.client() as c:
        reply = c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": "a b c"}]})
        run_id = reply.json()["id"].removeprefix("chatcmpl-")
        run = c.get(f"/v1/runs/{run_id}").json()
        events = c.get(f"/v1/runs/{run_id}/events").json()
        messages = c.get(f"/v1/sessions/{run['session_id']}/messages").json()
    assert run["status"] == "succeeded" and run["app_id"] == app["id"] and run["app_version"] == 1
    assert run["outputs"]["text"] == "a b c"
    assert run["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert run["elapsed_ms"] is not None and run["finished_at"] is not None
    # A chatbot runs as the graph its config implies: start → llm → answer.
    steps = [(e["type"], e["data"].get("node_id")) for e in events]
    assert steps == [("run_started", None), ("node_started", "start"), ("node_finished", "start"),
                     ("node_started", "llm"), ("token", "llm"), ("token", "llm"), ("token", "llm"),
                     ("node_finished", "llm"), ("node_started", "answer"), ("node_finished", "answer"),
                     ("run_finished", None)]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[7]["data"]["usage"]["completion_tokens"] == 3
    assert [(m["role"], m["content"]) for m in messages] == [("user", "a b c"), ("assistant", "a b c")]
    assert messages[1]["run_id"] == run_id


def test_client_disconnect_cancels_the_run_and_keeps_the_partial_answer(workspace, server):
    app = workspace.create_chatbot(model="fake/slow-200")
    words = " ".join(f"w{i}" for i in range(50))
    body = {"model": app["slug"], "stream": True, "messages": [{"role": "user", "content": words}]}
    with httpx.Client(base_url=server.base_url, headers={"X-API-Key": workspace.admin_key}, timeout=30) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            next(line for line in lines if '"content":"w0 "' in line)
    run_id = first.split('"id":"chatcmpl-')[1].split('"')[0]
    deadline = time.monotonic() + 5
    with workspace.client() as c:
        while time.monotonic() < deadline:
            run = c.get(f"/v1/runs/{run_id}").json()
            if run["status"] != "running":
                break
            time.sleep(0.1)
    assert run["status"] == "cancelled"
    assert run["outputs"]["partial"] is True
    assert run["outputs"]["text"].startswith("w0 ")
    assert len(run["outputs"]["text"].split()) < 50


def test_a_slow_unstreamed_call_is_listed_as_running_while_it_lasts(workspace):
    # A quick unstreamed turn writes its start with its outcome; a slow one must not stay invisible.
    app = workspace.create_chatbot(model="fake/slow-100")
    words = " ".join(f"w{i}" for i in range(15))
    replies: list[httpx.Response] = []

    def call() -> None:
        with workspace.client() as c:
            replies.append(c.post("/v1/chat/completions",
                                  json={"model": app["slug"], "messages": [{"role": "user", "content": words}]}))

    caller = threading.Thread(target=call)
    caller.start()
    seen_running = []
    with workspace.client() as c:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline and not seen_running:
            seen_running = [r for r in c.get("/v1/runs", params={"app_id": app["id"]}).json() if r["status"] == "running"]
            time.sleep(0.05)
    caller.join(timeout=30)
    assert seen_running, "the run was not recorded as running during the call"
    run_id = replies[0].json()["id"].removeprefix("chatcmpl-")
    assert seen_running[0]["id"] == run_id
    with workspace.client() as c:
        assert c.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
