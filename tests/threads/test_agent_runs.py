"""Agent apps through the native runs API: ReAct and Actionplan, native tool calls and the text protocol,
parallel calls, bounds, a human-input pause, app calls, and a real OpenAI-compatible server's tool_calls."""

from __future__ import annotations

import pytest
from threads_support import SlowApi, call, create_agent, events_of, script, step


def _run(client, app, query: str, **body):
    response = client.post("/v1/runs", json={"app_id": app["id"], "inputs": {"query": query}, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_react_with_two_tool_calls_records_every_thought_call_and_model_call(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator"])
        run = _run(c, app, script(step("First the sum.", call("calculator", expression="2 + 3")),
                                  step("Now the product.", call("calculator", expression="(2 + 3) * 7")),
                                  step("It is 35.")))
        assert run["status"] == "succeeded" and run["kind"] == "agent", run
        assert run["outputs"]["text"] == "It is 35."
        calls = events_of(c, run["id"], "tool_call")
        assert [(e["data"]["tool"], e["data"]["arguments"], e["data"]["result"]) for e in calls] == [
            ("calculator", {"expression": "2 + 3"}, "5"), ("calculator", {"expression": "(2 + 3) * 7"}, "35")]
        assert all(e["data"]["elapsed_ms"] >= 0 and "error" not in e["data"] for e in calls)
        assert [e["data"]["text"] for e in events_of(c, run["id"], "agent_thought")] == [
            "First the sum.", "Now the product."]
        model_calls = events_of(c, run["id"], "model_call")
        assert [e["data"]["tool_calls"] for e in model_calls] == [1, 1, 0]
        assert all(e["data"]["usage"]["completion_tokens"] > 0 for e in model_calls)
        assert run["usage"]["total_tokens"] == sum(e["data"]["usage"]["total_tokens"] for e in model_calls)
        agent = next(n for n in run["nodes"] if n["node_id"] == "agent")
        assert agent["inputs"]["native_tools"] is True and len(agent["outputs"]["steps"]) == 3


def test_parallel_tool_calls_run_at_the_same_time(workspace, slow_api):
    with workspace.client() as c:
        app = create_agent(c, tools=["http_request"])
        run = _run(c, app, script(step("Both at once.", call("http_request", url=f"{slow_api}/slow?ms=700&n=1"),
                                       call("http_request", url=f"{slow_api}/slow?ms=700&n=2")),
                                  step("Both answered.")))
        assert run["status"] == "succeeded", run
        results = [e["data"] for e in events_of(c, run["id"], "tool_call")]
        assert len(results) == 2 and all(r["result"].startswith("HTTP 200") for r in results)
        (_, came_1, went_1), (_, came_2, went_2) = sorted(SlowApi.calls, key=lambda item: item[1])
        assert came_2 < went_1, "the second call started only after the first had finished"


def test_models_without_tool_calling_speak_the_text_protocol(workspace):
    with workspace.client() as c:
        app = create_agent(c, model="scripted/text", tools=["calculator"])
        run = _run(c, app, script(step("I add.", call("calculator", expression="40 + 2")), step("Final Answer: 42")))
        assert run["outputs"]["text"] == "42", run
        [tool_call] = events_of(c, run["id"], "tool_call")
        assert tool_call["data"]["arguments"] == {"expression": "40 + 2"} and tool_call["data"]["result"] == "42"
        assert next(n for n in run["nodes"] if n["node_id"] == "agent")["inputs"]["native_tools"] is False


def test_actionplan_plans_runs_each_step_with_tools_then_answers(workspace):
    with workspace.client() as c:
        app = create_agent(c, mode="actionplan", tools=["calculator"])
        run = _run(c, app, script(
            step("1. Add the numbers\n2. Double the sum\n3. Report it"),
            step("", call("calculator", expression="1 + 2")), step("The sum is 3."),
            step("", call("calculator", expression="3 * 2")), step("Doubled: 6."),
            step("Reported."),
            step("The answer is 6."),
        ))
        assert run["status"] == "succeeded", run
        agent = next(n for n in run["nodes"] if n["node_id"] == "agent")
        assert run["outputs"]["text"] == "The answer is 6." and agent["outputs"]["mode"] == "actionplan"
        [plan] = events_of(c, run["id"], "agent_plan")
        assert plan["data"]["steps"] == ["Add the numbers", "Double the sum", "Report it"]
        progress = [(e["data"]["index"], e["data"]["status"]) for e in events_of(c, run["id"], "agent_step")]
        assert progress == [(1, "running"), (1, "done"), (2, "running"), (2, "done"), (3, "running"), (3, "done")]
        assert [e["data"]["result"] for e in events_of(c, run["id"], "tool_call")] == ["3", "6"]
        # The answer streams as the reply.
        tokens = "".join(e["data"]["text"] for e in events_of(c, run["id"], "token"))
        assert tokens == "The answer is 6."


def test_steps_and_tokens_bound_the_agent(workspace):
    forever = [step("again", call("calculator", expression="1 + 1")) for _ in range(10)]
    with workspace.client() as c:
        bounded = _run(c, create_agent(c, tools=["calculator"], max_steps=2), script(*forever))
        assert bounded["outputs"]["text"] == "Stopped after 2 steps without a final answer."
        assert len(events_of(c, bounded["id"], "tool_call")) == 2
        budget = _run(c, create_agent(c, tools=["calculator"], max_tokens=100), script(*forever) + " word" * 60)
        assert budget["outputs"]["text"] == "Stopped: the token budget ran out before a final answer."
        assert budget["usage"]["total_tokens"] >= 100


def test_a_human_input_pause_resumes_where_the_agent_stopped(workspace):
    with workspace.client() as c:
        app = create_agent(c, tools=["calculator", "human_input"])
        started = c.post("/v1/runs", json={"app_id": app["id"], "inputs": {"query": script(
            step("Sum first.", call("calculator", expression="20 + 1")),
            step("", call("human_input", question="Multiply by what?")),
            step("", call("calculator", expression="21 * 2")),
            step("It is 42."))}}).json()
        assert started["status"] == "waiting" and started["waiting"] == [
            {"node_id": "agent", "prompt": "Multiply by what?"}]
        answered = c.post(f"/v1/runs/{started['id']}/input", json={"message": "two"})
        assert answered.status_code == 200, answered.text
        run = answered.json()
        assert run["status"] == "succeeded" and run["outputs"]["text"] == "It is 42."
        calls = [(e["data"]["tool"], e["data"].get("result")) for e in events_of(c, run["id"], "tool_call")]
        assert calls == [("calculator", "21"), ("human_input", "two"), ("calculator", "42")]
        # Nothing before the pause ran again: three model calls before it, two after.
        assert len(events_of(c, run["id"], "model_call")) == 4


def test_run_app_calls_another_app_of_the_workspace_but_not_itself(workspace):
    bot = workspace.create_chatbot(model="fake/echo", name="Echo")
    with workspace.client() as c:
        app = create_agent(c, tools=["run_app"], name="Caller")
        run = _run(c, app, script(step("", call("run_app", app=bot["slug"], input="ping")),
                                  step("", call("run_app", app="caller", input="loop")),
                                  step("", call("run_app", app="no-such-app", input="x")),
                                  step("done")))
        results = [(e["data"].get("result"), e["data"].get("error")) for e in events_of(c, run["id"], "tool_call")]
        assert results[0] == ("ping", None)
        assert results[1][1] == "an app cannot call itself" and results[2][1] == "app not found"


def test_disabled_or_unknown_tools_are_refused(workspace):
    with workspace.client() as c:
        refused = c.post("/v1/apps", json={"name": "Bad", "kind": "agent", "config": {"tools": ["shell"]}})
        assert refused.status_code == 422 and "unknown tool 'shell'" in refused.json()["detail"]
        graph = c.post("/v1/apps", json={"name": "Bad", "kind": "agent", "config": {}, "graph": {"nodes": []}})
        assert graph.status_code == 422
        # The code node is off on this server: the tool is not offered, and a call to it is an error to observe.
        app = create_agent(c, tools=["code", "calculator"])
        run = _run(c, app, script(step("", call("code", source="def main():\n    return {}")), step("ok")))
        [failed] = events_of(c, run["id"], "tool_call")
        assert failed["data"]["error"].startswith("'code' is not one of your tools")


@pytest.mark.parametrize("mode", ["react", "actionplan"])
def test_an_openai_compatible_server_drives_the_agent_with_tool_calls(workspace, openai_mock, mode):
    with workspace.client() as c:
        provider = c.post("/v1/providers", json={"name": "mockai", "type": "openai",
                                                 "base_url": f"{openai_mock.base_url}/v1", "api_key": "k"})
        assert provider.status_code in (201, 409), provider.text
        app = create_agent(c, model="mockai/gpt-mock", tools=["calculator"], mode=mode)
        entries = [step("Two at once.", call("calculator", expression="6 * 7"),
                        call("calculator", expression="2 ** 5")), step("42 and 32.")]
        if mode == "actionplan":
            entries = [step("1. Compute both"), *entries, step("Both computed: 42 and 32.")]
        run = _run(c, app, script(*entries))
        assert run["status"] == "succeeded", run
        assert [e["data"]["result"] for e in events_of(c, run["id"], "tool_call")] == ["42", "32"]
        assert run["outputs"]["text"].endswith("42 and 32.")
        sent = openai_mock.state.requests[-1]
        assert any(m.get("role") == "tool" for m in sent["messages"]) or mode == "actionplan"
