"""What operators see: /metrics, one JSON log line per request, run traces over OTLP, and never a secret.

One server of its own, with JSON logs and its traces sent to a collector in this
process; its model provider is a mock on 127.0.0.1 called with a known key.
Every dialect is driven through it (answers, failures, retries, refused
credentials), then every log line and every exported span is searched for the
secrets it was given: API keys, the provider key, the admin password.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid

import httpx
import pytest
from dialect_calls import DIALECT_CALLS, playground
from otlp_collector import serve_collector
from route_table import count, report
from support.provider_mocks import MockState, ServedApp, openai_app
from support.server import ServerProcess
from tenants import CHATFLOW_GRAPH, WORKFLOW_GRAPH, Tenant

PROVIDER_KEY = "prov-key-" + uuid.uuid4().hex
ADMIN_PASSWORD = "admin-pass-" + uuid.uuid4().hex
MCP_HEADER = "mcp-header-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def upstream():
    state = MockState()
    served = ServedApp(openai_app(state), state).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def collector():
    served, collected = serve_collector()
    yield collected
    served.stop()


@pytest.fixture(scope="module")
def observed(tmp_path_factory, collector, upstream):
    process = ServerProcess(
        data_dir=tmp_path_factory.mktemp("observed"), admin_password=ADMIN_PASSWORD,
        extra_env={"HEADWATER_LOG_FORMAT": "json", "HEADWATER_LOG_LEVEL": "DEBUG",
                   "HEADWATER_OTEL_ENDPOINT": f"http://127.0.0.1:{collector.port}",
                   "OTEL_BSP_SCHEDULE_DELAY": "50", "HEADWATER_PROVIDER_MAX_RETRIES": "2"},
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tenant(observed, upstream) -> Tenant:
    """A workspace whose apps answer through the mock provider, called with PROVIDER_KEY."""
    tenant = Tenant.create(observed, "observed")
    tenant.post("/v1/providers", {"name": "mock", "type": "openai", "base_url": f"{upstream.base_url}/v1",
                                  "api_key": PROVIDER_KEY})
    model = "mock/mock-small"
    chatflow = json.loads(json.dumps(CHATFLOW_GRAPH).replace("fake/echo", model))
    workflow = json.loads(json.dumps(WORKFLOW_GRAPH).replace("fake/echo", model))
    for kind, body in (("chatbot", {"config": {"model": model}}), ("chatflow", {"graph": chatflow}),
                       ("workflow", {"graph": workflow}), ("agent", {"config": {"mode": "react", "model": model}})):
        app = tenant.post("/v1/apps", {"name": f"observed {kind}", "kind": kind, **body}).json()
        tenant._objects[f"{kind}_app"] = {"id": app["id"], "slug": app["slug"]}
    return tenant


def _log_lines(server: ServerProcess) -> list[dict]:
    lines = []
    for raw in server.log_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def _wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_runs_tokens_streams_and_provider_faults(observed, tenant, upstream):
    DIALECT_CALLS["openai"](tenant, "count me")
    DIALECT_CALLS["waterflai workflow"](tenant, "rivers")
    upstream.state.script[:] = ["429", "ok"]  # one retry, then an answer
    DIALECT_CALLS["wayscloud chatbot"](tenant, "retry me")
    upstream.state.script[:] = ["400"]
    with tenant.client() as client:
        failed = client.post("/v1/chat/completions", json={
            "model": tenant.value("chatbot_app"), "messages": [{"role": "user", "content": "refused"}]})
        assert failed.status_code == 422
        # A stream held open: counted while it is, and no more once it ends.
        slow = tenant.post("/v1/apps", {"name": "slow", "kind": "chatbot", "config": {"model": "fake/slow-300"}}).json()
        with client.stream("POST", "/v1/chat/completions", json={
                "model": slow["id"], "stream": True,
                "messages": [{"role": "user", "content": "one two three four five"}]}) as stream:
            lines = stream.iter_lines()  # kept: a dropped iterator closes the stream (a disconnect)
            next(lines)
            during = observed.client(observed.admin_key).get("/metrics").text
            assert len(list(lines)) > 5
    with observed.client(observed.admin_key) as admin:
        response = admin.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert admin.get("/metrics").text  # scraping twice works (no duplicated registrations)
    with tenant.client() as c:
        assert c.get("/metrics").status_code == 403  # counts span every workspace: instance admin only
    assert observed.client().get("/metrics").status_code == 401

    assert _metric(during, "headwater_open_streams", kind="sse") == 1
    assert _metric(text, "headwater_open_streams", kind="sse") == 0
    assert _metric(text, "headwater_http_requests_total", route="/v1/chat/completions", status="200") >= 2
    assert _metric(text, "headwater_http_requests_total", route="/execute_workflow/{app_id}/execute") >= 1
    assert not any(tenant.value("workflow_app") in line for line in text.splitlines())  # templates, not paths
    assert _metric(text, "headwater_http_request_duration_seconds_bucket", route="/v1/chat/completions") > 0
    assert _metric(text, "headwater_runs_total", kind="chatbot", status="succeeded") >= 2
    assert _metric(text, "headwater_runs_total", kind="chatbot", status="failed") >= 1
    assert _metric(text, "headwater_runs_total", kind="workflow", status="succeeded") >= 1
    assert _metric(text, "headwater_run_duration_seconds_count", kind="workflow") >= 1
    assert _metric(text, "headwater_tokens_total", provider="mock", type="prompt") >= 11
    assert _metric(text, "headwater_tokens_total", provider="mock", type="completion") >= 7
    assert _metric(text, "headwater_provider_retries_total", reason="ProviderRateLimited") >= 1
    assert _metric(text, "headwater_provider_errors_total", provider="mock", error="ProviderBadRequest") >= 1
    assert "headwater_queue_depth " in text and "headwater_runs_stored{" in text
    assert "process_resident_memory_bytes" in text


def test_one_json_log_line_per_request_names_request_key_run_status_and_duration(observed, tenant):
    key = tenant.key("chatbot")
    with tenant.client() as admin:
        key_id = next(k["id"] for k in admin.get("/v1/api-keys").json() if k["name"] == f"{tenant.label}-chatbot")
    with observed.client(key) as client:
        answer = client.post("/v1/chat/completions", headers={"X-Request-Id": "trace-me-42"}, json={
            "model": tenant.value("chatbot_app"), "messages": [{"role": "user", "content": "log me"}]})
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "trace-me-42"
        run_id = answer.headers["x-run-id"]
        refused = client.get("/v1/api-keys")
        odd = client.get("/v1/apps", headers={"X-Request-Id": "bad id; with spaces"})
    assert refused.status_code == 403 and len(refused.headers["x-request-id"]) == 32  # generated
    assert odd.headers["x-request-id"] != "bad id; with spaces"

    lines = _wait_for(lambda: [line for line in _log_lines(observed) if line.get("request_id") == "trace-me-42"])
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "headwater.access" and line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == ("POST", "/v1/chat/completions", 200)
    assert line["key_id"] == key_id and line["run_id"] == run_id
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] > 0
    assert all(isinstance(entry, dict) for entry in _log_lines(observed))
    assert all(raw.startswith("{") for raw in observed.log_text().splitlines()
               if raw and not raw.startswith("Headwater listening")), "a log line that is not JSON"


def test_a_run_is_traced_as_run_node_and_provider_spans_with_token_counts(observed, tenant, collector):
    with tenant.client() as client:
        flow = client.post("/v1/runs", json={"app_id": tenant.value("chatflow_app"), "inputs": {"query": "trace"}})
        chat = client.post("/v1/chat/completions", json={
            "model": tenant.value("chatbot_app"), "messages": [{"role": "user", "content": "trace me"}]})
    flow_spans = _wait_for(lambda: (s := collector.of_run(flow.json()["id"])) and len(s) >= 5 and s)
    by_name = {span.name: span for span in flow_spans}
    run = by_name["run chatflow"]
    assert run.parent_id == "" and run.attributes["headwater.run.status"] == "succeeded"
    assert run.attributes["gen_ai.usage.input_tokens"] == 11 and run.attributes["gen_ai.usage.output_tokens"] == 7
    nodes = [s for s in flow_spans if s.name.startswith("node ")]
    assert {s.attributes["headwater.node.type"] for s in nodes} == {"start", "llm", "answer"}
    assert all(s.parent_id == run.span_id for s in nodes)
    call = by_name["chat mock-small"]
    assert call.parent_id == by_name["node llm"].span_id
    assert call.attributes["gen_ai.usage.input_tokens"] == 11 and call.attributes["gen_ai.usage.output_tokens"] == 7
    assert call.attributes["headwater.provider"] == "mock" and call.resource["service.name"] == "headwater"

    # A chatbot turn is a run of the graph its config implies: the model call is its llm node's.
    chat_spans = _wait_for(lambda: (s := collector.of_run(chat.headers["x-run-id"])) and len(s) >= 5 and s)
    turn = next(s for s in chat_spans if s.name == "run chatbot")
    llm_node = next(s for s in chat_spans if s.name == "node llm")
    assert llm_node.parent_id == turn.span_id
    assert [s.parent_id for s in chat_spans if s.name.startswith("chat ")] == [llm_node.span_id]


def test_no_secret_reaches_a_log_line_a_span_or_the_metrics(observed, tenant, upstream, collector):
    """Every dialect, streamed and not, answering and failing, and refused credentials of every form."""
    key = tenant.key("chatbot")
    secrets = {"workspace admin key": tenant.admin_key, "chatbot key": key, "provider key": PROVIDER_KEY,
               "admin password": ADMIN_PASSWORD, "instance admin key": observed.admin_key}
    for name, call in DIALECT_CALLS.items():
        call(tenant, f"hello through {name}")
    playground(tenant, "hello through the playground")
    for mode in ("401", "500", "429", "400", "break"):
        upstream.state.script[:] = [mode] * 3
        upstream.state.retry_after = "0"
        with tenant.client() as client:
            client.post("/v1/chat/completions", json={
                "model": tenant.value("chatbot_app"), "messages": [{"role": "user", "content": mode}]})
            client.post(f"/execute_chatflow/{tenant.value('chatflow_app')}/execute", json={"input_data": {"query": mode}})
    upstream.state.script.clear()
    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    wrong = base64.b64encode(f"admin:{ADMIN_PASSWORD}x".encode()).decode()
    for headers in ({"Authorization": f"Basic {basic}"}, {"Authorization": f"Basic {wrong}"},
                    {"X-API-Key": key + "x"}, {"Authorization": f"Bearer {key[:-1]}"}, {"X-API-Key": key},
                    {"Authorization": f"Bearer {tenant.admin_key}"}):
        with observed.client(**headers) as client:
            client.get("/v1/apps")
            client.get(f"/v1/apps/{key}")  # a key pasted where an id goes
            client.post("/v1/providers", json={"name": "leak", "type": "openai", "api_key": PROVIDER_KEY,
                                               "base_url": "not a url"})
    # A Studio session (its cookie and CSRF token), and a remote MCP server registered with a secret header.
    with httpx.Client(base_url=observed.base_url, timeout=30) as browser:
        signed_in = browser.post("/studio/api/session", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert signed_in.status_code == 201, signed_in.text
        cookie, csrf = next(iter(browser.cookies.values())), signed_in.json()["csrf_token"]
        browser.get("/v1/apps")
        browser.post("/v1/apps", json={"name": "x", "kind": "chatbot"}, headers={"X-CSRF-Token": csrf})
        browser.delete("/studio/api/session", headers={"X-CSRF-Token": csrf})
    secrets.update({"studio cookie": cookie, "studio CSRF token": csrf})
    with tenant.client() as client:
        server = client.post("/v1/mcp-servers", json={"name": "remote", "url": "https://1.1.1.1/mcp",
                                                       "headers": {"Authorization": f"Bearer {MCP_HEADER}"}})
        assert server.status_code == 201, server.text
        client.get(f"/v1/mcp-servers/{server.json()['id']}/tools", params={"refresh": "true"})
    secrets["MCP server header"] = MCP_HEADER
    with observed.client(observed.admin_key) as admin:
        metrics = admin.get("/metrics").text
    time.sleep(0.5)  # the last spans' batch
    logs = observed.log_text()
    spans = b"".join(collector.bodies)
    assert len(logs.splitlines()) > 50 and len(spans) > 1000  # there is something to search
    found = []
    for name, secret in secrets.items():
        for fragment in {secret, secret[-24:], base64.b64encode(secret.encode()).decode()[:-4]}:
            for where, text in (("logs", logs), ("metrics", metrics)):
                if fragment in text:
                    found.append((name, where))
            if fragment.encode() in spans:
                found.append((name, "spans"))
    if basic[:-4] in logs:
        found.append(("basic credentials", "logs"))
    count("secrets searched for in logs, spans and metrics", len(secrets))
    assert not found, report(found)


def test_traces_are_off_without_an_endpoint_and_exported_in_process_with_the_sdk(tmp_path):
    """Without HEADWATER_OTEL_ENDPOINT no provider is configured; with the SDK's in-memory exporter
    the same spans come out of a server run in this process."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from headwater import telemetry
    from headwater.config import Settings
    from headwater.server import create_app

    settings = Settings(data_dir=tmp_path, admin_key="hw_in_process_" + "k" * 30, enable_fake_provider=True,
                        log_requests=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def scenario():
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            assert telemetry._provider is None  # no endpoint: nothing set up, the API's no-op tracer
            telemetry.use_tracer_provider(provider)
            transport = httpx.ASGITransport(app=app)
            headers = {"X-API-Key": settings.admin_key.get_secret_value()}
            async with httpx.AsyncClient(transport=transport, base_url="http://in-process", headers=headers) as c:
                bot = (await c.post("/v1/apps", json={"name": "b", "kind": "chatbot",
                                                      "config": {"model": "fake/echo"}})).json()
                flow = (await c.post("/v1/apps", json={"name": "f", "kind": "workflow", "graph": WORKFLOW_GRAPH})).json()
                await c.post("/v1/chat/completions", json={"model": bot["id"], "messages": [
                    {"role": "user", "content": "in process"}]})
                await c.post("/v1/runs", json={"app_id": flow["id"], "inputs": {"topic": "lakes"}})

    try:
        asyncio.run(scenario())
    finally:
        telemetry.use_tracer_provider(None)
        root = logging.getLogger()  # the lifespan set up the server's log handler in this process
        root.handlers = [h for h in root.handlers if not getattr(h, "headwater", False)]
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert names.count("run chatbot") == 1 and names.count("run workflow") == 1
    assert {"node start", "node llm", "node end"} <= set(names)
    calls = [s for s in spans if s.name == "chat echo"]
    assert len(calls) == 2 and all(s.attributes["gen_ai.usage.output_tokens"] > 0 for s in calls)
    workflow = next(s for s in spans if s.name == "run workflow")
    llm = next(s for s in spans if s.name == "node llm" and s.context.trace_id == workflow.context.trace_id)
    assert llm.parent.span_id == workflow.context.span_id
    assert next(s for s in calls if s.parent.span_id == llm.context.span_id)
