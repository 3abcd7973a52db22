"""Streams hold up: pings while idle, the SSE headers, no compression, disconnects, resumption.

A server of its own pings idle streams every 0.3 s (HEADWATER_SSE_PING_SECONDS;
CONTRACTS asks for at most 15 s) and answers with a model that writes a word
every 0.7 s. Every streamed dialect, and the follow streams of runs and async
executions, must ping, carry `text/event-stream`, `Cache-Control: no-cache` and
`X-Accel-Buffering: no`, and never be compressed. A client that leaves a
synchronous stream cancels its run within a second; one that leaves a follow
stream does not stop the run. `Last-Event-ID` resumes without a gap or a
duplicate. WebSocket routes are pinged as often.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from dialect_calls import DIALECT_REQUESTS
from route_table import count, report, socket_outcome
from support.server import ServerProcess
from tenants import CHATFLOW_GRAPH, WORKFLOW_GRAPH, Tenant

PING = 0.3
WORD_EVERY = 0.7
SLOW_MODEL = f"fake/slow-{int(WORD_EVERY * 1000)}"
STREAMED = [name for name, spec in DIALECT_REQUESTS.items() if spec.stream]


@pytest.fixture(scope="module")
def streaming_server(tmp_path_factory):
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("streams"),
                            extra_env={"HEADWATER_SSE_PING_SECONDS": str(PING)})
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def slow(streaming_server) -> Tenant:
    tenant = Tenant.create(streaming_server, "slow")
    chatflow = json.loads(json.dumps(CHATFLOW_GRAPH).replace("fake/echo", SLOW_MODEL))
    workflow = json.loads(json.dumps(WORKFLOW_GRAPH).replace("fake/echo", SLOW_MODEL))
    for kind, body in (("chatbot", {"config": {"model": SLOW_MODEL}}), ("chatflow", {"graph": chatflow}),
                       ("workflow", {"graph": workflow})):
        app = tenant.post("/v1/apps", {"name": f"slow {kind}", "kind": kind, **body}).json()
        tenant._objects[f"{kind}_app"] = {"id": app["id"], "slug": app["slug"]}
    return tenant


def _open(tenant: Tenant, name: str, client: httpx.Client, message: str = "one two three"):
    spec = DIALECT_REQUESTS[name]
    app = tenant.value(spec.app)
    request = client.build_request("POST", spec.path(app), json=spec.body(app, message), params=spec.params,
                                   headers={"Accept-Encoding": "gzip, deflate, br"})
    return client.send(request, stream=True)


def _timed_lines(response, until: float):
    """(seconds since start, raw line) of a stream, until it ends or `until` seconds passed."""
    started = time.monotonic()
    buffer = b""
    for chunk in response.iter_raw():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield time.monotonic() - started, line.decode("utf-8", "replace")
        if time.monotonic() - started > until:
            return


def _stream_problems(response, label: str, until: float = 2.5) -> list:
    problems = []
    headers = response.headers
    if response.status_code != 200 or not headers.get("content-type", "").startswith("text/event-stream"):
        return [(label, "not a stream", response.status_code, headers.get("content-type"))]
    if headers.get("cache-control") != "no-cache" or headers.get("x-accel-buffering") != "no":
        problems.append((label, "SSE headers", dict(headers)))
    if "content-encoding" in headers or "content-length" in headers:
        problems.append((label, "compressed or not streamed", headers.get("content-encoding")))
    moments = [(at, line) for at, line in _timed_lines(response, until) if line]
    pings = [at for at, line in moments if line.startswith(": ping")]
    gaps = [b - a for (a, _), (b, _) in zip([(0.0, "")] + moments, moments)]
    if len(pings) < 2:
        problems.append((label, "pings", len(pings)))
    if gaps and max(gaps) > PING + 0.35:
        problems.append((label, "silent for", round(max(gaps), 2)))
    return problems


def test_every_stream_pings_while_idle_with_the_sse_headers_and_no_compression(streaming_server, slow):
    def dialect(name):
        with httpx.Client(base_url=streaming_server.base_url, headers={"X-API-Key": slow.admin_key}, timeout=30) as c:
            response = _open(slow, name, c)
            try:
                return _stream_problems(response, name)
            finally:
                response.close()

    execution = slow.post(f"/v1/executions/{slow.value('workflow_app')}/async",
                          {"input_data": {"topic": "one two three four five six seven eight"}}).json()["execution_id"]

    def follow(path):
        with httpx.Client(base_url=streaming_server.base_url, headers={"X-API-Key": slow.admin_key}, timeout=30) as c:
            with c.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
                return _stream_problems(response, path)

    follows = [f"/v1/executions/{execution}/stream", f"/v1/runs/{execution}/stream"]
    with ThreadPoolExecutor(max_workers=len(STREAMED) + 2) as pool:
        results = list(pool.map(dialect, STREAMED)) + list(pool.map(follow, follows))
    failures = [problem for problems in results for problem in problems]
    count("streams checked for pings, headers and compression", len(STREAMED) + len(follows))
    assert not failures, report(failures)


def _status(tenant: Tenant, run_id: str) -> str:
    return tenant.get(f"/v1/runs/{run_id}")["status"]


def test_a_client_leaving_a_synchronous_stream_cancels_its_run_within_a_second(streaming_server, slow):
    failures = []
    for name in STREAMED:
        with httpx.Client(base_url=streaming_server.base_url, headers={"X-API-Key": slow.admin_key}, timeout=30) as c:
            response = _open(slow, name, c, "one two three four five six")
            run_id = response.headers.get("x-run-id")
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data:"))  # the run is under way
            response.close()
        left = time.monotonic()
        while (status := _status(slow, run_id)) in ("queued", "running") and time.monotonic() - left < 3:
            time.sleep(0.02)
        took = time.monotonic() - left
        if status != "cancelled" or took > 1.0:
            failures.append((name, status, round(took, 2)))
    count("synchronous streams left by their client", len(STREAMED))
    assert not failures, report(failures)


def test_leaving_a_follow_stream_leaves_the_run_going(streaming_server, slow):
    execution = slow.post(f"/v1/executions/{slow.value('workflow_app')}/async",
                          {"input_data": {"topic": "one two three"}}).json()["execution_id"]
    for path in (f"/v1/executions/{execution}/stream", f"/v1/runs/{execution}/stream"):
        with slow.client() as c, c.stream("GET", path) as response:
            next(line for line in response.iter_lines() if line.startswith("data:"))
    time.sleep(1.0)
    assert _status(slow, execution) in ("queued", "running")
    deadline = time.monotonic() + 15
    while _status(slow, execution) in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _status(slow, execution) == "succeeded"


def _ids(response) -> list[int]:
    return [int(line[3:]) for line in response.iter_lines() if line.startswith("id:")]


def test_last_event_id_resumes_every_follow_stream_without_gap_or_duplicate(streaming_server, slow):
    execution = slow.post(f"/v1/executions/{slow.value('workflow_app')}/async",
                          {"input_data": {"topic": "one"}}).json()["execution_id"]
    failures = []
    for path in (f"/v1/executions/{execution}/stream", f"/v1/runs/{execution}/stream"):
        seen: list[int] = []
        with slow.client() as c:
            while True:  # live: leave after each event, come back with the last id seen
                headers = {"Last-Event-ID": str(seen[-1])} if seen else {}
                with c.stream("GET", path, headers=headers) as response:
                    got = next((int(line[3:]) for line in response.iter_lines() if line.startswith("id:")), None)
                if got is None:
                    break
                seen.append(got)
            with c.stream("GET", path) as response:
                everything = _ids(response)
            with c.stream("GET", path, headers={"Last-Event-ID": str(everything[2])}) as response:
                tail = _ids(response)
        if seen != everything or tail != everything[3:] or everything != sorted(set(everything)):
            failures.append((path, seen, everything, tail))
    assert not failures, report(failures)


def test_websocket_routes_are_pinged_as_often(streaming_server, slow, routes):
    """Every WebSocket route of the table, on an object of the caller's own workspace."""
    pings: list[str] = []

    class Pings(logging.Handler):
        def emit(self, record):
            if "PING" in record.getMessage():
                pings.append(record.getMessage())

    logger = logging.getLogger("websockets.client")
    handler, level = Pings(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    failures, checked = [], 0
    try:
        for route in routes:
            if not route.is_websocket:
                continue
            checked += 1
            pings.clear()
            outcome = socket_outcome(streaming_server.port, route.fill(slow.path_values(route)),
                                     {"X-API-Key": slow.admin_key}, wait=PING * 4)
            if outcome.refused_as is not None or len(pings) < 2:
                failures.append((str(route), str(outcome), len(pings)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    count("WebSocket routes checked for pings", checked)
    assert not failures, report(failures)
