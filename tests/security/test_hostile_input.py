"""Hostile input on every route that takes a body, a file or a query, generated from the route table.

Oversized bodies are 413 (by Content-Length and while streaming in); malformed
JSON, bodies of the wrong shape, wrong types, invalid UTF-8 and NUL characters
are 4xx (mostly 422); JSON nested 10,000 deep or with a million keys is refused
within seconds and bounded memory; file names are metadata, never paths; full-text
and SQL syntax in queries is data; template syntax typed by a user is never
evaluated; a flow naming a Python module as a node type is refused. Nothing a
refused request carried is stored.
"""

from __future__ import annotations

import copy
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bodies import body_schema, example_body, resolve
from route_table import RawClient, count, detail_of, report
from dialect_calls import DIALECT_CALLS
from tenants import BODY_REFS, Tenant, object_for, sqlite_only

MALFORMED = [b"{not json", b'{"a": }', b"[1, 2", b'{"a": "unterminated', b"\xef\xbb\xbf{}{}", b"{'single': 1}",
             b"NaN", b'{"a": 1,}']
INVALID_UTF8 = [b'{"message": "\xff\xfe"}', b'{"\xc3\x28": 1}', b'{"text": "\xed\xa0\x80"}']
NOT_OBJECTS = [b"[]", b'"text"', b"42", b"null", b"true"]
# Expected for a body refused on its shape: 422 (validation), 400 (a route that reads its body itself).
REFUSED = {400, 413, 415, 422}
HUGE_NUMBERS = [10**23, -(10**23), 2**63, 1e308]
# 502-504: an upstream the request reached (a remote MCP server, a provider) failed; not the server's fault.
SERVER_FAULTS = {500, 501, 505}
SQL_AND_FTS = [
    "' OR 1=1 --", '" OR ""="', "heron'; DROP TABLE documents; --", "NEAR(heron bird, 2)", "heron* AND NOT x",
    "title:heron", "^heron", "{title text}: heron", "heron & !bird | (x <-> y)", "heron:*", "'\\", "%", "_", "\\x00",
    "SELECT * FROM api_keys", "1; SELECT pg_sleep(5)", "heron) OR (1=1", '"', "'", "*", "(", ")", "--", "/*", "¿?",
    "🦩 heron", "a" * 5000,
]
TEMPLATES = "{{ 7*7 }} {% if true %}yes{% endif %} {{ sys.session_id }} {{ ''.__class__.__mro__ }} ${7*7} #{7*7}"
MODULE_NODE_TYPES = ["os.system", "subprocess.Popen", "builtins.eval", "headwater.engine.nodes.code.CodeNode",
                     "__import__('os').system('id')", "importlib.import_module", "os", "sys", "../nodes/code",
                     "headwater.sandbox.code_runner", "pickle.loads", "exec", "eval", "LLM", "start.__class__"]
BAD_FILE_NAMES = ["../../x.txt", "%2e%2e%2fx.txt", "/etc/passwd", "..\\..\\x.txt", "C:\\Windows\\x.txt",
                  "a\x00b.txt", "..", ".", "x" * 1000 + ".txt", "new\nline.txt", "~/.ssh/authorized_keys",
                  "file:///etc/passwd", "\u202etxt.exe", " .txt"]


def _body_routes(routes):
    return [r for r in routes if r.takes_body and not r.is_websocket and not r.is_public]


def _valid_body(route, tenant: Tenant) -> Any:
    body = example_body(route)
    if isinstance(body, dict):
        for _, name, _ in BODY_REFS:
            if kind := object_for(route.path, name, BODY_REFS):
                body[name] = tenant.value(kind)
    return body


def _headers(route, server, tenant: Tenant, **extra: str) -> dict[str, str]:
    key = server.admin_key if route.required_scope == "instance_admin" else tenant.admin_key
    return {"X-API-Key": key, **extra}


