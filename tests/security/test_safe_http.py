"""The egress client refuses what SSRF needs, before any connection, and works for what is allowed.

Proof of "before any connection": every test runs with a guard on the network
backend that records each connect and fails the test if one targets anything
but loopback (this workplace must never send traffic to other addresses), and
the loopback-targeting refusals are aimed at a real local HTTP server that must
not see a single connection. Names resolve through an injected resolver only;
no test uses real DNS. The "public" server is a local one that a wrapped strict
policy admits at exactly its (ip, port).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpcore
import pytest

from headwater.errors import HeadwaterError, InvalidInput
from headwater.net import (
    EgressFailed,
    EgressRefused,
    EgressTooLarge,
    SafeHttpClient,
    strict_address_policy,
)
from headwater.net import safe_http

# ---------------------------------------------------------------- local servers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _record(self):
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.server.bodies.append(self.rfile.read(length))
        self.do_GET()

    def do_GET(self):
        self._record()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/hello":
            body = json.dumps({"host": self.headers.get("host"), "path": self.path, "method": self.command}).encode()
            self._send(200, body, {"Content-Type": "application/json", "Keep-Alive": "timeout=5", "X-Test": "yes"})
        elif url.path == "/redirect":
            self._send(int(query.get("status", "302")), b"", {"Location": query["to"]})
        elif url.path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif url.path == "/big":
            self._stream_big(int(query["n"]), declare=query.get("declare") == "1")
        elif url.path == "/hang":
            self.server.release.wait(30)
        else:
            self._send(404, b"not found")

    def _stream_big(self, total, declare):
        self.send_response(200)
        if declare:
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < total:
                self.wfile.write(chunk[: total - sent])
                sent += min(len(chunk), total - sent)
            self.wfile.flush()
            self.server.events.append(("sent-all", sent))
        except (BrokenPipeError, ConnectionResetError):
            self.server.events.append(("client-closed", sent))
        self.close_connection = True


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls_context: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[dict] = []
        self.bodies: list[bytes] = []
        self.events: list[tuple[str, int]] = []
        self.release = threading.Event()
        self.tls_context = tls_context

    def get_request(self):
        sock, addr = super().get_request()
        self.connections += 1
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(sock, server_side=True)
        return sock, addr

    def handle_error(self, request, client_address):  # TLS handshake failures are expected in one test
        pass

    @property
    def address(self) -> tuple[str, int]:
        return self.server_address[0], self.server_address[1]


def _start(server: LocalServer) -> LocalServer:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def server():
    s = _start(LocalServer())
    yield s
    s.release.set()
    s.shutdown()
    s.server_close()


@pytest.fixture
def second_server():
    s = _start(LocalServer())
    yield s
    s.shutdown()
    s.server_close()


# ---------------------------------------------------------------- guards and fakes


@pytest.fixture(autouse=True)
def connect_log(monkeypatch):
    """Every real connect the egress backend makes; anything off loopback fails the test at once."""
    log: list[tuple[str, int]] = []
    original = httpcore.AnyIOBackend.connect_tcp

    async def guarded(self, host, port, *args, **kwargs):
        log.append((host, port))
        assert ipaddress.ip_address(host).is_loopback, f"egress tried to connect to {host}:{port}"
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", guarded)
    return log


class FakeResolver:
    """Names used in these tests; anything else is an unknown host, never real DNS."""

    def __init__(self, table: dict[str, list[str]] | None = None):
        self.table = {
            "public.test": ["127.0.0.1"],
            "other.test": ["127.0.0.1"],
            "internal.test": ["10.1.2.3"],
            "rebind.test": ["93.184.216.34", "127.0.0.1"],
            "v6-private.test": ["fd00::1"],
            "mapped.test": ["::ffff:169.254.169.254"],
            **(table or {}),
        }
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test host")
        answer = self.table[host]
        return answer() if callable(answer) else list(answer)


def admitting(*addresses: tuple[str, int]):
    """The strict policy, plus exactly these (ip, port) pairs: our local 'public' servers."""
    admitted = set(addresses)

    def policy(ip, port):
        if (str(ip), port) in admitted:
            return None
        return strict_address_policy(ip, port)

    return policy


@pytest.fixture
async def client_for(server):
    clients = []

    def make(*servers: LocalServer, resolver: FakeResolver | None = None, **kwargs) -> SafeHttpClient:
        client = SafeHttpClient(
            resolver=resolver or FakeResolver(),
            address_policy=admitting(*(s.address for s in servers)),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# ---------------------------------------------------------------- refusals before any connection

BRIEF_REFUSALS = [
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "file:///etc/passwd",
    "ftp://example.com/",
    "http://user:pass@example.com/",
    # more of the same family
    "gopher://example.com/",
    "data:text/plain,hello",
    "dict://example.com:11211/",
    "javascript:alert(1)",
    "//example.com/",
    "http://user@example.com/",
    "http://[fe80::1%25eth0]/",
    "http://[fd00::1]/",
    "http://[::]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[::127.0.0.1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://100.64.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://0x7f.1/",
    "http://017700000001/",
    "https://127.0.0.1:443/",
]


@pytest.mark.parametrize("url", BRIEF_REFUSALS)
async def test_refused_before_dns_or_connect(url, connect_log, server):
    resolver = FakeResolver()
    async with SafeHttpClient(resolver=resolver) as client:
        with pytest.raises(EgressRefused) as refused:
            await client.get(url)
    assert refused.value.status_code == 422
    assert isinstance(refused.value, InvalidInput)
    assert connect_log == []
    assert resolver.calls == []
    assert server.connections == 0


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/hello",
    "http://[::ffff:127.0.0.1]:{port}/hello",
    "http://[::ffff:7f00:1]:{port}/hello",
    "http://0x7f000001:{port}/hello",
    "http://2130706433:{port}/hello",
    "http://127.1:{port}/hello",
    "http://0177.0.0.1:{port}/hello",
    "http://0.0.0.0:{port}/hello",
    "http://localhost:{port}/hello",
]


@pytest.mark.parametrize("template", LOOPBACK_SPELLINGS)
async def test_live_loopback_server_never_sees_a_connection(template, server, connect_log):
    """Aimed at a real server on 127.0.0.1 that would answer: it must receive nothing."""
    url = template.format(port=server.address[1])
    async with SafeHttpClient(resolver=FakeResolver({"localhost": ["127.0.0.1", "::1"]})) as client:
        with pytest.raises(EgressRefused):
            await client.get(url)
    assert connect_log == []
    assert server.connections == 0 and server.requests == []


@pytest.mark.parametrize("host", ["internal.test", "rebind.test", "v6-private.test", "mapped.test"])
async def test_host_resolving_to_a_private_address_is_refused(host, connect_log):
    resolver = FakeResolver()
    async with SafeHttpClient(resolver=resolver) as client:
        with pytest.raises(EgressRefused) as refused:
            await client.get(f"http://{host}/?token=s3cret")
    assert resolver.calls == [host]
    assert connect_log == []
    message = refused.value.detail
    assert "s3cret" not in message and "10.1.2.3" not in message and "127.0.0.1" not in message


async def test_messages_do_not_echo_credentials_or_query():
    async with SafeHttpClient(resolver=FakeResolver()) as client:
        for url in ["http://alice:hunter2@example.com/x?key=abc123", "http://10.0.0.1/admin?key=abc123"]:
            with pytest.raises(EgressRefused) as refused:
                await client.get(url)
            assert "hunter2" not in refused.value.detail and "abc123" not in refused.value.detail


async def test_unknown_host_is_a_failure_not_a_crash(connect_log):
    async with SafeHttpClient(resolver=FakeResolver()) as client:
        with pytest.raises(EgressFailed) as failed:
            await client.get("http://nowhere.test/")
    assert failed.value.status_code == 502
    assert connect_log == []


async def test_only_the_exact_admitted_address_and_port_pass(server, second_server, client_for, connect_log):
    client = client_for(server)
    with pytest.raises(EgressRefused):
        await client.get(f"http://127.0.0.1:{second_server.address[1]}/hello")
    assert second_server.connections == 0


async def test_backend_refuses_a_host_the_gate_did_not_check(server, connect_log):
    backend = safe_http._PinnedNetworkBackend()
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", server.address[1])
    assert connect_log == [] and server.connections == 0


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/",
        "http://[::1]:{port}/hello",
        "http://127.0.0.1:{other_port}/hello",
        "http://internal.test/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://user:pass@public.test:{port}/hello",
    ],
)
async def test_redirect_to_a_forbidden_target_is_refused(target, server, second_server, client_for, connect_log):
    port = server.address[1]
    target = target.format(port=port, other_port=second_server.address[1])
    client = client_for(server)
    with pytest.raises(EgressRefused):
        await client.get(f"http://public.test:{port}/redirect", params={"to": target})
    assert [r["path"].split("?")[0] for r in server.requests] == ["/redirect"]
    assert connect_log == [("127.0.0.1", port)]
    assert second_server.connections == 0


async def test_redirect_to_an_allowed_target_is_followed(server, second_server, client_for):
    client = client_for(server, second_server)
    target = f"http://other.test:{second_server.address[1]}/hello"
    response = await client.get(
        f"http://public.test:{server.address[1]}/redirect",
        params={"to": target},
        headers={"Authorization": "Bearer secret", "X-Custom": "kept"},
    )
    assert response.status_code == 200
    assert response.url == target
    assert response.json()["host"] == f"other.test:{second_server.address[1]}"
    # Credentials stay with the origin they were given for; other headers follow.
    assert server.requests[0]["headers"]["authorization"] == "Bearer secret"
    assert "authorization" not in second_server.requests[0]["headers"]
    assert second_server.requests[0]["headers"]["x-custom"] == "kept"


async def test_303_turns_post_into_get_and_307_keeps_it(server, client_for):
    client = client_for(server)
    base = f"http://public.test:{server.address[1]}"
    seen = await client.request("POST", f"{base}/redirect", params={"to": "/hello", "status": "303"}, json={"a": 1})
    assert seen.json()["method"] == "GET"
    kept = await client.request("POST", f"{base}/redirect", params={"to": "/hello", "status": "307"}, json={"a": 1})
    assert kept.json()["method"] == "POST"
    assert server.bodies[-1] == b'{"a": 1}'


async def test_redirect_loop_stops_at_max_redirects(server, client_for):
    client = client_for(server, max_redirects=3)
    with pytest.raises(EgressFailed, match="too many redirects"):
        await client.get(f"http://public.test:{server.address[1]}/loop")
    assert len(server.requests) == 4


# ---------------------------------------------------------------- the allowed path


async def test_allowed_request_end_to_end_keeps_the_host_header(server, client_for, connect_log):
    resolver = FakeResolver()
    client = client_for(server, resolver=resolver)
    port = server.address[1]
    response = await client.get(
        f"http://public.test:{port}/hello",
        params={"q": "1"},
        headers={"Host": "evil.test", "Connection": "upgrade", "Upgrade": "h2c", "X-Custom": "yes"},
    )
    assert response.status_code == 200
    assert response.json() == {"host": f"public.test:{port}", "path": "/hello?q=1", "method": "GET"}
    assert response.text().startswith("{")
    assert response.url == f"http://public.test:{port}/hello?q=1"
    assert response.headers["x-test"] == "yes"
    assert "keep-alive" not in response.headers and "connection" not in response.headers
    sent = server.requests[0]["headers"]
    assert sent["host"] == f"public.test:{port}"
    assert sent["x-custom"] == "yes"
    assert "upgrade" not in sent and sent.get("connection", "keep-alive") == "keep-alive"
    assert connect_log == [("127.0.0.1", port)]
    assert resolver.calls == ["public.test"]


async def test_post_json_body_arrives(server, client_for):
    client = client_for(server)
    response = await client.request("POST", f"http://public.test:{server.address[1]}/hello", json={"x": [1, 2]})
    assert response.json()["method"] == "POST"
    assert json.loads(server.bodies[0]) == {"x": [1, 2]}
    assert server.requests[0]["headers"]["content-type"] == "application/json"


async def test_connects_to_the_checked_address_without_a_second_lookup(server, client_for, connect_log):
    """DNS rebinding: a second answer pointing inside must never be used."""
    answers = iter([["127.0.0.1"]])

    def flip():
        return next(answers, ["10.9.9.9"])

    resolver = FakeResolver({"flip.test": flip})
    client = client_for(server, resolver=resolver)
    response = await client.get(f"http://flip.test:{server.address[1]}/hello")
    assert response.status_code == 200
    assert resolver.calls == ["flip.test"]
    assert connect_log == [("127.0.0.1", server.address[1])]
    # The next request resolves again, gets the inside address, and is refused.
    with pytest.raises(EgressRefused):
        await client.get(f"http://flip.test:{server.address[1]}/hello")


async def test_allow_private_reaches_a_local_endpoint(server):
    async with SafeHttpClient(allow_private=True) as client:
        response = await client.get(f"http://127.0.0.1:{server.address[1]}/hello")
    assert response.status_code == 200
    async with SafeHttpClient(allow_private=True) as client:
        with pytest.raises(EgressRefused):
            await client.get("file:///etc/passwd")


async def test_bad_method_headers_and_non_json_body_are_typed_errors(server, client_for):
    client = client_for(server)
    with pytest.raises(EgressRefused):
        await client.get(f"http://public.test:{server.address[1]}/hello", headers={"X-A": "1\r\nHost: evil"})
    assert server.connections == 0
    with pytest.raises(EgressRefused):
        await client.request("CONNECT", f"http://public.test:{server.address[1]}/hello")
    response = await client.get(f"http://public.test:{server.address[1]}/missing")
    assert response.status_code == 404
    with pytest.raises(EgressFailed):
        response.json()


# ---------------------------------------------------------------- size and time caps


async def _wait_for(predicate, seconds=10.0):
    import asyncio

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("declare", ["0", "1"])
async def test_body_over_the_cap_is_abandoned(declare, server, client_for):
    client = client_for(server, max_bytes=100_000)
    with pytest.raises(EgressTooLarge) as too_large:
        await client.get(f"http://public.test:{server.address[1]}/big", params={"n": 50_000_000, "declare": declare})
    assert too_large.value.status_code == 502
    assert isinstance(too_large.value, EgressFailed)
    # The server's writes start failing: we closed the connection instead of draining 50 MB.
    assert await _wait_for(lambda: server.events)
    kind, sent = server.events[0]
    assert kind == "client-closed" and sent < 50_000_000


async def test_body_under_the_cap_is_returned_whole(server, client_for):
    client = client_for(server, max_bytes=100_000)
    response = await client.get(f"http://public.test:{server.address[1]}/big", params={"n": 99_000})
    assert len(response.content) == 99_000
    with pytest.raises(EgressTooLarge):
        await client.get(f"http://public.test:{server.address[1]}/big", params={"n": 99_000}, max_bytes=1000)


async def test_hanging_server_times_out(server, client_for):
    client = client_for(server, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(EgressFailed) as failed:
        await client.get(f"http://public.test:{server.address[1]}/hang")
    assert time.monotonic() - started < 1.0 + 1.0
    assert "timed out" in failed.value.detail
    assert isinstance(failed.value, HeadwaterError) and failed.value.status_code == 502


async def test_per_call_timeout_overrides_the_default(server, client_for):
    client = client_for(server, timeout=30.0)
    started = time.monotonic()
    with pytest.raises(EgressFailed):
        await client.get(f"http://public.test:{server.address[1]}/hang", timeout=0.5)
    assert time.monotonic() - started < 0.5 + 1.0


# ---------------------------------------------------------------- TLS: SNI and verification for the name


def _self_signed(tmp_path, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _self_signed(tmp_path, "public.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    s = _start(LocalServer(tls_context=context))
    s.sni_names = names
    s.cert_path = cert
    yield s
    s.shutdown()
    s.server_close()


async def test_tls_uses_the_host_name_for_sni_and_verification(tls_server, client_for, connect_log):
    trust = ssl.create_default_context(cafile=tls_server.cert_path)
    client = client_for(tls_server, ssl_context=trust)
    port = tls_server.address[1]
    response = await client.get(f"https://public.test:{port}/hello")
    assert response.status_code == 200
    assert response.json()["host"] == f"public.test:{port}"
    assert tls_server.sni_names == ["public.test"]
    assert connect_log == [("127.0.0.1", port)]
    # Same address, another name: the certificate does not match it, so the request fails.
    with pytest.raises(EgressFailed):
        await client.get(f"https://other.test:{port}/hello")
    assert tls_server.sni_names[-1] == "other.test"
