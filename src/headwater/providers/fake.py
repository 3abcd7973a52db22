"""A deterministic provider for testing the whole platform without a model.

Like pydantic-ai's `TestModel`, it answers from its input alone, so a test can
predict every byte: `echo` proves the user's text arrived, `context` proves
the system prompt and memory arrived (in order), `fail*` and `slow*` exercise
error paths, retries and cancellation. It streams word by word through the
same `ChatDelta` contract as the real providers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderBadRequest,
    ProviderUnavailable,
    Usage,
)

__all__ = ("FakeProvider", "FAKE_MODELS", "split_tokens")

FAKE_MODELS: tuple[str, ...] = ("echo", "context", "fail", "fail-midstream", "slow")

DEFAULT_SLOW_MS = 50
# What `fail-midstream` manages to say before breaking: fixed, so a test can
# assert exactly which partial text reached the client.
MIDSTREAM_TEXT = "this reply breaks off "

# A token is a word plus the whitespace after it (the first also keeps any
# leading whitespace), so "".join(tokens) gives back the text byte for byte.
_TOKEN_RE = re.compile(r"\s*\S+\s*")


def split_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _image_note(messages: list[ChatMessage]) -> str:
    count = sum(len(m.images) for m in messages)
    if not count:
        return ""
    return f" [{count} image{'s' if count != 1 else ''}]"


def _last_user(messages: list[ChatMessage]) -> ChatMessage | None:
    return next((m for m in reversed(messages) if m.role == "user"), None)


def _slow_delay(model: str) -> float | None:
    """Seconds per token for `slow` / `slow-<ms>`, None when `model` is not one."""
    if model == "slow":
        return DEFAULT_SLOW_MS / 1000
    prefix, _, ms = model.partition("-")
    if prefix == "slow" and ms.isdigit():
        return int(ms) / 1000
    return None


class FakeProvider(ChatProvider):
    """Provider `fake`: models `echo`, `context`, `fail`, `fail-midstream`, `slow`, `slow-<ms>`."""

    accepts_images = True

    async def list_models(self) -> list[str]:
        return list(FAKE_MODELS)

    async def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        delay = _slow_delay(model)
        if model == "fail":
            raise ProviderUnavailable("fake provider failure", status=503)
        if model == "fail-midstream":
            for token in split_tokens(MIDSTREAM_TEXT):
                await asyncio.sleep(0)
                yield ChatDelta(text=token)
            raise ProviderUnavailable("fake provider failure mid-stream", status=503)
        if model == "context":
            text = "\n".join(f"{m.role}: {m.content}{_image_note([m])}" for m in messages)
        elif model == "echo" or delay is not None:
            last = _last_user(messages)
            text = f"{last.content}{_image_note([last])}" if last else ""
        else:
            raise ProviderBadRequest(f"fake provider has no model {model!r}", status=404)

        text, finish_reason = _apply_limits(text, params)
        tokens = split_tokens(text)
        for token in tokens:
            # Even without a delay, give the loop a turn per token so consumers
            # and cancellation behave as they would against a network stream.
            await asyncio.sleep(delay or 0)
            yield ChatDelta(text=token)
        usage = Usage(
            prompt_tokens=sum(len(m.content.split()) for m in messages),
            completion_tokens=len(tokens),
        )
        yield ChatDelta(usage=usage, finish_reason=finish_reason)


def _apply_limits(text: str, params: GenerationParams) -> tuple[str, str]:
    """Cut at the first stop sequence (excluded, as OpenAI does), then at max_tokens."""
    finish_reason = "stop"
    for stop in params.stop or []:
        if stop and (at := text.find(stop)) != -1:
            text = text[:at]
    if params.max_tokens is not None:
        tokens = split_tokens(text)
        if len(tokens) > params.max_tokens:
            text = "".join(tokens[: params.max_tokens])
            finish_reason = "length"
    return text, finish_reason
