"""WAYSCloud chatbot API (CONTRACTS §7), driven with plain HTTP the way the seed's curl examples do."""

from __future__ import annotations

import pytest
from dialect_support import chatbot_trace, latest_run, llm_chatflow, session_messages, wayscloud_stream as stream_chat

from headwater.providers.fake import MIDSTREAM_TEXT

BOTS = "/v1/chatbot/api/bots"
CHAT = "/v1/chatbot/api/chat"
STREAM = "/v1/chatbot/api/chat/stream"


@pytest.fixture
def chatbot_key(workspace) -> str:
    return workspace.create_key("wayscloud", ["chatbot"])


def test_bots_lists_the_workspaces_chatbots_and_chatflows(workspace, other_workspace, chatbot_key):
    bot = workspace.create_chatbot(name="Support Bot", model="fake/echo")
    flow = llm_chatflow(workspace, name="Sales Flow")
    other_workspace.create_chatbot(name="Foreign Bot")
    with workspace.client() as c:
        assert c.post("/v1/apps", json={"name": "Agent", "kind": "agent", "config": {"mode": "react"}}).status_code == 201
        workflow = {"nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end", "outputs": {}}],
                    "edges": [{"source": "start", "target": "end"}]}
        assert c.post("/v1/apps", json={"name": "Job", "kind": "workflow", "graph": workflow}).status_code == 201
    with workspace.server.client(chatbot_key) as c:
        response = c.get(BOTS)
    assert response.status_code == 200
    assert response.json() == {"bots": [
        {"id": bot["id"], "slug": "support-bot", "name": "Support Bot", "description": ""},
        {"id": flow["id"], "slug": "sales-flow", "name": "Sales Flow", "description": ""},
    ]}


def test_chat_by_slug_or_id_answers_and_is_recorded(workspace, chatbot_key):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.server.client(chatbot_key) as c:
        by_slug = c.post(CHAT, json={"bot_id": bot["slug"], "message": "What are your prices?"})
        by_id = c.post(CHAT, json={"bot_id": bot["id"], "message": "hello"})
    assert by_slug.status_code == 200 and by_id.status_code == 200
    body = by_slug.json()
    assert set(body) == {"session_id", "message_id", "response", "citations", "tokens_input", "tokens_output",
                         "response_time_ms"}
    assert body["response"] == "What are your prices?" and by_id.json()["response"] == "hello"
    assert body["citations"] == []
    assert body["tokens_input"] == 4 and body["tokens_output"] == 4
    assert isinstance(body["response_time_ms"], int) and body["response_time_ms"] >= 0
    assert by_id.json()["session_id"] != body["session_id"]  # no session_id: a new conversation each time
    # The session is the native API's session; the reply's message_id is the stored assistant message.
    with workspace.client() as c:
        stored = c.get(f"/v1/sessions/{body['session_id']}/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "What are your prices?"),
                                                         ("assistant", "What are your prices?")]
    assert stored[1]["id"] == body["message_id"]
    run, types = latest_run(workspace, bot["id"])
    assert run["source"] == "wayscloud" and run["status"] == "succeeded"
    assert types == chatbot_trace(tokens=1)


def test_stream_sends_meta_tokens_done(workspace, chatbot_key):
    bot = workspace.create_chatbot(model="fake/echo")
    status, content_type, events = stream_chat(workspace, chatbot_key, {"bot_id": bot["slug"], "message": "Our prices start low"})
    assert status == 200 and content_type.startswith("text/event-stream")
    assert events[0]["type"] == "meta" and events[0]["data"]["citations"] == []
    session_id = events[0]["data"]["session_id"]
    assert [e["type"] for e in events[1:-1]] == ["token"] * 4
    assert "".join(e["content"] for e in events[1:-1]) == "Our prices start low"
    assert events[-1] == {"type": "done"}
    assert session_messages(workspace, session_id) == [("user", "Our prices start low"), ("assistant", "Our prices start low")]


def test_a_fact_from_turn_one_is_remembered_in_turn_three(workspace, chatbot_key):
    bot = workspace.create_chatbot(model="fake/context")
    with workspace.server.client(chatbot_key) as c:
        first = c.post(CHAT, json={"bot_id": bot["slug"], "message": "my name is Ada"}).json()
        session_id = first["session_id"]
        _, _, second = stream_chat(workspace, chatbot_key, {"bot_id": bot["slug"], "message": "I like tea",
                                                            "session_id": session_id})
        assert second[0]["data"]["session_id"] == session_id
        third = c.post(CHAT, json={"bot_id": bot["id"], "message": "what is my name?", "session_id": session_id}).json()
        fresh = c.post(CHAT, json={"bot_id": bot["slug"], "message": "what is my name?"}).json()
    assert third["session_id"] == session_id
    assert "user: my name is Ada" in third["response"] and "user: I like tea" in third["response"]
    assert third["response"].rstrip().endswith("user: what is my name?")
    assert "Ada" not in fresh["response"]
    assert len(session_messages(workspace, session_id)) == 6