def fingerprint(tenant: Tenant, routes=()) -> dict[str, Any]:
    """What the workspace holds: a refused request must leave it exactly so (objects the routes need made first)."""
    for route in routes:
        tenant.path_values(route)
        _valid_body(route, tenant)
    with tenant.client() as c:
        kbs = c.get("/v1/knowledge-bases").json()
        return {
            "apps": sorted((a["id"], a["version"]) for a in c.get("/v1/apps").json()),
            "runs": len(c.get("/v1/runs", params={"limit": 500}).json()),
            "sessions": len(c.get("/v1/sessions").json()),
            "documents": sorted((kb["id"], kb["document_count"]) for kb in kbs),
            "keys": len(c.get("/v1/api-keys").json()),
            "providers": len(c.get("/v1/providers").json()),
        }


def _numeric_fields(route) -> list[str]:
    """Body fields (required or not) whose schema is a number: each gets numbers no store holds."""
    schema = body_schema(route) or {}
    found = []
    for name, field in schema.get("properties", {}).items():
        options = [resolve(o) for o in resolve(field).get("anyOf", [resolve(field)])]
        if any(o.get("type") in ("integer", "number") for o in options):
            found.append(name)
    return found


def _json(value: Any) -> bytes:
    return httpx.Request("POST", "http://x", json=value).content


def _mistyped(value: Any) -> Any:
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, (int, float)):
        return "many"
    if isinstance(value, str):
        return {"not": "a string"}
    if isinstance(value, list):
        return "not a list"
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return [[]]


@sqlite_only
def test_oversized_bodies_are_413_and_leave_nothing(server, routes, tenant_a):
    limit = int(server.env().get("HEADWATER_MAX_BODY_BYTES", 10 * 1024 * 1024))
    before = fingerprint(tenant_a, routes)
    failures, tried = [], 0
    for route in _body_routes(routes):
        path = route.fill(tenant_a.path_values(route))
        headers = _headers(route, server, tenant_a)
        # Declared too large: refused before a byte of the body is read.
        status = _declared_too_large(server.port, route.method, path, headers, limit + 1)
        tried += 1
        if status != 413:
            failures.append((str(route), "Content-Length", status))
        # Streamed in chunks without a length: refused when the limit is crossed.
        status = _streamed_too_large(server.port, route.method, path, headers, limit)
        tried += 1
        if status != 413:
            failures.append((str(route), "chunked", status))
        if route.path.endswith("/documents") or "upsert" in route.path:  # multipart files, too
            files = {"files": ("big.txt", b"a" * (limit + 1), "text/plain")}
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                response = client.request(route.method, path, files=files, headers=headers)
            tried += 1
            if response.status_code != 413:
                failures.append((str(route), "multipart", response.status_code))
    count("hostile inputs: oversized bodies", tried)
    assert not failures, report(failures)
    assert fingerprint(tenant_a) == before


def _streamed_too_large(port: int, method: str, path: str, headers: dict[str, str], limit: int) -> int | None:
    """Send a chunked body until the server answers (it must, once the limit is crossed); its status."""
    chunk = b"x" * (256 * 1024)
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
                "Transfer-Encoding: chunked", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        sock.sendall("\r\n".join(head).encode() + b'5\r\n{"a":\r\n')
        sent = 0
        try:
            while sent <= 2 * limit:
                sock.sendall(frame)
                sent += len(chunk)
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            return None
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None


