"""Any server speaking OpenAI's chat-completions API: OpenAI itself, Ollama,
vLLM, llama.cpp's server, LM Studio.

The official SDK does the HTTP and SSE parsing; this module only translates
our messages in, deltas out, and SDK exceptions into `ProviderError`s. The
SDK's own retries are off because `stream_with_retries` must be the only
layer deciding about retries (it knows whether text already went out).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import openai

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    Usage,
)
from headwater.providers.http_errors import error_for_status, parse_retry_after, redact, upstream_message
from headwater.providers.retry import stream_with_retries

__all__ = ("OpenAICompatibleProvider", "estimate_tokens")

# Local servers (Ollama, llama.cpp, LM Studio) need no key, but the SDK insists
# on one and would otherwise read OPENAI_API_KEY from our environment and send
# the operator's real key to whatever base_url a user configured.
NO_KEY_PLACEHOLDER = "no-key"


def estimate_tokens(text: str) -> int:
    """~4 characters per token: a usage estimate is more useful than zeros for
    quotas and dashboards when a server does not report usage."""
    return math.ceil(len(text) / 4)


class OpenAICompatibleProvider(ChatProvider):
    """Options understood (from `ProviderConfig.options`):

    - `max_tokens_param`: "max_tokens" or "max_completion_tokens". Default:
      the latter for api.openai.com (its reasoning models reject `max_tokens`),
      the former elsewhere (what the compatible servers understand).
    - `stream_usage`: send `stream_options.include_usage` (default True).
    - `accepts_images`: default True.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        options: dict[str, Any] | None = None,
        name: str = "openai",
    ):
        options = options or {}
        self.name = name
        self._api_key = api_key
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._stream_usage = bool(options.get("stream_usage", True))
        self.accepts_images = bool(options.get("accepts_images", True))
        host = urlparse(base_url).hostname if base_url else "api.openai.com"
        self._max_tokens_param = options.get("max_tokens_param") or (
            "max_completion_tokens" if host == "api.openai.com" else "max_tokens"
        )
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or NO_KEY_PLACEHOLDER,
            timeout=timeout,
            max_retries=0,
        )

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
        kwargs = self._request_kwargs(params)
        if self._stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        usage: Usage | None = None
        finish_reason: str | None = None
        parts: list[str] = []
        try:
            stream = await self._client.chat.completions.create(
                model=model, messages=[_to_openai(m) for m in messages], stream=True, **kwargs
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens or 0,
                        completion_tokens=chunk.usage.completion_tokens or 0,
                    )
                for choice in chunk.choices[:1]:
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    # Empty deltas (the opening role-only chunk) are not passed
                    # on: until real text goes out, a failure can still be retried.
                    if text := choice.delta.content:
                        parts.append(text)
                        yield ChatDelta(text=text)
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None
        finally:
            await stream.close()
        if usage is None:
            usage = Usage(
                prompt_tokens=sum(estimate_tokens(m.content) for m in messages),
                completion_tokens=estimate_tokens("".join(parts)),
            )
        yield ChatDelta(usage=usage, finish_reason=finish_reason or "stop")

    def _request_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.max_tokens is not None:
            kwargs[self._max_tokens_param] = params.max_tokens
        if params.stop:
            kwargs["stop"] = params.stop
        return kwargs

    async def list_models(self) -> list[str]:
        try:
            return [model.id async for model in self._client.models.list()]
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None

    async def aclose(self) -> None:
        await self._client.close()

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        # `from None` at the raise sites: the SDK exception's text and request
        # can carry what the server echoed back, including our key.
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeout(f"{self.name}: request timed out")
        if isinstance(exc, openai.APIConnectionError):
            return ProviderUnavailable(f"{self.name}: cannot connect to the server")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = redact(upstream_message(exc.body, exc.message), self._api_key)
            return error_for_status(
                status,
                f"{self.name}: upstream returned {status}: {message}",
                retry_after=parse_retry_after(exc.response.headers),
            )
        if isinstance(exc, openai.APIError):
            # An error event inside a 200 stream: no status to classify by.
            message = redact(upstream_message(exc.body, exc.message), self._api_key)
            return ProviderError(f"{self.name}: upstream error: {message}")
        return ProviderError(f"{self.name}: {redact(str(exc), self._api_key)}")


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": image.url}} for image in message.images]
    return {"role": message.role, "content": parts}
