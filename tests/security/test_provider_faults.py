"""Provider faults through every dialect, streamed and not: bounded, typed, and never a hung request.

The apps of one workspace answer through an OpenAI-compatible mock on 127.0.0.1
whose faults are chosen per call (fault_upstream.py), those of another through
the package's fake provider failing mid-stream. The server gives a provider
0.6 s per read and 2 retries. For every dialect × fault:
- 429 with Retry-After: waited for, then answered; three times: three attempts, then a typed error;
- 500: retried after a backoff, then answered; three times: a typed error;
- 400: one attempt only, a typed error;
- a stream that stalls after two words, or whose connection drops after one: the
  dialect's error, the words said so far kept once in the run and marked partial,
  no retry (the words are out); a whole answer that never comes: retried, then an error;
- an upstream that never answers: the run fails within its attempts' timeouts.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from dialect_calls import DIALECT_REQUESTS, DialectAnswer, call
from fault_upstream import serve_faults
from route_table import count, report
from support.server import ServerProcess
from tenants import CHATFLOW_GRAPH, WORKFLOW_GRAPH, Tenant

READ_TIMEOUT = 1.5  # generous: 24 cases at once on a busy 2-core machine must not time out a healthy mock
RETRIES = 2
RETRY_AFTER = 0.3
# Worst case of one call: every attempt times out, with the longest backoffs (0.5 s, then 1 s) between.
DEADLINE = (RETRIES + 1) * READ_TIMEOUT + 1.5 + 3.0  # + slack for a busy machine

SCENARIOS = {
    "429 then ok": ["429", "ok"],
    "429 every time": ["429"] * 3,
    "500 then ok": ["500", "ok"],
    "500 every time": ["500"] * 3,
    "400": ["400", "ok"],
    "stall": ["stall"] * 3,
    "connection drop": ["break"] * 3,
    "never answers": ["hang"] * 3,
}


@pytest.fixture(scope="module")
def faults():
    served, state = serve_faults()
    state.retry_after = str(RETRY_AFTER)
    yield served, state
    served.stop()


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory, faults):
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("faults"), extra_env={
        "HEADWATER_PROVIDER_TIMEOUT_SECONDS": str(READ_TIMEOUT), "HEADWATER_PROVIDER_MAX_RETRIES": str(RETRIES)})
    process.start()
    yield process
    process.stop()


def _tenant(server, label: str, model: str, provider_url: str | None = None) -> Tenant:
    tenant = Tenant.create(server, label)
    if provider_url:
        tenant.post("/v1/providers", {"name": "upstream", "type": "openai", "base_url": provider_url,
                                      "api_key": "sk-fault-key-0000"})
    chatflow = json.loads(json.dumps(CHATFLOW_GRAPH).replace("fake/echo", model))
    workflow = json.loads(json.dumps(WORKFLOW_GRAPH).replace("fake/echo", model))
    for kind, body in (("chatbot", {"config": {"model": model}}), ("chatflow", {"graph": chatflow}),
                       ("workflow", {"graph": workflow})):
        app = tenant.post("/v1/apps", {"name": f"{label} {kind}", "kind": kind, **body}).json()
        tenant._objects[f"{kind}_app"] = {"id": app["id"], "slug": app["slug"]}
    return tenant


def _upstream_streams(name: str) -> bool:
    """A run streams from the model when its client streams; otherwise the model answers in one piece."""
    return DIALECT_REQUESTS[name].stream


def _run(tenant: Tenant, answer: DialectAnswer) -> dict:
    assert answer.run_id, "no X-Run-Id"
    return tenant.get(f"/v1/runs/{answer.run_id}")


def _failed_as_typed(tenant: Tenant, name: str, answer: DialectAnswer, status: int, says: str) -> list:
    """A failure the dialect's way (HTTP error or error event), recorded as a typed provider error."""
    problems = []
    spec = DIALECT_REQUESTS[name]
    if spec.stream:
        if answer.status != 200 or len(answer.stream_errors) != 1:
            problems.append(("no single error event", answer.status, answer.body[-300:]))
    elif spec.fails_in_body:
        body = json.loads(answer.body) if answer.status == 200 else {}
        if body.get("status") != "failed" or says not in json.dumps(body.get("error")):
            problems.append(("failed run in the body", answer.status, answer.body[:300]))
    elif answer.status != status or says not in answer.body:
        problems.append(("HTTP error", answer.status, answer.body[:300]))
    run = _run(tenant, answer)
    if run["status"] != "failed" or (run.get("error") or {}).get("code") != "provider_error" \
            or says not in run["error"]["message"]:
        problems.append(("run record", run["status"], run.get("error")))
    return problems


