"""Chatflow apps through the WAYSCloud chatbot API (CONTRACTS §7), with plain HTTP and SSE parsing."""

from __future__ import annotations

import json

import pytest
from dialect_support import (
    app_runs,
    asking_chatflow,
    create_chatflow,
    latest_run,
    llm_chatflow,
    run_events,
    session_messages,
    wayscloud_stream,
)


CHAT = "/v1/chatbot/api/chat"
STREAM = "/v1/chatbot/api/chat/stream"


@pytest.fixture
def key(workspace) -> str:
    return workspace.create_key("wayscloud", ["chatbot"])


def test_a_chatflow_answers_in_the_native_session_and_records_its_trace(workspace, key):
    flow = llm_chatflow(workspace, model="fake/echo")
    with workspace.server.client(key) as c:
        response = c.post(CHAT, json={"bot_id": flow["slug"], "message": "What are your prices?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"session_id", "message_id", "response", "citations", "tokens_input", "tokens_output",
                         "response_time_ms"}
    assert body["response"] == "What are your prices?" and body["citations"] == []
    assert body["tokens_input"] == 4 and body["tokens_output"] == 4
    with workspace.client() as c:
        stored = c.get(f"/v1/sessions/{body['session_id']}/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "What are your prices?"),
                                                         ("assistant", "What are your prices?")]
    assert stored[1]["id"] == body["message_id"]
    run, _ = latest_run(workspace, flow["id"])
    assert run["source"] == "wayscloud" and run["status"] == "succeeded" and run["session_id"] == body["session_id"]
    events = run_events(workspace, run["id"])
    assert [e["data"]["node_id"] for e in events if e["type"] == "node_finished"] == ["start", "gen", "out"]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert "".join(e["data"]["text"] for e in events if e["type"] == "token") == "What are your prices?"


def test_a_chatflow_streams_meta_tokens_done(workspace, key):
    flow = llm_chatflow(workspace, model="fake/echo")
    status, content_type, events = wayscloud_stream(workspace, key, {"bot_id": flow["id"], "message": "Our prices start low",
                                                                     "session_id": "client-named"})
    assert status == 200 and content_type.startswith("text/event-stream")
    assert events[0] == {"type": "meta", "data": {"session_id": "client-named", "citations": []}}
    assert [e["type"] for e in events[1:-1]] == ["token"] * 4
    assert "".join(e["content"] for e in events[1:-1]) == "Our prices start low"
    assert events[-1] == {"type": "done"}
    assert session_messages(workspace, "client-named") == [("user", "Our prices start low"),
                                                           ("assistant", "Our prices start low")]


def test_a_fact_from_turn_one_is_remembered_in_turn_three(workspace, key):
    flow = llm_chatflow(workspace)
    with workspace.server.client(key) as c:
        session_id = c.post(CHAT, json={"bot_id": flow["slug"], "message": "my name is Ada"}).json()["session_id"]
        _, _, second = wayscloud_stream(workspace, key, {"bot_id": flow["slug"], "message": "I like tea",
                                                         "session_id": session_id})
        assert second[0]["data"]["session_id"] == session_id and second[-1] == {"type": "done"}
        third = c.post(CHAT, json={"bot_id": flow["id"], "message": "what is my name?", "session_id": session_id}).json()
        fresh = c.post(CHAT, json={"bot_id": flow["slug"], "message": "what is my name?"}).json()
    assert third["session_id"] == session_id
    assert "user: my name is Ada" in third["response"] and "user: I like tea" in third["response"]
    assert third["response"].rstrip().endswith("user: what is my name?")
    assert "Ada" not in fresh["response"]
    assert len(session_messages(workspace, session_id)) == 6
    assert [run["source"] for run in app_runs(workspace, flow["id"])] == ["wayscloud"] * 4


def test_a_paused_chatflow_asks_and_the_next_message_answers_it(workspace, key):
    flow = asking_chatflow(workspace)
    _, _, asked = wayscloud_stream(workspace, key, {"bot_id": flow["slug"], "message": "a shirt"})
    session_id = asked[0]["data"]["session_id"]
    assert asked == [{"type": "meta", "data": {"session_id": session_id, "citations": []}},
                     {"type": "token", "content": "Which size?"}, {"type": "done"}]
    (paused,) = app_runs(workspace, flow["id"])
    assert paused["status"] == "waiting"
    assert session_messages(workspace, session_id) == []  # the exchange is saved when the run ends
    with workspace.server.client(key) as c:
        answered = c.post(CHAT, json={"bot_id": flow["slug"], "message": "XL", "session_id": session_id}).json()
    assert answered["response"] == "You asked a shirt in size XL"
    (run,) = app_runs(workspace, flow["id"])  # the same run went on: no new one
    assert run["id"] == paused["id"] and run["status"] == "succeeded"
    with workspace.client() as c:
        stored = c.get(f"/v1/sessions/{session_id}/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "a shirt"), ("assistant", "You asked a shirt in size XL")]
    assert stored[1]["id"] == answered["message_id"]
    types = [e["type"] for e in run_events(workspace, run["id"])]
    assert types.index("human_input_required") < types.index("run_finished") == len(types) - 1
    # Answered, the conversation goes on with a new run, which asks again.
    with workspace.server.client(key) as c:
        again = c.post(CHAT, json={"bot_id": flow["slug"], "message": "a hat", "session_id": session_id}).json()
    assert again["response"] == "Which size?" and len(app_runs(workspace, flow["id"])) == 2


def test_a_question_after_part_of_the_reply_follows_it(workspace, key):
    flow = create_chatflow(
        workspace,
        {"id": "draft", "type": "answer", "text": "Draft ready."},
        {"id": "ask", "type": "human_input", "prompt": "Send it?"},
        {"id": "done", "type": "answer", "text": " Sent: {{ ask.text }}"},
    )
    _, _, asked = wayscloud_stream(workspace, key, {"bot_id": flow["slug"], "message": "write to Bob"})
    assert "".join(e["content"] for e in asked if e["type"] == "token") == "Draft ready.\n\nSend it?"
    with workspace.server.client(key) as c:
        reply = c.post(CHAT, json={"bot_id": flow["slug"], "message": "yes",
                                   "session_id": asked[0]["data"]["session_id"]}).json()
    assert reply["response"] == " Sent: yes"
    assert session_messages(workspace, reply["session_id"])[-1] == ("assistant", "Draft ready. Sent: yes")


@pytest.mark.parametrize("path", [CHAT, STREAM])
@pytest.mark.parametrize("message", ["", "   \n"])
def test_empty_message_is_422_and_writes_nothing(workspace, key, written, path, message):
    flow = llm_chatflow(workspace)
    with workspace.server.client(key) as c:
        session_id = c.post(CHAT, json={"bot_id": flow["slug"], "message": "hello"}).json()["session_id"]
        before = written()
        for session in (None, session_id):
            response = c.post(path, json={"bot_id": flow["slug"], "message": message, "session_id": session})
            assert response.status_code == 422
            assert response.json() == {"detail": "the message is empty"}
    assert written() == before


def test_a_run_cancelled_elsewhere_ends_the_stream_with_an_error(workspace, key):
    flow = llm_chatflow(workspace, model="fake/slow-100")
    body = {"bot_id": flow["slug"], "message": "one two three four five six seven eight nine ten"}
    with workspace.server.client(key) as c, c.stream("POST", STREAM, json=body, timeout=10) as response:
        lines = (json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:"))
        assert next(lines)["type"] == "meta" and next(lines)["type"] == "token"
        run, _ = latest_run(workspace, flow["id"])
        with workspace.client() as admin:
            assert admin.delete(f"/v1/runs/{run['id']}").json()["status"] == "cancelled"
        rest = list(lines)
    assert rest[-1] == {"type": "error", "content": "the run was cancelled"}
    assert not any(e["type"] == "done" for e in rest)
