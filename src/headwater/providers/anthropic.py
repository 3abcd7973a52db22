"""Anthropic's Messages API through the official SDK.

Uses `messages.create(stream=True)` and reads the raw events itself: usage
arrives in `message_start` (input) and `message_delta` (output, cumulative),
which the raw events expose directly, and nothing else of the SDK's message
accumulator is needed. SDK retries are off; `stream_with_retries` decides.
Tools go out as `tools` (`input_schema`); a `tool_use` block's input arrives as
`input_json_delta` fragments, assembled here into a `ToolCall`. Tool results
go back as `tool_result` blocks of a user turn, as the API wants them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ToolCall,
    Usage,
)
from headwater.providers.http_errors import error_for_status, parse_retry_after, redact, upstream_message
from headwater.providers.retry import stream_with_retries

__all__ = ("AnthropicProvider", "DEFAULT_MAX_TOKENS")

# The API rejects a request without max_tokens; this keeps casual chat cheap.
DEFAULT_MAX_TOKENS = 1024

# Passing an explicit key stops the SDK from falling back to ANTHROPIC_API_KEY
# or credential files of the server's own account (see openai_compat).
NO_KEY_PLACEHOLDER = "no-key"

# Our finish reasons follow OpenAI's vocabulary, which the rest of the platform speaks.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# An `error` event inside a 200 stream carries only its type; map it as the
# equivalent HTTP status would be.
_ERROR_TYPES: dict[str, type[ProviderError]] = {
    "overloaded_error": ProviderUnavailable,
    "api_error": ProviderUnavailable,
    "rate_limit_error": ProviderRateLimited,
    "timeout_error": ProviderTimeout,
    "authentication_error": ProviderAuthError,
    "permission_error": ProviderAuthError,
    "invalid_request_error": ProviderBadRequest,
    "not_found_error": ProviderBadRequest,
    "request_too_large": ProviderBadRequest,
}

_DATA_URI = re.compile(r"data:(?P<media>[\w/+.-]+);base64,(?P<data>.*)", re.DOTALL)


class AnthropicProvider(ChatProvider):
    accepts_images = True

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        name: str = "anthropic",
    ):
        self.name = name
        self._api_key = api_key
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._client = anthropic.AsyncAnthropic(
            base_url=base_url,
            api_key=api_key or NO_KEY_PLACEHOLDER,
            timeout=timeout,
            max_retries=0,
        )

    def supports_tools(self, model: str) -> bool:
        return True

    def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        return stream_with_retries(
            lambda: self._stream_once(model, messages, params),
            max_retries=self._max_retries,
            base_delay=self._retry_base_delay,
            max_delay=self._retry_max_delay,
        )

    async def _stream_once(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        system, turns = _to_anthropic(messages)
        kwargs: dict[str, Any] = {}
        if system:
            kwargs["system"] = system
        if params.stop:
            kwargs["stop_sequences"] = params.stop
        # The installed SDK no longer types sampling parameters; the API
        # still takes them, so they go in the body only when a user set them.
        sampling = {k: v for k, v in (("temperature", params.temperature), ("top_p", params.top_p)) if v is not None}
        if sampling:
            kwargs["extra_body"] = sampling
        if params.tools:
            kwargs["tools"] = [{"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
                               for tool in params.tools]
        usage = Usage()
        calls: dict[int, dict[str, str]] = {}  # content block index -> the tool_use block being assembled
        finish_reason = "stop"
        try:
            stream = await self._client.messages.create(
                model=model,
                messages=turns,
                max_tokens=params.max_tokens or DEFAULT_MAX_TOKENS,
                stream=True,
                **kwargs,
            )
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from None
        try:
            async for event in stream:
                if event.type == "message_start":
                    u = event.message.usage
                    usage.prompt_tokens = _input_tokens(u)
                    usage.completion_tokens = u.output_tokens or 0
                elif event.type == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        calls[event.index] = {"id": block.id, "name": block.name, "arguments": ""}
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta" and event.delta.text:
                        yield ChatDelta(text=event.delta.text)
                    elif event.delta.type == "input_json_delta" and event.index in calls:
                        calls[event.index]["arguments"] += event.delta.partial_json or ""
                elif event.type == "message_delta":
                    if event.delta.stop_reason:
                        finish_reason = _FINISH_REASONS.get(event.delta.stop_reason, event.delta.stop_reason)
                    # output_tokens here is cumulative, not an increment.
                    usage.completion_tokens = event.usage.output_tokens
                    if event.usage.input_tokens is not None:
                        usage.prompt_tokens = _input_tokens(event.usage)
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from None
        finally:
            await stream.close()
        tool_calls = [ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"] or "{}")
                      for _, c in sorted(calls.items())] or None
        yield ChatDelta(usage=usage, finish_reason=finish_reason, tool_calls=tool_calls)

    async def list_models(self) -> list[str]:
        try:
            return [model.id async for model in self._client.models.list()]
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from None

    async def aclose(self) -> None:
        await self._client.close()

    def _map_error(self, exc: anthropic.AnthropicError) -> ProviderError:
        # Raised `from None`: the SDK exception may quote what the server echoed, key included.
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderTimeout(f"{self.name}: request timed out")
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderUnavailable(f"{self.name}: cannot connect to the server")
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            message = redact(upstream_message(exc.body, exc.message), self._api_key)
            retry_after = parse_retry_after(exc.response.headers)
            if status < 400:
                # An error event in a 200 stream: classify by its type instead.
                error_type = _ERROR_TYPES.get(exc.type or "", ProviderError)
                return error_type(f"{self.name}: upstream error: {message}", retry_after=retry_after)
            return error_for_status(
                status, f"{self.name}: upstream returned {status}: {message}", retry_after=retry_after
            )
        message = exc.message if isinstance(exc, anthropic.APIError) else str(exc)
        return ProviderError(f"{self.name}: {redact(message, self._api_key)}")


def _input_tokens(usage: Any) -> int:
    # Cached prompt tokens are billed and counted separately; together they are the prompt.
    return (
        (usage.input_tokens or 0)
        + (getattr(usage, "cache_creation_input_tokens", None) or 0)
        + (getattr(usage, "cache_read_input_tokens", None) or 0)
    )


def _to_anthropic(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """System text joined for `system=`; the turns with consecutive same-role
    messages merged, since the API wants user and assistant to alternate."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
    blocks = [_image_block(image.url) for image in message.images]
    if message.content or not (blocks or message.tool_calls):
        blocks.append({"type": "text", "text": message.content})
    blocks += [{"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call.arguments)}
               for call in message.tool_calls]
    return blocks


def _tool_input(arguments: str) -> dict[str, Any]:
    """The API wants the input as an object; arguments the model mangled go back as they were, quoted."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _image_block(url: str) -> dict[str, Any]:
    if match := _DATA_URI.match(url):
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}