def _check(scenario: str, name: str, tenant: Tenant, answer: DialectAnswer, arrivals: list[float]) -> list:
    streams = _upstream_streams(name)
    problems: list = []
    if answer.elapsed > DEADLINE:
        problems.append(("took", round(answer.elapsed, 1)))
    if scenario in ("429 then ok", "500 then ok"):
        if answer.status != 200 or answer.stream_errors or "echo:" not in answer.text:
            problems.append(("not answered after the retry", answer.status, answer.body[:200]))
        gap = arrivals[1] - arrivals[0] if len(arrivals) == 2 else None
        least = RETRY_AFTER if scenario.startswith("429") else 0.25
        if gap is None or gap < least * 0.95:
            problems.append(("attempts", len(arrivals), gap))
    elif scenario in ("429 every time", "500 every time"):
        problems += _failed_as_typed(tenant, name, answer, 502, scenario[:3])
        if len(arrivals) != RETRIES + 1:
            problems.append(("attempts", len(arrivals)))
    elif scenario == "400":
        problems += _failed_as_typed(tenant, name, answer, 422, "400")
        if len(arrivals) != 1:
            problems.append(("retried a 400", len(arrivals)))
    elif scenario == "never answers":
        problems += _failed_as_typed(tenant, name, answer, 504, "timed out")
        if len(arrivals) != RETRIES + 1:
            problems.append(("attempts", len(arrivals)))
    else:  # stall, connection drop
        said = 2 if scenario == "stall" else 1
        if not streams:  # nothing was said: retried like any failure before the first word
            expected = 504 if scenario == "stall" else 502
            problems += _failed_as_typed(tenant, name, answer, expected, "timed out" if scenario == "stall" else "")
            if len(arrivals) != RETRIES + 1:
                problems.append(("attempts", len(arrivals)))
            return problems
        problems += _failed_as_typed(tenant, name, answer, 504 if scenario == "stall" else 502, "")
        if len(arrivals) != 1:
            problems.append(("retried after words went out", len(arrivals)))
        problems += _partial_kept_once(tenant, name, answer, said)
    return problems


def _partial_kept_once(tenant: Tenant, name: str, answer: DialectAnswer, words: int) -> list:
    problems = []
    run = _run(tenant, answer)
    events = tenant.get(f"/v1/runs/{answer.run_id}/events")
    tokens = "".join(e["data"]["text"] for e in events if e["type"] == "token")
    if DIALECT_REQUESTS[name].app == "workflow_app":  # no reply: the failed node keeps what it had
        failed = [e["data"] for e in events if e["type"] == "node_finished" and e["data"]["status"] == "failed"]
        partial = failed[0]["outputs"].get("text", "") if failed else ""
    else:
        partial = run["outputs"].get("text", "")
        if not run["outputs"].get("partial"):
            problems.append(("partial output not marked", run["outputs"]))
        if tokens and tokens != partial:
            problems.append(("stored tokens differ from the kept text", tokens, partial))
    if len(partial.split()) != words or not partial.startswith("echo:"):
        problems.append(("kept text", partial))
    if DIALECT_REQUESTS[name].stream and answer.text != partial and DIALECT_REQUESTS[name].app != "workflow_app":
        problems.append(("streamed text differs from the kept text", answer.text, partial))
    session = run.get("session_id")
    if session:
        for message in tenant.get(f"/v1/sessions/{session}/messages"):
            if message["role"] == "assistant" and message["content"].count("echo:") > 1:
                problems.append(("duplicated words stored", message["content"]))
    return problems


