"""Saving a graph: every kind of broken graph is refused with a 422 that names the node."""

from __future__ import annotations

from flow_support import chain, edge, node, start


def _ok_nodes():
    return [start("query"), node("say", "template", text="{{ start.query }}"), node("out", "answer", text="{{ say.text }}")]


def test_a_valid_graph_is_saved_as_a_new_version(flows):
    app = flows.create("chatflow", _ok_nodes(), chain("start", "say", "out"))
    assert app["kind"] == "chatflow" and app["version"] == 1
    updated = flows.client.put(f"/v1/apps/{app['id']}", json={"graph": {"nodes": _ok_nodes(), "edges": chain("start", "say", "out")}})
    assert updated.status_code == 200 and updated.json()["version"] == 2


def test_unknown_node_types_are_refused_and_never_imported(flows):
    for type_name in ("llmm", "os.system", "headwater.engine.nodes.code", "__import__", "../start"):
        nodes = [*_ok_nodes(), node("evil", type_name)]
        detail = flows.refused("chatflow", nodes, [*chain("start", "say", "out"), edge("say", "evil")])
        assert "node 'evil'" in detail and "unknown node type" in detail


def test_dangling_edges_are_refused(flows):
    detail = flows.refused("chatflow", _ok_nodes(), [*chain("start", "say", "out"), edge("out", "ghost")])
    assert "'ghost'" in detail and "not a node" in detail


def test_unreachable_nodes_are_refused(flows):
    nodes = [*_ok_nodes(), node("island", "template", text="alone")]
    detail = flows.refused("chatflow", nodes, chain("start", "say", "out"))
    assert "node 'island'" in detail and "not reachable" in detail


def test_cycles_are_refused(flows):
    nodes = [*_ok_nodes(), node("back", "template", text="x")]
    detail = flows.refused("chatflow", nodes, [*chain("start", "say", "back", "say"), edge("say", "out")])
    assert "cycle" in detail and ("node 'say'" in detail or "node 'back'" in detail)
    detail = flows.refused("chatflow", _ok_nodes(), [*chain("start", "say", "out"), edge("say", "say")])
    assert "node 'say'" in detail and "cycle" in detail


def test_templates_may_only_read_earlier_nodes_and_their_real_outputs(flows):
    unknown = _ok_nodes()
    unknown[1]["text"] = "{{ nobody.text }}"
    assert "node 'say'" in (d := flows.refused("chatflow", unknown, chain("start", "say", "out"))) and "'nobody'" in d
    later = _ok_nodes()
    later[1]["text"] = "{{ out.text }}"
    detail = flows.refused("chatflow", later, chain("start", "say", "out"))
    assert "node 'say'" in detail and "does not run before" in detail
    typo = _ok_nodes()
    typo[2]["text"] = "{{ say.txt }}"
    detail = flows.refused("chatflow", typo, chain("start", "say", "out"))
    assert "node 'out'" in detail and "say.txt" in detail
    sys_typo = _ok_nodes()
    sys_typo[1]["text"] = "{{ sys.secrets }}"
    assert "sys.secrets" in flows.refused("chatflow", sys_typo, chain("start", "say", "out"))
    escape = _ok_nodes()
    escape[1]["text"] = "{{ cycler.__init__.__globals__ }}"
    assert "'cycler'" in flows.refused("chatflow", escape, chain("start", "say", "out"))


def test_configs_are_typed_and_branches_checked(flows):
    extra = _ok_nodes()
    extra[1]["colour"] = "red"
    detail = flows.refused("chatflow", extra, chain("start", "say", "out"))
    assert "node 'say'" in detail and "colour" in detail
    nodes = [start("query"), node("check", "condition", cases=[{"id": "yes", "when": "{{ start.query }}"}]),
             node("a", "answer", text="a"), node("b", "answer", text="b")]
    detail = flows.refused("chatflow", nodes, [edge("start", "check"), edge("check", "a"), edge("check", "b", "default")])
    assert "node 'check'" in detail and "branch" in detail
    detail = flows.refused("chatflow", nodes, [edge("start", "check"), edge("check", "a", "maybe"), edge("check", "b", "default")])
    assert "'maybe'" in detail
    syntax = _ok_nodes()
    syntax[1]["text"] = "{{ start.query "
    assert "syntax" in flows.refused("chatflow", syntax, chain("start", "say", "out"))


def test_a_bad_graph_does_not_replace_the_saved_one(flows):
    app = flows.create("workflow", [start("x"), node("end", "end", outputs={"x": "{{ start.x }}"})], chain("start", "end"))
    response = flows.client.put(f"/v1/apps/{app['id']}", json={"graph": {"nodes": [start("x")], "edges": [edge("start", "nowhere")]}})
    assert response.status_code == 422
    assert flows.client.get(f"/v1/apps/{app['id']}").json()["version"] == 1
    assert flows.refused("workflow", [node("end", "end")], []).startswith("a workflow graph needs exactly one start")
