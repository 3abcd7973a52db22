"""The playground and workflows (CONTRACTS §6) over real HTTP: turns, progress, stops, polling, pauses, deletion."""

from __future__ import annotations

import threading
import time

import httpx
from threads_support import SlowApi, call, create_agent, events_of, script, step, wait_for

START = "/api/chat/playground/start"


def _start(c: httpx.Client, text: str, **params) -> dict:
    response = c.post(START, params=params, json={"input": text})
    assert response.status_code == 200, response.text
    return response.json()


def _status(c: httpx.Client, workflow_id: str) -> dict:
    return c.get(f"/api/workflows/{workflow_id}/status").json()


def _settled(c: httpx.Client, workflow_id: str) -> dict:
    return wait_for(lambda: _status(c, workflow_id), lambda s: s["status"] != "running")


def test_a_react_workflow_with_two_tool_calls_shows_messages_logs_and_stats(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"], mode="actionplan")
        workflow = _start(c, script(step("Adding.", call("calculator", expression="2 + 2")),
                                    step("Squaring.", call("calculator", expression="4 ** 2")), step("16.")),
                          appId=app["id"], workflowMode="React")
        assert workflow["mode"] == "React" and workflow["status"] == "running" and workflow["appId"] == app["id"]
        assert _settled(c, workflow["id"])["status"] == "completed"
        data = c.get(f"/api/chat/playground/{workflow['id']}/chatData").json()
        assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
        assert data["messages"][1]["content"] == "16."
        logs = [(log["type"], log.get("tool"), log.get("result")) for log in data["logs"]]
        assert logs == [("thought", None, None), ("tool_call", "calculator", "4"),
                        ("thought", None, None), ("tool_call", "calculator", "16")]
        [stats] = data["stats"]
        assert stats["toolCalls"] == 2 and stats["modelCalls"] == 3 and stats["totalTokens"] > 0
        every = data["messages"] + data["logs"] + data["stats"]
        assert all({"id", "_createdAt"} <= set(item) for item in every)
        got = c.get(f"/api/workflows/{workflow['id']}").json()
        assert got["messageIds"] == [m["id"] for m in data["messages"]]
        assert got["logIds"] == [log["id"] for log in data["logs"]]
        assert [w["id"] for w in c.get("/api/workflows/").json()] == [workflow["id"]]


def test_an_actionplan_workflow_moves_through_its_steps(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"])
        workflow = _start(c, script(
            step("1. Gather\n2. Compute\n3. Check", delay_ms=100),
            step("gathered", delay_ms=250), step("", call("calculator", expression="6 * 7"), delay_ms=250),
            step("computed", delay_ms=250), step("checked", delay_ms=250), step("The answer is 42.", delay_ms=50),
        ), appId=app["id"], workflowMode="Actionplan")
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = _status(c, workflow["id"])
            if (status["currentStep"], status["progress"]) not in seen:
                seen.append((status["currentStep"], status["progress"]))
            if status["status"] != "running":
                break
            time.sleep(0.03)
        assert status["status"] == "completed" and status["progress"] == 100
        progress = [p for _, p in seen if p is not None]
        assert progress == sorted(progress) and len(set(progress)) >= 3, seen
        assert {"Gather", "Compute", "Check"} <= {s for s, _ in seen}
        steps = [log for log in c.get(f"/api/workflows/{workflow['id']}/logs").json() if log["type"] == "step"]
        assert [(s["step"], s["status"]) for s in steps] == [
            (1, "running"), (1, "done"), (2, "running"), (2, "done"), (3, "running"), (3, "done")]


def test_a_stop_in_the_middle_of_a_model_call_keeps_the_partial_answer(workspace):
    with workspace.client() as c:
        app = create_agent(c, mode="actionplan")
        workflow = _start(c, script(step("1. Think"), step("thought"), step("word " * 200, delay_ms=50)),
                          appId=app["id"])
        run_id = workflow["runId"]
        wait_for(lambda: events_of(c, run_id, "token"), lambda tokens: len(tokens) >= 3)
        started = time.monotonic()
        stopped = c.post(f"/api/chat/playground/{workflow['id']}/stop")
        assert stopped.status_code == 200 and time.monotonic() - started < 1.0
        assert stopped.json()["status"] == "stopped" and "stoppedAt" in stopped.json()
        assert c.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"
        reply = c.get(f"/api/workflows/{workflow['id']}/messages").json()[-1]
        assert reply["role"] == "assistant" and reply["content"].startswith("word word")
        assert len(reply["content"]) < len("word " * 200)
        assert c.post(f"/api/chat/playground/{workflow['id']}/stop").status_code == 409


def test_a_stop_in_the_middle_of_a_tool_call_cancels_it(workspace, slow_api):
    with workspace.client() as c:
        app = create_agent(c, tools=["http_request"])
        workflow = _start(c, script(step("Fetching.", call("http_request", url=f"{slow_api}/slow?ms=20000")),
                                    step("never")), appId=app["id"])
        wait_for(lambda: list(SlowApi.calls), lambda calls: len(calls) == 1)
        started = time.monotonic()
        stopped = c.post(f"/api/chat/playground/{workflow['id']}/stop").json()
        assert time.monotonic() - started < 1.0 and stopped["status"] == "stopped"
        [cancelled] = [log for log in c.get(f"/api/workflows/{workflow['id']}/logs").json()
                       if log["type"] == "tool_call"]
        assert cancelled["error"] == "cancelled" and cancelled["level"] == "error"


def test_incremental_chat_data_never_repeats_nor_misses_an_item_under_concurrent_writes(workspace):
    """Three pollers (each journaling new logs as it reads) race the run's own writes."""
    many = [step(f"step {i}", call("calculator", expression=f"{i} + {i}"), call("calculator", expression=f"{i} * {i}"),
                 delay_ms=40)
            for i in range(12)]
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"], max_steps=20)
        workflow = _start(c, script(*many, step("done")), appId=app["id"])
        seen: list[list[dict]] = [[], [], []]

        def poll(index: int) -> None:
            cursor = None
            with workspace.client() as own:
                while True:
                    params = {"afterTimestamp": repr(cursor)} if cursor is not None else {}
                    data = own.get(f"/api/chat/playground/{workflow['id']}/chatData", params=params).json()
                    items = sorted(data["messages"] + data["logs"] + data["stats"] + data["documents"],
                                   key=lambda item: item["_createdAt"])
                    seen[index].extend(items)
                    if items:
                        cursor = items[-1]["_createdAt"]
                    if any(item.get("runId") and "toolCalls" in item for item in items):
                        return  # the turn's stats come last

        pollers = [threading.Thread(target=poll, args=(i,)) for i in range(3)]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join(timeout=60)
        full = c.get(f"/api/chat/playground/{workflow['id']}/chatData").json()
        everything = sorted(full["messages"] + full["logs"] + full["stats"], key=lambda item: item["_createdAt"])
        assert len(everything) == 2 + 12 * 3 + 1  # user, reply; a thought and two calls per step; stats
        for items in seen:
            ids = [item["id"] for item in items]
            assert len(ids) == len(set(ids)), "an item came twice"
            assert ids == [item["id"] for item in everything], "an item was missed or came out of order"
        stamps = [item["_createdAt"] for item in everything]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        # Items journaled together share their millisecond: the case the cursor must get right.
        assert len({int(s * 1000) for s in stamps}) < len(stamps)


def test_a_human_input_pause_is_answered_by_continuing_the_workflow(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["human_input"])
        workflow = _start(c, script(step("", call("human_input", question="Which date?")), step("Booked Tuesday.")),
                          appId=app["id"])
        assert _settled(c, workflow["id"])["status"] == "waiting"
        question = c.get(f"/api/workflows/{workflow['id']}/messages").json()[-1]
        assert question["role"] == "assistant" and question["content"] == "Which date?" and question["question"]
        continued = _start(c, "Tuesday", workflowId=workflow["id"])
        assert continued["id"] == workflow["id"] and continued["runId"] == workflow["runId"]
        assert _settled(c, workflow["id"])["status"] == "completed"
        messages = c.get(f"/api/workflows/{workflow['id']}/messages", params={"messageId": question["id"]}).json()
        assert [(m["role"], m["content"]) for m in messages] == [("user", "Tuesday"), ("assistant", "Booked Tuesday.")]
        # A finished workflow continues with a new turn on the same thread.
        again = _start(c, script(step("Anything else?")), workflowId=workflow["id"])
        assert again["runId"] != workflow["runId"] and again["id"] == workflow["id"]
        assert _settled(c, workflow["id"])["status"] == "completed"


def test_workflow_metadata_incremental_reads_and_deletions(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"])
        response = c.post(START, params={"appId": app["id"]}, json={
            "input": script(step("", call("calculator", expression="1 + 1")), step("2")),
            "files": [{"id": "f1", "name": "report.pdf", "type": "application/pdf"}, {"name": "notes.txt"}],
            "metadata": {"source": "test"}})
        workflow = response.json()
        assert workflow["metadata"] == {"source": "test"} and workflow["mode"] == "React"
        _settled(c, workflow["id"])
        updated = c.put(f"/api/workflows/{workflow['id']}", json={"name": "Sums", "tags": ["math"],
                                                                     "description": "adds"}).json()
        assert (updated["name"], updated["tags"], updated["description"]) == ("Sums", ["math"], "adds")
        assert c.put(f"/api/workflows/{workflow['id']}", json={"status": "completed"}).status_code == 422
        assert c.put(f"/api/workflows/{workflow['id']}", json={"mode": "React"}).status_code == 422
        status = _status(c, workflow["id"])
        assert set(status) == {"id", "status", "currentStep", "progress", "updatedAt"}
        logs = c.get(f"/api/workflows/{workflow['id']}/logs").json()
        assert c.get(f"/api/workflows/{workflow['id']}/logs", params={"logId": logs[0]["id"]}).json() == logs[1:]
        assert c.get(f"/api/workflows/{workflow['id']}/logs", params={"logId": "nope"}).status_code == 404
        documents = c.get(f"/api/chat/playground/{workflow['id']}/chatData").json()["documents"]
        assert [d["name"] for d in documents] == ["report.pdf", "notes.txt"] and documents[0]["id"] == "f1"
        user, reply = c.get(f"/api/workflows/{workflow['id']}/messages").json()
        removed = c.delete(f"/api/workflows/{workflow['id']}/messages/{user['id']}/files/f1")
        assert removed.status_code == 200 and removed.json()["fileId"] == "f1"
        assert c.delete(f"/api/workflows/{workflow['id']}/messages/{user['id']}/files/f1").status_code == 404
        data = c.get(f"/api/chat/playground/{workflow['id']}/chatData").json()
        assert [d["name"] for d in data["documents"]] == ["notes.txt"]
        assert [f["name"] for f in data["messages"][0]["files"]] == ["notes.txt"]
        assert c.delete(f"/api/workflows/{workflow['id']}/messages/{reply['id']}").status_code == 200
        assert [m["id"] for m in c.get(f"/api/workflows/{workflow['id']}/messages").json()] == [user["id"]]
        run_id = workflow["runId"]
        deleted = c.delete(f"/api/workflows/{workflow['id']}")
        assert deleted.status_code == 200 and deleted.json()["id"] == workflow["id"]
        for path in (f"/api/workflows/{workflow['id']}", f"/api/workflows/{workflow['id']}/logs",
                     f"/api/chat/playground/{workflow['id']}/chatData", f"/v1/runs/{run_id}",
                     f"/v1/runs/{run_id}/events", f"/v1/sessions/{workflow['id']}/messages"):
            assert c.get(path).status_code == 404, path


def test_without_an_app_the_workspace_default_agent_is_created_once(workspace):
    with workspace.client() as c:
        first = _start(c, "hello")
        second = _start(c, "hello again")
        assert first["appId"] == second["appId"] and first["mode"] == "Actionplan"
        app = c.get(f"/v1/apps/{first['appId']}").json()
        assert app["kind"] == "agent" and app["slug"] == "default-agent"
        assert app["config"]["model"] == "local/gemma-3-270m"
        bot = workspace.create_chatbot(model="fake/echo")
        assert c.post(START, params={"appId": bot["id"]}, json={"input": "x"}).status_code == 422
        assert c.post(START, params={"workflowMode": "Chaos"}, json={"input": "x"}).status_code == 422
        for workflow in (first, second):
            c.delete(f"/api/workflows/{workflow['id']}")


def test_another_workspace_sees_no_workflow_on_any_route(workspace, server):
    other = server.new_workspace("other")
    with workspace.client() as c:
        app = create_agent(c)
        workflow = _start(c, script(step("hi")), appId=app["id"])
        _settled(c, workflow["id"])
        message_id = c.get(f"/api/workflows/{workflow['id']}/messages").json()[0]["id"]
    wid = workflow["id"]
    routes = [("POST", f"{START}?workflowId={wid}", {"input": "x"}), ("POST", f"/api/chat/playground/{wid}/stop", None),
              ("GET", f"/api/chat/playground/{wid}/chatData", None), ("GET", f"/api/workflows/{wid}", None),
              ("PUT", f"/api/workflows/{wid}", {"name": "mine"}), ("GET", f"/api/workflows/{wid}/status", None),
              ("GET", f"/api/workflows/{wid}/logs", None), ("GET", f"/api/workflows/{wid}/messages", None),
              ("DELETE", f"/api/workflows/{wid}/messages/{message_id}/files/f", None),
              ("DELETE", f"/api/workflows/{wid}/messages/{message_id}", None), ("DELETE", f"/api/workflows/{wid}", None)]
    with other.client() as o:
        for method, path, body in routes:
            response = o.request(method, path, json=body)
            assert response.status_code == 404 and response.json() == {"detail": "conversation not found"}, path
        assert o.get("/api/workflows/").json() == []
        assert o.post(START, params={"appId": app["id"]}, json={"input": "x"}).status_code == 404
    with workspace.client() as c:
        assert len(c.get(f"/api/workflows/{wid}/messages").json()) == 2