def test_provider_faults_through_every_dialect(faulty_server, faults):
    served, state = faults
    tenant = _tenant(faulty_server, "faults", "upstream/mock-small", f"{served.base_url}/v1")
    cases = [(scenario, name) for scenario in SCENARIOS for name in DIALECT_REQUESTS]

    def run_case(case):
        scenario, name = case
        token = state.play(f"case-{uuid.uuid4().hex[:12]}", *SCENARIOS[scenario])
        answer = call(name, tenant, f"{token} please", timeout=DEADLINE * 3)
        return scenario, name, answer, state.arrivals[token]

    failures = []
    with ThreadPoolExecutor(max_workers=24) as pool:
        for scenario, name, answer, arrivals in pool.map(run_case, cases):
            for problem in _check(scenario, name, tenant, answer, arrivals):
                failures.append((scenario, name, *problem))
    count("provider faults injected (mock on 127.0.0.1)", len(cases))
    assert not failures, report(failures)


def test_the_fake_provider_failing_mid_stream_through_every_dialect(faulty_server):
    tenant = _tenant(faulty_server, "fake-faults", "fake/fail-midstream")
    failures = []
    for name in DIALECT_REQUESTS:
        answer = call(name, tenant, "anything")
        problems = _failed_as_typed(tenant, name, answer, 502, "mid-stream")
        if _upstream_streams(name) or DIALECT_REQUESTS[name].app == "chatbot_app":
            run = _run(tenant, answer)
            if DIALECT_REQUESTS[name].app != "workflow_app" and run["outputs"].get("text") != "this reply breaks off ":
                problems.append(("kept text", run["outputs"]))
        failures += [(name, *p) for p in problems]
    count("provider faults injected (fake provider)", len(DIALECT_REQUESTS))
    assert not failures, report(failures)


def _flowgen_turn(tenant: Tenant, message: str) -> str:
    """A FlowGen chat message (answered in the background): the run's id once the turn has ended."""
    chat = tenant.post("/chats", {"name": "c", "from_type": "flow", "from_flow": tenant.value("chatbot_app")}).json()
    run_id = tenant.post(f"/chats/{chat['id']}/messages", {"message": message}).headers["x-run-id"]
    deadline = time.monotonic() + DEADLINE * 2
    while tenant.get(f"/chats/{chat['id']}")["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return run_id


def _mcp_turn(tenant: Tenant, message: str) -> str:
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def call_tool():
        async with httpx2.AsyncClient(headers={"X-API-Key": tenant.admin_key}, timeout=60) as http:
            async with Client(streamable_http_client(f"{tenant.server.base_url}/mcp", http_client=http),
                              cache=None) as client:
                return await client.call_tool(tenant.obj("chatbot_app")["slug"], {"message": message})

    result = asyncio.run(call_tool())
    assert result.is_error, result
    return result.meta["headwater/run_id"]


def test_provider_faults_through_flowgen_chats_and_mcp_tools(faulty_server, faults, routes):
    served, state = faults
    tenant = _tenant(faulty_server, "async-faults", "upstream/mock-small", f"{served.base_url}/v1")
    paths = {route.path for route in routes}
    turns = {"flowgen": _flowgen_turn} if "/chats" in paths else {}
    if "/mcp" in paths:
        turns["mcp"] = _mcp_turn
    expected = {"429 every time": ("429", RETRIES + 1), "400": ("400", 1), "never answers": ("timed out", RETRIES + 1)}
    failures = []

    def run_case(case):
        (dialect, turn), (scenario, (says, attempts)) = case
        token = state.play(f"case-{uuid.uuid4().hex[:12]}", *SCENARIOS[scenario])
        started = time.monotonic()
        run_id = turn(tenant, f"{token} please")
        return dialect, scenario, says, attempts, time.monotonic() - started, tenant.get(f"/v1/runs/{run_id}"), \
            state.arrivals[token]

    cases = [(t, e) for t in turns.items() for e in expected.items()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for dialect, scenario, says, attempts, took, run, arrivals in pool.map(run_case, cases):
            error = run.get("error") or {}
            if run["status"] != "failed" or error.get("code") != "provider_error" or says not in error.get("message", ""):
                failures.append((dialect, scenario, run["status"], error))
            if len(arrivals) != attempts or took > DEADLINE * 2:
                failures.append((dialect, scenario, "attempts", len(arrivals), "took", round(took, 1)))
    count("provider faults injected (mock on 127.0.0.1)", len(cases))
    assert not failures, report(failures)
