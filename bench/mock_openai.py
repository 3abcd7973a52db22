"""A deliberately cheap OpenAI-compatible model server for the benchmark.

It is the thing Headwater calls through its real HTTP provider path, and the
thing the "floor" baseline calls directly, so it must cost as little CPU as
possible: raw asyncio protocol + httptools parsing + orjson, no framework.

The model name chooses the shape of the answer: ``t<tokens>-d<delay ms>``,
e.g. ``t16-d0`` (16 tokens, no delay) or ``t200-d50`` (200 tokens, 50 ms apart).
Every token's text carries the moment it was sent, ``@<monotonic ns>;``:
``time.monotonic_ns()`` reads CLOCK_MONOTONIC, which all processes on the
machine share, so a client can compute, per token, how long the relay took.

Usage: python -m bench.mock_openai --port 8101
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time

import httptools
import orjson

MODEL_PATTERN = re.compile(r"t(\d+)-d(\d+(?:\.\d+)?)")
DEFAULT_TOKENS, DEFAULT_DELAY_MS = 16, 0.0


def answer_shape(model: str) -> tuple[int, float]:
    found = MODEL_PATTERN.search(model or "")
    if not found:
        return DEFAULT_TOKENS, DEFAULT_DELAY_MS
    return max(1, int(found.group(1))), float(found.group(2))


def stamp() -> str:
    return f"@{time.monotonic_ns()};"


def _chunk(model: str, delta: dict, finish_reason: str | None = None) -> bytes:
    body = orjson.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
    return _http_chunk(b"data: " + body + b"\n\n")


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


JSON_HEAD = b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n")


class MockProtocol(asyncio.Protocol):
    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.queue: list[tuple[bytes, bytes]] = []  # requests waiting while a stream is being written
        self.busy = False

    # --- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc):
        self.transport = None

    # --- httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.body = []

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        request = (self.parser.get_method(), self.url, b"".join(self.body))
        if self.busy:
            self.queue.append(request)
        else:
            self.handle(*request)

    # --- answering
    def handle(self, method: bytes, url: bytes, body: bytes) -> None:
        path = url.split(b"?", 1)[0]
        if path == b"/healthz" or (method == b"GET" and path == b"/v1/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "t16-d0", "object": "model", "owned_by": "mock"}]})
        elif method == b"POST" and path.endswith(b"/chat/completions"):
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                self.send_json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
                return
            tokens, delay_ms = answer_shape(str(request.get("model", "")))
            prompt_tokens = sum(len(str(m.get("content", ""))) // 4 + 1 for m in request.get("messages", []))
            if request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                if delay_ms <= 0:
                    self.write_whole_stream(request.get("model", ""), tokens, prompt_tokens, include_usage)
                    return
                self.busy = True
                task = asyncio.get_running_loop().create_task(
                    self.stream(request.get("model", ""), tokens, delay_ms, prompt_tokens, include_usage))
                task.add_done_callback(self.stream_done)
            else:
                text = "".join(f" w{i}{stamp()}" for i in range(tokens))
                self.send_json(200, {
                    "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": request.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": _usage(prompt_tokens, tokens),
                })
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def send_json(self, status: int, payload: dict) -> None:
        if self.transport is None:
            return
        data = orjson.dumps(payload)
        self.transport.write(JSON_HEAD % (status, len(data)) + data)

    def write_whole_stream(self, model: str, tokens: int, prompt_tokens: int, include_usage: bool) -> None:
        # Zero delay: the whole stream in one write, still one SSE event per token.
        if self.transport is None:
            return
        parts = [SSE_HEAD, _chunk(model, {"role": "assistant", "content": ""})]
        parts += [_chunk(model, {"content": f" w{i}{stamp()}"}) for i in range(tokens)]
        parts += self._tail(model, prompt_tokens, tokens, include_usage)
        self.transport.write(b"".join(parts))

    async def stream(self, model: str, tokens: int, delay_ms: float, prompt_tokens: int, include_usage: bool):
        self.transport.write(SSE_HEAD + _chunk(model, {"role": "assistant", "content": ""}))
        delay = delay_ms / 1000
        for i in range(tokens):
            await asyncio.sleep(delay)
            if self.transport is None or self.transport.is_closing():
                return  # the client went away (Headwater cancelled the run)
            self.transport.write(_chunk(model, {"content": f" w{i}{stamp()}"}))
        if self.transport is not None:
            self.transport.write(b"".join(self._tail(model, prompt_tokens, tokens, include_usage)))

    @staticmethod
    def _tail(model: str, prompt_tokens: int, tokens: int, include_usage: bool) -> list[bytes]:
        parts = [_chunk(model, {}, "stop")]
        if include_usage:
            usage = orjson.dumps({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
                                  "model": model, "choices": [], "usage": _usage(prompt_tokens, tokens)})
            parts.append(_http_chunk(b"data: " + usage + b"\n\n"))
        parts.append(_http_chunk(b"data: [DONE]\n\n"))
        parts.append(b"0\r\n\r\n")
        return parts

    def stream_done(self, _task):
        self.busy = False
        if self.queue and self.transport is not None:
            self.handle(*self.queue.pop(0))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
