"""FlowGen chats (CONTRACTS §5) over real HTTP and a real WebSocket client."""

from __future__ import annotations

import json
import time

import httpx
from threads_support import (
    call,
    chain,
    close_code,
    create_agent,
    frames_until,
    node,
    script,
    socket,
    step,
    wait_for,
)


def _chat(c: httpx.Client, app: dict, name: str = "chat") -> dict:
    response = c.post("/chats", json={"name": name, "from_type": "flow", "from_flow": app["slug"]})
    assert response.status_code == 201, response.text
    return response.json()


def _settled(c: httpx.Client, chat_id: str) -> dict:
    return wait_for(lambda: c.get(f"/chats/{chat_id}").json(), lambda chat: chat["status"] != "running")


def test_a_chat_runs_its_turns_in_the_background_one_at_a_time(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"])
        chat = _chat(c, app)
        assert chat["status"] == "ready" and chat["from_flow"] == app["id"] and chat["from_type"] == "flow"
        slow = script(step("", call("calculator", expression="1 + 1")), step("two " * 30, delay_ms=30))
        sent = c.post(f"/chats/{chat['id']}/messages", json={"message": slow})
        assert sent.status_code == 202 and sent.json()["status"] == "running"
        run_id = sent.headers["X-Run-Id"]
        again = c.post(f"/chats/{chat['id']}/messages", json={"message": "hello?"})
        assert again.status_code == 409 and "still running" in again.json()["detail"]
        assert c.post(f"/chats/{chat['id']}/input", json={"message": "x"}).status_code == 409
        assert _settled(c, chat["id"])["status"] == "completed"
        assert c.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
        messages = c.get(f"/chats/{chat['id']}/messages").json()
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"] == "two " * 29 + "two"
        # Once the turn is over, the next one may start.
        second = script(step("second answer"))
        assert c.post(f"/chats/{chat['id']}/messages", json={"message": second}).status_code == 202
        assert _settled(c, chat["id"])["status"] == "completed"
        assert [m["content"] for m in c.get(f"/chats/{chat['id']}/messages").json()][2:] == [second, "second answer"]
        assert [x["id"] for x in c.get("/chats").json()] == [chat["id"]]


def test_chats_take_chatbots_and_chatflows_but_not_workflows(workspace):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.client() as c:
        chat = _chat(c, bot)
        assert c.post(f"/chats/{chat['id']}/messages", json={"message": "hi bot"}).status_code == 202
        assert _settled(c, chat["id"])["status"] == "completed"
        assert [m["content"] for m in c.get(f"/chats/{chat['id']}/messages").json()] == ["hi bot", "hi bot"]
        flow = c.post("/v1/apps", json={"name": "W", "kind": "workflow", "graph": {
            "nodes": [node("start", "start"), node("end", "end", outputs={})], "edges": chain("start", "end")}}).json()
        refused = c.post("/chats", json={"name": "w", "from_type": "flow", "from_flow": flow["id"]})
        assert refused.status_code == 422
        assert c.post("/chats", json={"name": "w", "from_type": "agent", "from_flow": bot["id"]}).status_code == 422
        assert c.post("/chats", json={"from_flow": "no-such-app"}).status_code == 404


def test_an_agents_question_is_answered_through_input(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["human_input"])
        chat = _chat(c, app)
        c.post(f"/chats/{chat['id']}/messages", json={"message": script(
            step("", call("human_input", question="Which city?")), step("Booked for Oslo."))})
        assert _settled(c, chat["id"])["status"] == "wait_for_human_input"
        assert c.post(f"/chats/{chat['id']}/messages", json={"message": "hello?"}).status_code == 409
        assert c.post(f"/chats/{chat['id']}/input", json={"message": "Oslo"}).status_code == 202
        assert _settled(c, chat["id"])["status"] == "completed"
        messages = c.get(f"/chats/{chat['id']}/messages").json()
        assert [(m["role"], m["content"]) for m in messages][1:] == [
            ("assistant", "Which city?"), ("user", "Oslo"), ("assistant", "Booked for Oslo.")]
        assert messages[1]["question"] is True


def test_a_chatflows_human_input_node_is_answered_through_input(workspace):
    with workspace.client() as c:
        flow = c.post("/v1/apps", json={"name": "Ask", "kind": "chatflow", "graph": {"nodes": [
            node("start", "start"), node("ask", "human_input", prompt="Your name?"),
            node("out", "answer", text="Hello {{ ask.text }}")], "edges": chain("start", "ask", "out")}}).json()
        chat = _chat(c, flow)
        c.post(f"/chats/{chat['id']}/messages", json={"message": "hi"})
        assert _settled(c, chat["id"])["status"] == "wait_for_human_input"
        c.post(f"/chats/{chat['id']}/input", json={"message": "Ada"})
        assert _settled(c, chat["id"])["status"] == "completed"
        assert [m["content"] for m in c.get(f"/chats/{chat['id']}/messages").json()] == [
            "hi", "Your name?", "Ada", "Hello Ada"]


def test_the_websocket_pushes_messages_status_and_tokens_in_order(workspace, server):
    with workspace.client() as c:
        # Actionplan: its answer streams while it is written (a react agent sends it when its last call ends).
        app = create_agent(c, tools=["calculator"], mode="actionplan")
        chat = _chat(c, app)
        path = f"/chats/{chat['id']}/ws"
        with socket(server.base_url, path, workspace.admin_key) as first:
            assert json.loads(first.recv(timeout=10)) == {"type": "status", "status": "ready"}
            words = "slowly " * 20
            c.post(f"/chats/{chat['id']}/messages", json={"message": script(
                step("1. Add"), step("", call("calculator", expression="1 + 1")), step("added"),
                step(words.strip(), delay_ms=150))})
            head = frames_until(first, lambda f: f["type"] == "token")
            assert [f["type"] for f in head[:2]] == ["message", "status"]
            assert head[0]["message"]["role"] == "user" and head[1]["status"] == "running"
            # A second client, attached mid-run (authenticated by its first frame), gets the rest.
            with socket(server.base_url, path) as second:
                second.send(json.dumps({"type": "auth", "api_key": workspace.admin_key}))
                rest_first = frames_until(first, lambda f: f.get("status") == "completed")
                rest_second = frames_until(second, lambda f: f.get("status") == "completed")
    for frames in (head + rest_first, rest_second):
        kinds = [f["type"] for f in frames]
        assert kinds[-2:] == ["message", "status"], kinds
        assert frames[-2]["message"]["role"] == "assistant" and frames[-2]["message"]["content"] == words.strip()
    streamed = "".join(f["content"] for f in head + rest_first if f["type"] == "token")
    assert streamed == words.strip()
    assert rest_second[0] == {"type": "status", "status": "running"}
    later_tokens = "".join(f["content"] for f in rest_second if f["type"] == "token")
    assert streamed.endswith(later_tokens)


def test_the_websocket_refuses_callers_without_a_valid_key(workspace, server):
    other = server.new_workspace("other")
    with workspace.client() as c:
        chat = _chat(c, workspace.create_chatbot(model="fake/echo"))
    path = f"/chats/{chat['id']}/ws"
    started = time.monotonic()
    with socket(server.base_url, path) as silent:
        assert close_code(silent) == 4401 and time.monotonic() - started < 8
    for first_frame in (json.dumps({"type": "auth", "api_key": "hw_not_a_key"}), "hello", "{}"):
        with socket(server.base_url, path) as refused:
            refused.send(first_frame)
            assert close_code(refused) == 4401
    with socket(server.base_url, path, "hw_revoked_or_made_up") as wrong_key:
        assert close_code(wrong_key) == 4401
    with socket(server.base_url, path, other.admin_key) as other_workspace:
        assert close_code(other_workspace) == 4404


def test_deleting_a_chat_removes_its_messages_and_runs(workspace):
    with workspace.client() as c:
        chat = _chat(c, workspace.create_chatbot(model="fake/echo"))
        run_id = c.post(f"/chats/{chat['id']}/messages", json={"message": "forget me"}).headers["X-Run-Id"]
        _settled(c, chat["id"])
        assert c.delete(f"/chats/{chat['id']}").status_code == 200
        assert c.get(f"/chats/{chat['id']}").status_code == 404
        assert c.get(f"/chats/{chat['id']}/messages").status_code == 404
        assert c.get(f"/v1/runs/{run_id}").status_code == 404
        assert c.get(f"/v1/sessions/{chat['id']}/messages").status_code == 404


def test_another_workspace_sees_no_chat_on_any_route(workspace, server):
    other = server.new_workspace("other")
    with workspace.client() as c:
        chat = _chat(c, workspace.create_chatbot(model="fake/echo"))
    with other.client() as o:
        base = f"/chats/{chat['id']}"
        for method, path, body in [("GET", base, None), ("DELETE", base, None), ("GET", f"{base}/messages", None),
                                   ("POST", f"{base}/messages", {"message": "hi"}),
                                   ("POST", f"{base}/input", {"message": "hi"})]:
            response = o.request(method, path, json=body)
            assert response.status_code == 404 and response.json() == {"detail": "conversation not found"}, path
        assert o.get("/chats").json() == []
        assert o.post("/chats", json={"from_flow": chat["from_flow"]}).status_code == 404
    with workspace.client() as c:
        assert c.get(f"/chats/{chat['id']}").status_code == 200
