"""Branches: condition and classifier pick one path; the others are skipped; joins take what ran."""

from __future__ import annotations

from flow_support import chain, edge, node, node_started, start


def _routing_graph():
    nodes = [
        start("query"),
        node("short", "condition", cases=[{"id": "yes", "when": "{{ start.query | length < 4 }}"}]),
        node("topic", "classifier", model="fake/echo", input="{{ start.query }}", classes=[
            {"id": "billing", "label": "Billing"}, {"id": "technical", "label": "Technical"}]),
        node("billing", "template", text="billing desk: {{ start.query }}"),
        node("technical", "template", text="tech desk: {{ start.query }}"),
        node("general", "template", text="general desk"),
        node("too_short", "template", text="tell me more"),
        node("joined", "variable", aggregate={"text": ["{{ billing.text }}", "{{ technical.text }}",
                                                        "{{ general.text }}", "{{ too_short.text }}"]}),
        node("out", "answer", text="{{ joined.text }} ({{ topic.class }})"),
    ]
    edges = [
        edge("start", "short"), edge("short", "too_short", "yes"), edge("short", "topic", "default"),
        edge("topic", "billing", "billing"), edge("topic", "technical", "technical"), edge("topic", "general", "default"),
        *[edge(n, "joined") for n in ("billing", "technical", "general", "too_short")], edge("joined", "out"),
    ]
    return nodes, edges


def test_condition_and_classifier_choose_the_path(flows):
    app = flows.create("chatflow", *_routing_graph())
    cases = {
        "hi": ("tell me more ()", "too_short"),
        "my invoice is wrong, billing please": ("billing desk: my invoice is wrong, billing please (billing)", "billing"),
        "a technical crash": ("tech desk: a technical crash (technical)", "technical"),
        "where is the cafeteria": ("general desk (default)", "general"),
    }
    for query, (reply, taken) in cases.items():
        run = flows.run(app, {"query": query})
        assert run["status"] == "succeeded", run
        assert run["outputs"]["text"] == reply
        events = flows.events(run["id"])
        ran = {e["data"]["node_id"] for e in events if e["type"] == "node_started"}
        assert taken in ran
        assert not ran & ({"billing", "technical", "general", "too_short"} - {taken})  # skipped, never started
        for node_id in ran:
            assert node_started(events, node_id) == 1


def test_classifier_branch_and_usage_are_in_the_trace(flows):
    app = flows.create("chatflow", *_routing_graph())
    run = flows.run(app, {"query": "billing question about my plan"})
    classifier = next(n for n in run["nodes"] if n["node_id"] == "topic")
    assert classifier["branch"] == "billing" and classifier["outputs"]["class"] == "billing"
    assert classifier["usage"]["completion_tokens"] > 0
    assert run["usage"]["total_tokens"] == classifier["usage"]["total_tokens"]


def test_a_condition_reads_typed_inputs(flows):
    nodes = [start(amount="number"), node("big", "condition", cases=[{"id": "yes", "when": "{{ start.amount > 100 }}"}]),
             node("yes", "end", outputs={"size": "large", "double": "{{ start.amount * 2 }}"}),
             node("no", "end", outputs={"size": "small"})]
    app = flows.create("workflow", nodes, [edge("start", "big"), edge("big", "yes", "yes"), edge("big", "no", "default")])
    assert flows.run(app, {"amount": 500})["outputs"] == {"size": "large", "double": 1000}
    assert flows.run(app, {"amount": "7"})["outputs"] == {"size": "small"}
    refused = flows.client.post("/v1/runs", json={"app_id": app["id"], "inputs": {"amount": "lots"}})
    assert refused.status_code == 422 and "amount" in refused.json()["detail"]
    missing = flows.client.post("/v1/runs", json={"app_id": app["id"], "inputs": {}})
    assert missing.status_code == 422 and "required" in missing.json()["detail"]
