"""Independent branches run at the same time; iterations run per item within their concurrency bound."""

from __future__ import annotations

from flow_support import chain, edge, node, start


def _in_flight_peak(events, node_ids=None, parent=None) -> int:
    running, peak = 0, 0
    for event in events:
        data = event["data"]
        if event["type"] not in ("node_started", "node_finished"):
            continue
        if node_ids is not None and data["node_id"] not in node_ids:
            continue
        if parent is not None and data.get("parent") != parent:
            continue
        running += 1 if event["type"] == "node_started" else -1
        peak = max(peak, running)
    return peak


def test_parallel_branches_overlap_and_join(flows):
    words = "one two three four"
    nodes = [
        start("query"),
        node("left", "llm", model="fake/slow-100", prompt="left {{ start.query }}"),
        node("right", "llm", model="fake/slow-100", prompt="right {{ start.query }}"),
        node("both", "template", text="{{ left.text }} | {{ right.text }}"),
        node("end", "end", outputs={"joined": "{{ both.text }}"}),
    ]
    edges = [edge("start", "left"), edge("start", "right"), edge("left", "both"), edge("right", "both"), edge("both", "end")]
    app = flows.create("workflow", nodes, edges)
    run = flows.run(app, {"query": words})
    assert run["status"] == "succeeded"
    assert run["outputs"]["joined"] == f"left {words} | right {words}"
    events = flows.events(run["id"])
    # Both model calls were in flight together: each started before the other finished.
    assert _in_flight_peak(events, {"left", "right"}) == 2
    # The join ran once, after both.
    order = [(e["type"], e["data"].get("node_id")) for e in events]
    assert order.index(("node_started", "both")) > order.index(("node_finished", "left"))
    assert order.index(("node_started", "both")) > order.index(("node_finished", "right"))


def test_iteration_runs_each_item_within_its_concurrency_bound(flows):
    inner = {
        "nodes": [node("shout", "llm", model="fake/slow-30", prompt="{{ item }} {{ index }}"),
                  node("fmt", "template", text="{{ index }}={{ shout.text | upper }}")],
        "edges": chain("shout", "fmt"),
    }
    nodes = [
        node("start", "start", inputs=[{"name": "words", "type": "array", "required": True}]),
        node("each", "iteration", items="{{ start.words }}", graph=inner, output="{{ fmt.text }}", concurrency=2),
        node("end", "end", outputs={"results": "{{ each.results }}", "count": "{{ each.count }}"}),
    ]
    app = flows.create("workflow", nodes, chain("start", "each", "end"))
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    run = flows.run(app, {"words": words})
    assert run["status"] == "succeeded", run
    assert run["outputs"]["results"] == [f"{i}={w.upper()} {i}" for i, w in enumerate(words)]
    assert run["outputs"]["count"] == 5
    events = flows.events(run["id"])
    per_item = [e for e in events if e["type"] == "node_started" and e["data"].get("parent") == "each"]
    assert sorted((e["data"]["index"], e["data"]["node_id"]) for e in per_item) == sorted(
        (i, n) for i in range(5) for n in ("shout", "fmt"))
    assert _in_flight_peak(events, {"shout"}, parent="each") == 2  # never more than the bound
    # Inner model usage counts toward the run.
    assert run["usage"]["completion_tokens"] == 10


def test_an_iteration_over_something_that_is_not_a_list_fails_the_run(flows):
    inner = {"nodes": [node("t", "template", text="{{ item }}")], "edges": []}
    nodes = [start("text"), node("each", "iteration", items="{{ start.text }}", graph=inner, output="{{ t.text }}"),
             node("end", "end", outputs={"r": "{{ each.results }}"})]
    app = flows.create("workflow", nodes, chain("start", "each", "end"))
    run = flows.run(app, {"text": "not a list"})
    assert run["status"] == "failed"
    assert run["error"]["node_id"] == "each" and "list" in run["error"]["message"]
    ok = flows.run(app, {"text": '["a", "b"]'})  # JSON text of a list is a list
    assert ok["outputs"] == {"r": ["a", "b"]}


def test_iteration_sub_graphs_cannot_hold_pausing_or_ending_nodes(flows):
    inner = {"nodes": [node("ask", "human_input")], "edges": []}
    nodes = [start("x"), node("each", "iteration", items="{{ [1] }}", graph=inner, output="{{ ask.text }}")]
    detail = flows.refused("workflow", nodes, chain("start", "each"))
    assert "node 'ask'" in detail and "iteration" in detail