def test_failure_mid_stream_is_an_error_event_and_writes_no_history(workspace, chatbot_key, app_of_kind):
    bot = app_of_kind("fake/fail-midstream")
    status, _, events = stream_chat(workspace, chatbot_key, {"bot_id": bot["slug"], "message": "a b c"})
    assert status == 200
    assert events[0]["type"] == "meta"
    assert "".join(e["content"] for e in events if e["type"] == "token") == MIDSTREAM_TEXT
    assert events[-1] == {"type": "error", "content": "fake provider failure mid-stream"}
    assert not any(e["type"] == "done" for e in events)
    assert session_messages(workspace, events[0]["data"]["session_id"]) == []
    run, types = latest_run(workspace, bot["id"])
    assert run["status"] == "failed" and run["error"]["code"] == "provider_error"
    assert types[-2:] == ["error", "run_finished"]


def test_failure_without_streaming_is_a_json_error(workspace, chatbot_key, written, app_of_kind):
    bot = app_of_kind("fake/fail")
    with workspace.server.client(chatbot_key) as c:
        response = c.post(CHAT, json={"bot_id": bot["slug"], "message": "hi"})
    assert response.status_code == 502
    assert response.json() == {"detail": "fake provider failure"}
    assert written()[2] == 0  # a run is recorded, but no half-written exchange


@pytest.mark.parametrize("path", [CHAT, STREAM])
@pytest.mark.parametrize("message", ["", "   \n"])
def test_empty_message_is_422_and_writes_nothing(workspace, chatbot_key, written, path, message):
    bot = workspace.create_chatbot(model="fake/echo")
    before = written()
    with workspace.server.client(chatbot_key) as c:
        response = c.post(path, json={"bot_id": bot["slug"], "message": message})
    assert response.status_code == 422
    assert response.json() == {"detail": "the message is empty"}
    assert written() == before


@pytest.mark.parametrize("body", [{"message": "hi"}, {"bot_id": "BOT"}, {"bot_id": "BOT", "message": 42}, {}])
def test_malformed_requests_are_422(workspace, chatbot_key, written, body):
    bot = workspace.create_chatbot(model="fake/echo")
    body = {k: bot["slug"] if v == "BOT" else v for k, v in body.items()}
    before = written()
    with workspace.server.client(chatbot_key) as c:
        for path in (CHAT, STREAM):
            response = c.post(path, json=body)
            assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    assert written() == before


def test_unknown_bot_is_404_on_both_chat_routes(workspace, chatbot_key):
    with workspace.server.client(chatbot_key) as c:
        for path in (CHAT, STREAM):
            response = c.post(path, json={"bot_id": "no-such-bot", "message": "hi"})
            assert response.status_code == 404 and response.json() == {"detail": "app not found"}


def test_another_workspaces_bot_is_404_on_every_route(workspace, other_workspace, chatbot_key, written):
    foreign = other_workspace.create_chatbot(model="fake/echo", name="Foreign")
    before = written()
    with workspace.server.client(chatbot_key) as c:
        assert foreign["id"] not in c.get(BOTS).text
        for path in (CHAT, STREAM):
            for name in (foreign["id"], foreign["slug"]):
                response = c.post(path, json={"bot_id": name, "message": "hi"})
                assert response.status_code == 404 and response.json() == {"detail": "app not found"}
    assert written() == before


def test_a_key_without_the_chatbot_scope_is_403(workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    knowledge_key = workspace.create_key("kb", ["knowledge"])
    with workspace.server.client(knowledge_key) as c:
        assert c.get(BOTS).status_code == 403
        for path in (CHAT, STREAM):
            response = c.post(path, json={"bot_id": bot["slug"], "message": "hi"})
            assert response.status_code == 403 and "chatbot" in response.json()["detail"]


def test_no_key_is_401_and_bearer_keys_work(workspace, chatbot_key):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.server.client() as anonymous:
        assert anonymous.get(BOTS).status_code == 401
        assert anonymous.post(CHAT, json={"bot_id": bot["slug"], "message": "hi"}).status_code == 401
    with workspace.server.client(Authorization=f"Bearer {chatbot_key}") as bearer:
        assert bearer.post(CHAT, json={"bot_id": bot["slug"], "message": "hi"}).json()["response"] == "hi"


def test_another_bots_session_cannot_be_continued(workspace, chatbot_key):
    first = workspace.create_chatbot(model="fake/context", name="First")
    second = workspace.create_chatbot(model="fake/context", name="Second")
    with workspace.server.client(chatbot_key) as c:
        session_id = c.post(CHAT, json={"bot_id": first["slug"], "message": "secret plan"}).json()["session_id"]
        response = c.post(CHAT, json={"bot_id": second["slug"], "message": "repeat", "session_id": session_id})
    assert response.status_code == 409 and "another app" in response.json()["detail"]


@pytest.mark.local_model
def test_local_model_through_wayscloud(workspace, chatbot_key, app_of_kind):
    bot = app_of_kind("local/gemma-3-270m", temperature=0.0, max_tokens=48)
    question = {"bot_id": bot["slug"], "message": "What is the capital of France?"}
    with workspace.server.client(chatbot_key) as c:
        reply = c.post(CHAT, json=question, timeout=180).json()
    assert "Paris" in reply["response"]
    assert reply["tokens_input"] > 5 and 0 < reply["tokens_output"] <= 48
    _, _, events = stream_chat(workspace, chatbot_key, question, timeout=180)
    assert events[0]["type"] == "meta" and events[-1] == {"type": "done"}
    tokens = [e["content"] for e in events if e["type"] == "token"]
    assert len(tokens) >= 2 and "Paris" in "".join(tokens)
