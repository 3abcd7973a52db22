"""Small stand-ins for the OpenAI and Anthropic HTTP APIs, served for real.

The providers are tested through the official SDKs against these, so what is
checked is the wire format the SDKs actually send and parse. Each app reads a
script of modes (`"ok"`, `"429"`, `"500"`, `"hang"`...), one per request, from
its `MockState`, and records every request it saw.

Tool calling: a conversation holding a `<script>[...]</script>` block (the format
of headwater.providers.scripted) is answered from that script, entry i for the
i-th assistant turn after it: `{"say": ..., "tool_calls": [{"name", "arguments"}]}`,
sent the way each API sends tool calls (OpenAI: streamed `tool_calls` deltas whose
arguments arrive in fragments; Anthropic: `tool_use` blocks with `input_json_delta`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7


@dataclass
class MockState:
    script: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    retry_after: str = "0"
    send_usage: bool = True
    stopping: bool = False

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.headers.clear()
        self.retry_after = "0"
        self.send_usage = True

    def next_mode(self) -> str:
        return self.script.pop(0) if self.script else "ok"

    async def hang(self) -> None:
        # Polls instead of sleeping long so the server can shut down promptly.
        while not self.stopping:
            await asyncio.sleep(0.05)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(part["text"] for part in content if part.get("type") == "text")
    return ""


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


def reply_words(messages: list[dict[str, Any]]) -> list[str]:
    return f"echo: {_last_user_text(messages)}".split(" ")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def scripted_reply(messages: list[dict[str, Any]], system: str = "") -> dict[str, Any] | None:
    """The script entry for this turn, or None when the conversation holds no script (or it ran out)."""
    texts = [("system", system)] + [(m.get("role", ""), _text_of(m.get("content"))) for m in messages]
    for position in range(len(texts) - 1, -1, -1):
        role, text = texts[position]
        if role == "assistant" or "<script>" not in text:
            continue
        script = json.loads(text.split("<script>", 1)[1].split("</script>", 1)[0])
        replied = sum(1 for later, _ in texts[position + 1:] if later == "assistant")
        return script[replied] if replied < len(script) else None
    return None


def _fragments(text: str, parts: int = 3) -> list[str]:
    step = max(1, len(text) // parts)
    return [text[i:i + step] for i in range(0, len(text), step)] or [""]


# --- OpenAI ---------------------------------------------------------------


def _openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "mock_error", "code": None, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def openai_app(state: MockState) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models(request: Request):
        state.headers.append(dict(request.headers))
        mode = state.next_mode()
        if mode == "401":
            return _openai_error(401, "bad key")
        return {
            "object": "list",
            "data": [
                {"id": "mock-small", "object": "model", "created": 0, "owned_by": "mock"},
                {"id": "library/llama3:8b", "object": "model", "created": 0, "owned_by": "mock"},
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        mode = state.next_mode()
        if mode == "429":
            return _openai_error(429, "slow down", {"Retry-After": state.retry_after})
        if mode in ("500", "503"):
            return _openai_error(int(mode), "upstream exploded")
        if mode == "401":
            # Real servers quote the rejected key back; it must not reach our errors.
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return _openai_error(401, f"Incorrect API key provided: {key}")
        if mode == "400":
            return _openai_error(400, "model 'x' does not exist")
        if mode == "hang":
            await state.hang()
            return _openai_error(500, "released")

        entry = scripted_reply(body["messages"])
        if entry is not None and (entry.get("tool_calls") or "say" in entry):
            return _openai_scripted(body, entry)
        words = reply_words(body["messages"])
        if not body.get("stream"):
            return {
                "id": "cmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 18},
            }

        include_usage = state.send_usage and (body.get("stream_options") or {}).get("include_usage")

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True):
            return {
                "id": "cmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
                "usage": usage,
            }

        async def events() -> AsyncIterator[bytes]:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            for i, word in enumerate(words):
                yield _sse(chunk({"content": word if i == 0 else " " + word}))
                await asyncio.sleep(0)
                if mode == "break" and i == 0:
                    raise RuntimeError("connection dropped mid-stream")
            yield _sse(chunk({}, finish="stop"))
            if include_usage:
                usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 18}
                yield _sse(chunk({}, usage=usage, choices=False))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _openai_scripted(body: dict[str, Any], entry: dict[str, Any]):
    say = str(entry.get("say", ""))
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
             for i, c in enumerate(entry.get("tool_calls") or ())]
    finish = "tool_calls" if calls else "stop"
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 18}
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": say or None}
        if calls:
            message["tool_calls"] = calls
        return {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, chunk_usage: Any = None) -> bytes:
        return _sse({"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [] if chunk_usage else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                     "usage": chunk_usage})

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": None if calls and not say else ""})
        for i, word in enumerate(say.split(" ") if say else ()):
            yield chunk({"content": word if i == 0 else " " + word})
        for index, call in enumerate(calls):
            opening = {"index": index, "id": call["id"], "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}}
            yield chunk({"tool_calls": [opening]})
            for fragment in _fragments(call["function"]["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                await asyncio.sleep(0)
        yield chunk({}, finish_reason=finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield chunk({}, chunk_usage=usage)
        yield _sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream")


# --- Anthropic ------------------------------------------------------------


def _anthropic_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def anthropic_app(state: MockState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        mode = state.next_mode()
        if mode == "429":
            return _anthropic_error(429, "rate_limit_error", "slow down", {"retry-after": state.retry_after})
        if mode == "529":
            return _anthropic_error(529, "overloaded_error", "Overloaded")
        if mode == "401":
            auth = request.headers.get("x-api-key") or request.headers.get("authorization", "")
            return _anthropic_error(401, "authentication_error", f"invalid x-api-key {auth}")
        if mode == "400":
            return _anthropic_error(400, "invalid_request_error", "messages: field required")
        if mode == "hang":
            await state.hang()
            return _anthropic_error(500, "api_error", "released")

        system = body.get("system") if isinstance(body.get("system"), str) else ""
        entry = scripted_reply(body["messages"], system)
        if entry is not None and (entry.get("tool_calls") or "say" in entry):
            return StreamingResponse(_anthropic_scripted(body, entry), media_type="text/event-stream")
        words = reply_words(body["messages"])
        if body.get("max_tokens", 0) < len(words):
            words, stop_reason = words[: body["max_tokens"]], "max_tokens"
        else:
            stop_reason = "end_turn"

        async def events() -> AsyncIterator[bytes]:
            message = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": body["model"],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
            }
            yield _sse({"type": "message_start", "message": message}, "message_start")
            if mode == "error-event":
                yield _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
                return
            yield _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                       "content_block_start")
            yield _sse({"type": "ping"}, "ping")
            for i, word in enumerate(words):
                delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                yield _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
                await asyncio.sleep(0)
            yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            yield _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": COMPLETION_TOKENS},
                },
                "message_delta",
            )
            yield _sse({"type": "message_stop"}, "message_stop")

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _anthropic_scripted(body: dict[str, Any], entry: dict[str, Any]) -> AsyncIterator[bytes]:
    say = str(entry.get("say", ""))
    calls = list(entry.get("tool_calls") or ())
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": body["model"],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}
    yield _sse({"type": "message_start", "message": message}, "message_start")
    index = 0
    if say:
        yield _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                   "content_block_start")
        yield _sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": say}},
                   "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        index = 1
    for offset, call in enumerate(calls):
        block = {"type": "tool_use", "id": f"toolu_{offset}", "name": call["name"], "input": {}}
        yield _sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
        for fragment in _fragments(json.dumps(call.get("arguments", {}))):
            yield _sse({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment}}, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        index += 1
    yield _sse({"type": "message_delta", "delta": {"stop_reason": "tool_use" if calls else "end_turn",
                                                   "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS}}, "message_delta")
    yield _sse({"type": "message_stop"}, "message_stop")


# --- serving ----------------------------------------------------------------


class ServedApp:
    """Runs an ASGI app with uvicorn on 127.0.0.1 (free port) in a thread."""

    def __init__(self, app: FastAPI, state: MockState):
        self.state = state
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("mock server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.state.stopping = True
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
