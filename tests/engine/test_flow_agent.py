"""The agent node in a workflow graph: a ReAct loop over any chat model, with tools that go through the same guards
as nodes (agent apps, native tool calls and the thread dialects: tests/threads)."""

from __future__ import annotations

from flow_support import chain, node, start


def _agent_app(flows, **config):
    nodes = [start("query"), node("agent", "agent", model="fake/echo", prompt="{{ start.query }}", **config),
             node("end", "end", outputs={"text": "{{ agent.text }}", "steps": "{{ agent.steps }}", "plan": "{{ agent.plan }}"})]
    return flows.create("workflow", nodes, chain("start", "agent", "end"))


def test_a_reply_without_an_action_is_the_final_answer(flows):
    run = flows.run(_agent_app(flows, tools=["http_get"]), {"query": "Final Answer: forty-two"})
    assert run["status"] == "succeeded"
    assert run["outputs"]["text"] == "forty-two" and len(run["outputs"]["steps"]) == 1
    assert run["usage"]["completion_tokens"] > 0


def test_tool_calls_go_through_the_ssrf_guard_and_are_observed(flows):
    question = "Thought: look it up\nAction: http_get\nAction Input: http://169.254.169.254/latest/meta-data/"
    run = flows.run(_agent_app(flows, tools=["http_get"], max_steps=3), {"query": question})
    assert run["status"] == "succeeded", run
    first = run["outputs"]["steps"][0]
    [called] = first["calls"]
    assert called["tool"] == "http_request" and called["arguments"] == {"url": "http://169.254.169.254/latest/meta-data/"}
    assert first["thought"] == "look it up" and called["result"] is None and called["error"]
    assert run["outputs"]["text"].startswith("Observation: error:")


def test_tools_not_given_to_the_agent_cannot_be_used(flows):
    question = "Action: knowledge_search\nAction Input: secrets"
    run = flows.run(_agent_app(flows, tools=["http_get"]), {"query": question})
    assert "not one of your tools" in run["outputs"]["steps"][0]["calls"][0]["error"]
    detail = flows.refused("workflow", [start("query"), node("a", "agent", model="fake/echo", tools=["shell"])], chain("start", "a"))
    assert "node 'a'" in detail and "unknown tool 'shell'" in detail


def test_actionplan_mode_plans_first(flows):
    run = flows.run(_agent_app(flows, mode="actionplan"), {"query": "plan a picnic"})
    assert run["status"] == "succeeded", run
    # fake/echo repeats the agent's own requests: a plan of one step, that step, then the answer request.
    assert run["outputs"]["plan"] == [run["outputs"]["plan"][0]] and run["outputs"]["plan"][0].startswith("Before")
    assert run["outputs"]["text"].startswith("Now write the final answer")


def test_a_retrieval_node_reports_missing_knowledge_bases_clearly(flows):
    nodes = [start("query"), node("kb", "retrieval", knowledge_bases=["nothing-here"], query="{{ start.query }}", top_k=2),
             node("out", "answer", text="{{ kb.text }}")]
    run = flows.run(flows.create("chatflow", nodes, chain("start", "kb", "out")), {"query": "hello"})
    assert run["status"] in ("succeeded", "failed")
    if run["status"] == "failed":
        assert run["error"]["node_id"] == "kb" and run["error"]["code"] != "internal_error"
