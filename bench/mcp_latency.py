"""Added latency of an MCP tools/call on a chatbot over the same call through /v1/chat/completions.

    python -m bench.mcp_latency [--calls 200]

Starts one Headwater server (SQLite, fake provider, in a temporary directory), makes
one chatbot on `fake/echo`, then alternates the two calls from one client process,
each on a warm connection: the OpenAI-compatible route with httpx, and tools/call
with the official `mcp` client SDK over one open MCP connection (the 2026 per-request
wire the SDK picks by default, and the older initialize-handshake session). Both runs
are recorded in full (run, events, messages), so the difference is the MCP layer:
auth per request, JSON-RPC, the SDK's dispatch and the SSE response framing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(data_dir: str, key: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({"HEADWATER_DATA_DIR": data_dir, "HEADWATER_ADMIN_KEY": key, "HEADWATER_ENABLE_FAKE_PROVIDER": "true",
                "HEADWATER_RATE_LIMIT_PER_MINUTE": "1000000"})
    process = subprocess.Popen([sys.executable, "-m", "headwater", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p90": ordered[int(len(ordered) * 0.9) - 1],
            "mean": statistics.fmean(ordered)}


async def _measure(base: str, key: str, calls: int) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
        bot = (await http.post("/v1/apps", json={"name": "bench", "kind": "chatbot",
                                                   "config": {"model": "fake/echo"}})).json()
        body = {"model": bot["slug"], "messages": [{"role": "user", "content": "one two three four"}]}
        samples: dict[str, list[float]] = {"completions": [], "mcp": [], "mcp_legacy": []}
        async with httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=30) as h1, \
                httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=30) as h2:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=h1), cache=None) as modern, \
                    Client(streamable_http_client(f"{base}/mcp", http_client=h2), cache=None,
                           mode="legacy") as legacy:
                for round_ in range(calls + 10):  # the first 10 rounds warm up
                    for name, call in (
                        ("completions", lambda: http.post("/v1/chat/completions", json=body)),
                        ("mcp", lambda: modern.call_tool(bot["slug"], {"message": "one two three four"})),
                        ("mcp_legacy", lambda: legacy.call_tool(bot["slug"], {"message": "one two three four"})),
                    ):
                        started = time.perf_counter()
                        result = await call()
                        elapsed = (time.perf_counter() - started) * 1000
                        ok = result.status_code == 200 if name == "completions" else not result.is_error
                        if not ok:
                            raise RuntimeError(f"{name} failed: {result}")
                        if round_ >= 10:
                            samples[name].append(elapsed)
        return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    key = "hw_bench_" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as data_dir:
        process, base = _start(data_dir, key)
        try:
            samples = asyncio.run(_measure(base, key, args.calls))
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
    base_line = _summary(samples["completions"])
    print(f"{args.calls} sequential calls each, alternating, one client, fake/echo chatbot (ms):")
    for name, values in samples.items():
        s = _summary(values)
        print(f"  {name:12s} median {s['median']:6.2f}  p90 {s['p90']:6.2f}  mean {s['mean']:6.2f}"
              f"  added median {s['median'] - base_line['median']:+6.2f}")


if __name__ == "__main__":
    main()
