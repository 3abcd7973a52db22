"""Templates are sandboxed, and text typed by users is data: it is never evaluated as a template."""

from __future__ import annotations

from flow_support import chain, node, start

ATTEMPTS = [
    "{{ 7*7 }}",
    "{% for i in range(3) %}x{% endfor %}",
    "{{ sys.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% raw %}{{ config }}{% endraw %}",
    "{{ self._TemplateReference__context }}",
]


def test_user_text_is_never_evaluated(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/echo", prompt="Q: {{ start.query }}"),
             node("t", "template", text="[{{ start.query }}] [{{ gen.text }}]"),
             node("out", "answer", text="{{ t.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "t", "out"))
    for attempt in ATTEMPTS:
        run = flows.run(app, {"query": attempt})
        assert run["status"] == "succeeded"
        assert run["outputs"]["text"] == f"[{attempt}] [Q: {attempt}]"


def test_human_answers_are_data_too(flows):
    nodes = [start("query"), node("ask", "human_input", prompt="say something"),
             node("end", "end", outputs={"said": "{{ ask.text }}", "typed": "{{ ask.text | length }}"})]
    app = flows.create("workflow", nodes, chain("start", "ask", "end"))
    paused = flows.run(app, {"query": "x"})
    run = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "{{ 6*7 }}"}).json()
    assert run["outputs"] == {"said": "{{ 6*7 }}", "typed": 9}


def test_the_sandbox_blocks_escapes_and_resource_bombs_in_app_templates(flows):
    refused = [start("q"), node("t", "template", text="{{ start.__class__.__mro__ }}")]
    assert "start.__class__" in flows.refused("workflow", refused, chain("start", "t"))
    escape = [start("q"), node("t", "template", text="{{ start.q.__class__.__mro__ }}{{ ''.__class__.__base__.__subclasses__() }}"),
              node("end", "end", outputs={"t": "{{ t.text }}"})]
    app = flows.create("workflow", escape, chain("start", "t", "end"))
    run = flows.run(app, {"q": "x"})
    assert "class" not in str(run["outputs"]) and "subclasses" not in str(run["outputs"])
    for bomb in ("{{ 'a' * 100000000 }}", "{{ 9 ** 99999999 }}",
                 "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"):
        nodes = [start("q"), node("t", "template", text=bomb), node("end", "end", outputs={"t": "{{ t.text }}"})]
        app = flows.create("workflow", nodes, chain("start", "t", "end"))
        run = flows.run(app, {"q": "x"})
        assert run["status"] == "failed", bomb
        assert run["error"]["code"] == "template_error" and run["error"]["node_id"] == "t"
    deep = [start("q"), node("t", "template", text="{% for a in start.q %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}")]
    assert "nest" in flows.refused("workflow", deep, chain("start", "t"))


def test_sys_variables_and_memory_reach_the_model(flows):
    nodes = [start("query"), node("gen", "llm", model="fake/context", system="session {{ sys.session_id }}",
                                  prompt="{{ sys.query }}", memory=True),
             node("out", "answer", text="{{ gen.text }}")]
    app = flows.create("chatflow", nodes, chain("start", "gen", "out"))
    first = flows.run(app, {"query": "my name is Ada"})
    second = flows.run(app, {"query": "what is my name?"}, session_id=first["session_id"])
    assert second["outputs"]["text"] == "\n".join([
        f"system: session {first['session_id']}",
        "user: my name is Ada",
        f"assistant: {first['outputs']['text']}",
        "user: what is my name?",
    ])
