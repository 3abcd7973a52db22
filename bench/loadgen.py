"""Closed-loop HTTP/1.1 load generator, run as its own process by the harness.

Why not an off-the-shelf tool: the scenarios need per-request latencies, time
to first token, gaps between tokens and, through the ``@<ns>;`` stamps the mock
puts in every token, the time each token spent in the relay; and the same
client must drive every target (mock, proxy, Headwater) so that their figures
compare. A keep-alive client on raw asyncio streams under uvloop costs a few
tens of microseconds per request, small against what it measures.

Reads one JSON spec on stdin, writes one JSON result to the spec's result_path:
  url, method, headers, body (text; "{client}" and "{seq}" are substituted),
  concurrency, duration + warmup (seconds) or requests_per_client,
  stream (parse the body as it arrives), expect (bytes that a good reply holds),
  ramp (seconds over which the clients start), vars (per-client values for "{var}").
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

STAMP = re.compile(rb"@(\d{6,20});")
MAX_SAMPLES = 40_000


@dataclass
class Totals:
    latencies: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    relay: list[float] = field(default_factory=list)
    tokens: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        self.statuses[what[:40]] = self.statuses.get(what[:40], 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ensure(self) -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes, on_data=None) -> tuple[int, bytes]:
        """Send one request, read the whole response; `on_data(bytes)` sees body pieces as they arrive."""
        await self.ensure()
        self.writer.write(request)
        reader = self.reader
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        parts: list[bytes] = []
        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                if on_data is not None:
                    on_data(data)
                parts.append(data)
        elif length is not None:
            data = await reader.readexactly(length)
            if on_data is not None and data:
                on_data(data)
            parts.append(data)
        else:
            data = await reader.read()
            if on_data is not None and data:
                on_data(data)
            parts.append(data)
            close = True
        if close:
            self.close()
        return status, b"".join(parts)


def build_request(spec: dict, client: int, seq: int) -> bytes:
    parts = urlsplit(spec["url"])
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = spec.get("body", "").replace("{client}", str(client)).replace("{seq}", str(seq))
    if spec.get("vars"):
        body = body.replace("{var}", spec["vars"][client % len(spec["vars"])])
    body = body.encode()
    headers = {"host": parts.netloc, "content-type": "application/json", **spec.get("headers", {})}
    if spec.get("method", "POST") != "GET" or body:
        headers["content-length"] = str(len(body))
    head = f"{spec.get('method', 'POST')} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


class StreamWatch:
    """Token arrival times of one streamed response, from the mock's stamps."""

    def __init__(self, sent: int):
        self.sent = sent
        self.buffer = b""
        self.arrivals: list[int] = []
        self.relay: list[int] = []

    def __call__(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buffer = self.buffer + data
        end = 0
        for match in STAMP.finditer(buffer):
            self.arrivals.append(now)
            self.relay.append(now - int(match.group(1)))
            end = match.end()
        self.buffer = buffer[end:][-64:]


async def client_loop(spec: dict, client: int, totals: Totals, window: tuple[float, float], stop_at: float) -> None:
    parts = urlsplit(spec["url"])
    connection = Connection(parts.hostname, parts.port or 80)
    expect = spec.get("expect", "").encode()
    stream = spec.get("stream", False)
    per_client = spec.get("requests_per_client")
    ramp = spec.get("ramp", 0.0)
    if ramp:
        await asyncio.sleep(random.uniform(0, ramp))
    seq = 0
    try:
        while True:
            if per_client is not None and seq >= per_client:
                break
            started = time.monotonic()
            if per_client is None and started >= stop_at:
                break
            request = build_request(spec, client, seq)
            seq += 1
            watch = StreamWatch(time.monotonic_ns()) if stream else None
            try:
                status, body = await connection.exchange(request, watch)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                connection.close()
                if window[0] <= started < window[1]:
                    totals.error(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            finished = time.monotonic()
            if not (window[0] <= started < window[1]):
                continue
            if status != 200 or (expect and expect not in body):
                totals.error(f"HTTP {status}: {body[:200]!r}")
                continue
            totals.ok += 1
            totals.latencies.append((finished - started) * 1000)
            if watch is not None and watch.arrivals:
                totals.tokens += len(watch.arrivals)
                totals.ttft.append((watch.arrivals[0] - watch.sent) / 1e6)
                totals.gaps.extend((b - a) / 1e6 for a, b in zip(watch.arrivals, watch.arrivals[1:]))
                totals.relay.extend(r / 1e6 for r in watch.relay)
    finally:
        connection.close()


def _sample(values: list[float]) -> list[float]:
    if len(values) <= MAX_SAMPLES:
        return values
    return random.sample(values, MAX_SAMPLES)


async def run(spec: dict) -> dict:
    totals = Totals()
    now = time.monotonic()
    if spec.get("requests_per_client") is not None:
        window = (now, float("inf"))
        stop_at = float("inf")
    else:
        window = (now + spec.get("warmup", 1.0), now + spec.get("warmup", 1.0) + spec["duration"])
        stop_at = window[1]
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    measured_from = time.monotonic()
    await asyncio.gather(*(client_loop(spec, i, totals, window, stop_at) for i in range(spec["concurrency"])))
    ended = time.monotonic()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = spec["duration"] if spec.get("requests_per_client") is None else ended - measured_from
    return {
        "ok": totals.ok, "errors": totals.errors, "error_kinds": totals.statuses, "error_samples": totals.error_samples,
        "elapsed_s": elapsed, "throughput_rps": totals.ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": _sample(totals.latencies), "ttft_ms": _sample(totals.ttft),
        "gap_ms": _sample(totals.gaps), "relay_ms": _sample(totals.relay), "tokens": totals.tokens,
        "client_cpu_s": (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime),
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    # A file rather than stdout: results of big runs are megabytes, and a pipe that the
    # harness does not drain while it samples the servers must not be able to cut them.
    with open(spec["result_path"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
