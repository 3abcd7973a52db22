"""The http_request node goes through the SSRF-safe client; the code node is off unless enabled."""

from __future__ import annotations

import pytest
from flow_support import FakeApi, Flows, chain, node, start


def _fetch_app(flows, url_template: str):
    nodes = [start("repo"), node("fetch", "http_request", url=url_template),
             node("t", "template", text="{{ fetch.json.full_name }} has {{ fetch.json.stargazers_count }} stars"),
             node("end", "end", outputs={"summary": "{{ t.text }}", "status": "{{ fetch.status_code }}"})]
    return flows.create("workflow", nodes, chain("start", "fetch", "t", "end"))


@pytest.mark.parametrize("url", [
    "{{ start.repo }}/repos",  # the local API itself (loopback)
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/", "http://10.0.0.1/", "http://2130706433/", "http://0x7f000001/",
    "http://[::ffff:127.0.0.1]/", "file:///etc/passwd",
])
def test_http_request_refuses_private_and_odd_urls(flows, local_api, url):
    app = _fetch_app(flows, url)
    run = flows.run(app, {"repo": local_api})
    assert run["status"] == "failed", run
    assert run["error"]["node_id"] == "fetch" and run["error"]["code"] == "invalid_input"
    assert FakeApi.hits == []  # the request never left


def test_http_request_with_private_egress_allowed_calls_and_templates(start_server, local_api):
    server = start_server(HEADWATER_EGRESS_ALLOW_PRIVATE="true")
    flows = Flows(server.new_workspace())
    app = _fetch_app(flows, "{{ start.repo }}/repos/acme/rockets?x={{ 'a b' | urlencode }}")
    run = flows.run(app, {"repo": local_api})
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"summary": "acme/rockets has 42 stars", "status": 200}
    assert FakeApi.hits == ["/repos/acme/rockets?x=a%20b"]
    fetch = next(n for n in run["nodes"] if n["node_id"] == "fetch")
    assert fetch["inputs"]["url"].endswith("/repos/acme/rockets?x=a%20b") and fetch["inputs"]["method"] == "GET"
    flows.client.close()


def _code_app(flows):
    source = "def main(a, b):\n    return {'sum': a + b, 'env': len(__import__('os').environ)}\n"
    nodes = [node("start", "start", inputs=[{"name": "a", "type": "number"}, {"name": "b", "type": "number"}]),
             node("calc", "code", source=source, inputs={"a": "{{ start.a }}", "b": "{{ start.b }}"}, outputs=["sum", "env"]),
             node("end", "end", outputs={"sum": "{{ calc.sum }}", "env": "{{ calc.env }}"})]
    return flows.create("workflow", nodes, chain("start", "calc", "end"))


def test_the_code_node_is_disabled_unless_the_server_enables_it(flows):
    run = flows.run(_code_app(flows), {"a": 1, "b": 2})
    assert run["status"] == "failed" and run["error"]["node_id"] == "calc"
    assert "disabled" in run["error"]["message"]


def test_an_enabled_code_node_runs_in_a_separate_process_without_server_secrets(start_server):
    server = start_server(HEADWATER_CODE_NODE_ENABLED="true")
    flows = Flows(server.new_workspace())
    run = flows.run(_code_app(flows), {"a": 2, "b": 40})
    assert run["status"] == "succeeded", run
    assert run["outputs"]["sum"] == 42
    assert run["outputs"]["env"] < 5  # no HEADWATER_* (admin key, secrets) in the child's environment
    flows.client.close()
