"""An OpenAI-compatible upstream whose faults are chosen per conversation, so fault cases can run at once.

A user message carrying `case-<hex>` plays the script registered for that case,
one mode per request: `ok`, `429` (with `Retry-After`), `500`, `400`, `hang`
(never answers), `stall` (two words, then nothing), `break` (one word, then the
connection drops). Built from the pieces of support.provider_mocks; every
request is recorded with the time it came, per case.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from support.provider_mocks import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    ServedApp,
    _last_user_text,
    _openai_error,
    _sse,
    reply_words,
)

CASE = re.compile(r"case-[0-9a-f]{8,}")


@dataclass
class FaultState:
    scripts: dict[str, list[str]] = field(default_factory=dict)
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    retry_after: str = "0.3"
    stopping: bool = False

    def play(self, case: str, *modes: str) -> str:
        self.scripts[case] = list(modes)
        self.arrivals[case] = []
        return case

    def next_mode(self, case: str | None) -> str:
        if case is None or not self.scripts.get(case):
            return "ok"
        return self.scripts[case].pop(0)

    async def hang(self) -> None:
        while not self.stopping:
            await asyncio.sleep(0.05)


def fault_app(state: FaultState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        found = CASE.search(_last_user_text(body["messages"]))
        case = found.group(0) if found else None
        if case is not None:
            state.arrivals.setdefault(case, []).append(time.monotonic())
        mode = state.next_mode(case)
        if mode == "429":
            return _openai_error(429, "slow down", {"Retry-After": state.retry_after})
        if mode == "500":
            return _openai_error(500, "upstream exploded")
        if mode == "400":
            return _openai_error(400, "this request is refused")
        if mode == "hang":
            await state.hang()
            return _openai_error(500, "released")
        words = reply_words(body["messages"])
        if not body.get("stream") and mode == "stall":  # a whole answer cannot stop half-way: it never comes
            await state.hang()
            return _openai_error(500, "released")
        if not body.get("stream") and mode == "break":
            raise RuntimeError("connection dropped before the answer")
        if not body.get("stream"):
            return {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                              "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse({"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            for i, word in enumerate(words):
                yield chunk({"content": word if i == 0 else " " + word})
                await asyncio.sleep(0.01)
                if mode == "break" and i == 0:
                    raise RuntimeError("connection dropped mid-stream")
                if mode == "stall" and i == 1:
                    await state.hang()
                    return
            yield chunk({}, finish="stop")
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def serve_faults() -> tuple[ServedApp, FaultState]:
    state = FaultState()
    return ServedApp(fault_app(state), state).start(), state  # type: ignore[arg-type]