def _declared_too_large(port: int, method: str, path: str, headers: dict[str, str], length: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
                f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        sock.sendall("\r\n".join(head).encode() + b'{"pad": "')
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


@sqlite_only
def test_malformed_mistyped_and_misshapen_bodies_are_refused(server, routes, tenant_a):
    before = fingerprint(tenant_a, routes)
    failures, tried = [], 0
    raw = RawClient(server.port)
    try:
        for route in _body_routes(routes):
            path = route.fill(tenant_a.path_values(route))
            headers = _headers(route, server, tenant_a, **{"Content-Type": "application/json"})
            for body in MALFORMED + INVALID_UTF8 + NOT_OBJECTS:
                tried += 1
                status, _, answer = raw.request(route.method, path, headers, body)
                if status != 422 and not (body in NOT_OBJECTS and status in REFUSED):
                    failures.append((str(route), body[:30], status, detail_of(answer)))
            valid = _valid_body(route, tenant_a)
            if not isinstance(valid, dict):
                continue
            attempts = [(f"{name} mistyped", {**copy.deepcopy(valid), name: _mistyped(value)})
                        for name, value in valid.items()]
            attempts += [(f"{name}={huge}", {**copy.deepcopy(valid), name: huge})
                         for name in _numeric_fields(route) for huge in HUGE_NUMBERS]
            for label, wrong in attempts:
                tried += 1
                status, _, answer = raw.request(route.method, path, headers, _json(wrong))
                if status not in REFUSED:
                    failures.append((str(route), label, status, detail_of(answer)))
    finally:
        raw.close()
    count("hostile inputs: malformed, mistyped and misshapen bodies", tried)
    assert not failures, report(failures)
    assert fingerprint(tenant_a) == before


def test_nul_characters_anywhere_are_refused_before_the_store(server, routes, tenant_a):
    """PostgreSQL stores no NUL in text: an id, a query or a string carrying one is a 4xx, never a 500."""
    failures, tried = [], 0
    raw = RawClient(server.port)
    try:
        for route in routes:
            if route.is_websocket or route.is_mount:
                continue
            values = {name: tenant_a.path_values(route)[name] + "\x00x" for name in route.params}
            path = route.fill({k: v.replace("\x00", "%00") for k, v in values.items()}) + "?q=%00"
            headers = _headers(route, server, tenant_a)
            tried += 1
            status, _, answer = raw.request(route.method, path, headers)
            if status != 400:
                failures.append((str(route), "path/query", status, detail_of(answer)))
            if route.takes_body and not route.is_public and isinstance(body := _valid_body(route, tenant_a), dict):
                for name in body:
                    tried += 1
                    poisoned = {**body, name: "poison\x00ed" if isinstance(body[name], str) else {"k\x00": 1}}
                    status, _, answer = raw.request(route.method, route.fill(tenant_a.path_values(route)), {
                        **headers, "Content-Type": "application/json"}, _json(poisoned))
                    if status != 422:
                        failures.append((str(route), f"NUL in {name}", status, detail_of(answer)))
    finally:
        raw.close()
    count("hostile inputs: NUL characters", tried)
    assert not failures, report(failures)


def _memory(pid: int) -> tuple[int, int]:
    """(resident, peak resident) of a process, in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _wide_object(keys: int) -> bytes:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    names = (a + b + c + d for a in alphabet for b in alphabet for c in alphabet for d in alphabet)
    return b"{" + b",".join(b'"%s":0' % next(names).encode() for _ in range(keys)) + b"}"


@sqlite_only
def test_deep_and_wide_json_is_refused_quickly_with_bounded_memory(server, routes, tenant_a):
    bombs = {
        "arrays 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
        "objects 10,000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "objects 100 deep": b'{"a":' * 100 + b"1" + b"}" * 100,
        "a million keys": _wide_object(1_000_000),
        "a million values": b"[" + b",".join([b"0"] * 1_000_000) + b"]",
        "ten thousand keys": _wide_object(10_000),
    }
    targets = [r for r in _body_routes(routes)]
    anonymous = [r for r in routes if r.key == ("POST", "/api/v1/prediction/{app_id}")]
    pid = server.process.pid
    rss_before, _ = _memory(pid)
    failures, tried, slowest = [], 0, 0.0
    raw = RawClient(server.port)
    try:
        for name, bomb in bombs.items():
            # The big ones on three routes (a strict native body, a lenient dialect body, no credentials),
            # the small ones on every route that takes a body.
            chosen = targets if len(bomb) < 1_000_000 else [
                r for r in targets if r.key in {("POST", "/v1/apps"), ("POST", "/v1/chat/completions")}]
            for route in chosen + anonymous:
                credentials = {} if route in anonymous else _headers(route, server, tenant_a)
                started = time.monotonic()
                status, _, answer = raw.request(route.method, route.fill(tenant_a.path_values(route)),
                                                {**credentials, "Content-Type": "application/json"}, bomb)
                elapsed = time.monotonic() - started
                slowest = max(slowest, elapsed)
                tried += 1
                if not 400 <= status < 500 or elapsed > 10:
                    failures.append((str(route), name, status, round(elapsed, 2), detail_of(answer)))
    finally:
        raw.close()
    _, peak = _memory(pid)
    count("hostile inputs: deep and wide JSON", tried)
    assert not failures, report(failures)
    assert peak - rss_before < 400 * 1024 * 1024, f"memory grew by {(peak - rss_before) >> 20} MiB"


@sqlite_only
def test_hostile_file_names_are_metadata_never_paths(server, tenant_a):
    kb = tenant_a.obj("knowledge_base")
    data_dir = Path(server.data_dir).resolve()
    outside_before = _files_around(data_dir)
    failures = []
    with tenant_a.client() as client:
        for name in BAD_FILE_NAMES:
            files = {"files": (name, f"Notes kept under {name!r}.".encode(), "text/plain")}
            response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents", files=files)
            upsert = client.post(f"/api/v1/vector/upsert/{tenant_a.value('chatbot_app')}", files=files)
            for answer in (response, upsert):
                if answer.status_code >= 500:
                    failures.append((name, answer.status_code, answer.text[:120]))
                    continue
                if answer.status_code < 300:
                    for document in answer.json()["documents"]:
                        stored = document["file_name"] or ""
                        if any(bad in stored for bad in ("/", "\\", "\x00", "\n")) or stored in (".", ".."):
                            failures.append((name, "kept as", stored))
    count("hostile inputs: file names", len(BAD_FILE_NAMES) * 2)
    assert not failures, report(failures)
    assert _files_around(data_dir) == outside_before, "a file appeared outside the data directory"


def _files_around(data_dir: Path) -> set[str]:
    """Every file beside the data directory and two levels up (where ../../x would land)."""
    found = set()
    for root in (data_dir.parent, data_dir.parent.parent):
        for entry in os.scandir(root):
            if entry.is_file():
                found.add(entry.path)
    return found


def test_query_syntax_and_sql_in_knowledge_queries_is_data(server, tenant_a, tenant_b):
    """FTS5 and tsquery operators, SQL fragments: 200, and only this base's own chunks come back."""
    own = tenant_a.obj("document")
    foreign = tenant_b.obj("document")  # B's base holds the same word: it must never show up
    failures = []
    with tenant_a.client() as client:
        mine = {d["id"] for d in client.get(f"/v1/knowledge-bases/{own['kb_id']}/documents").json()}
        for query in SQL_AND_FTS + [f"{q} heron" for q in SQL_AND_FTS[:10]]:
            response = client.post(f"/v1/knowledge-bases/{own['kb_id']}/query", json={"query": query, "top_k": 50})
            if response.status_code != 200:
                failures.append((query[:40], response.status_code, response.text[:120]))
                continue
            strays = [r for r in response.json()["results"]
                      if r["document_id"] not in mine or r["knowledge_base_id"] != own["kb_id"]]
            if strays or foreign["id"] in response.text:
                failures.append((query[:40], "chunks of another base", strays[:1]))
        found = client.post(f"/v1/knowledge-bases/{own['kb_id']}/query", json={"query": "heron"}).json()["results"]
    count("hostile inputs: query syntax and SQL in knowledge queries", len(SQL_AND_FTS) + 10)
    assert not failures, report(failures)
    assert own["id"] in [r["document_id"] for r in found]
    assert foreign["id"] not in [r["document_id"] for r in found]


def test_hostile_query_parameters_on_every_route(server, routes, tenant_a, tenant_b):
    """Every query parameter of every route given SQL, huge and negative numbers, long strings: never a 5xx,
    never another workspace's ids."""
    values = ["' OR 1=1 --", "-1", "99999999999999999999999", "1e309", "NaN", "x" * 5000, "🦩", "%", "true",
              "[]", "{}", "../../etc/passwd", "2024-13-45", "DESC; DROP TABLE runs"]
    tenant_b.obj("session")
    failures, tried = [], 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for route in routes:
            if route.is_websocket or route.is_mount or not route.query_params:
                continue
            path = route.fill(tenant_a.path_values(route))
            headers = _headers(route, server, tenant_a)
            for name in route.query_params:
                for value in values:
                    tried += 1
                    try:
                        with client.stream(route.method, path, params={name: value}, headers=headers,
                                           json=_valid_body(route, tenant_a) if route.takes_body else None) as response:
                            response.read()
                    except httpx.TransportError as exc:
                        failures.append((str(route), name, value[:30], repr(exc)))
                        continue
                    if response.status_code in SERVER_FAULTS or any(found in response.text for found in tenant_b.ids()):
                        failures.append((str(route), name, value[:30], response.status_code, response.text[:120]))
    count("hostile inputs: query parameters", tried)
    assert not failures, report(failures)


def test_template_syntax_in_user_input_is_never_evaluated(server, tenant_a):
    """What a user types is data: the echo model returns it byte for byte, through every dialect and kind."""
    failures = []
    for name, call in DIALECT_CALLS.items():
        text = call(tenant_a, TEMPLATES)
        if TEMPLATES not in text or "49" in text.replace(TEMPLATES, ""):
            failures.append((name, text[:200]))
    count("hostile inputs: template syntax through dialects", len(DIALECT_CALLS))
    assert not failures, report(failures)


@sqlite_only
def test_flows_naming_a_python_module_as_a_node_type_are_refused(server, tenant_a):
    failures = []
    existing = tenant_a.value("chatflow_app")
    with tenant_a.client() as client:
        before = client.get(f"/v1/apps/{existing}").json()["version"]
        # Agents name tools the same way: checked where the server knows its agents' tools.
        checks_tools = client.post("/v1/apps", json={"name": "probe", "kind": "agent", "config": {
            "mode": "react", "model": "fake/echo", "tools": ["no_such_tool"]}}).status_code == 422
        for node_type in MODULE_NODE_TYPES:
            graph = {"nodes": [{"id": "start", "type": "start"}, {"id": "evil", "type": node_type},
                               {"id": "out", "type": "answer", "text": "x"}],
                     "edges": [{"source": "start", "target": "evil"}, {"source": "evil", "target": "out"}]}
            nested = {"nodes": [{"id": "start", "type": "start", "inputs": [{"name": "query", "required": True}]},
                                {"id": "each", "type": "iteration", "items": "{{ start.query }}", "output": "x",
                                 "graph": {"nodes": [{"id": "evil", "type": node_type}], "edges": []}},
                                {"id": "end", "type": "end", "outputs": {"r": "{{ each.results }}"}}],
                      "edges": [{"source": "start", "target": "each"}, {"source": "each", "target": "end"}]}
            attempts = [
                client.post("/v1/apps", json={"name": "evil", "kind": "chatflow", "graph": graph}),
                client.post("/v1/apps", json={"name": "evil", "kind": "workflow", "graph": nested}),
                client.put(f"/v1/apps/{existing}", json={"graph": graph}),
            ]
            if checks_tools:
                attempts.append(client.post("/v1/apps", json={"name": "evil", "kind": "agent", "config": {
                    "mode": "react", "model": "fake/echo", "tools": [node_type]}}))
            for attempt in attempts:
                graph_attempt = attempt.request.method == "PUT" or b'"graph"' in attempt.request.content
                right_reason = "unknown node type" in attempt.text or not graph_attempt
                if attempt.status_code != 422 or not right_reason:
                    failures.append((node_type, attempt.request.method, attempt.status_code, attempt.text[:120]))
        after = client.get(f"/v1/apps/{existing}").json()["version"]
    count("hostile inputs: module names as node types and tools", len(MODULE_NODE_TYPES) * (4 if checks_tools else 3))
    assert not failures, report(failures)
    assert after == before
