"""Any server speaking OpenAI's chat-completions API: OpenAI itself, Ollama,
vLLM, llama.cpp's server, LM Studio.

The chat stream, the hot path of every call, is one plain HTTP request on a
pooled client with the SSE parsed here (orjson, no per-chunk objects): the
official SDK validated and transformed every request and built a pydantic
object per chunk, which cost more CPU than everything else in a call (see
bench/REPORT.md). The SDK is kept for the rest (listing models), built on
first use. Failures map to the same `ProviderError`s either way. Retries are
off in both because `stream_with_retries` must be the only layer deciding
about retries (it knows whether text already went out).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson

try:  # the SDK's own HTTP client (a maintained httpx fork whose pool scales with connections)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDKs bring plain httpx
    import httpx

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ToolCall,
    Usage,
)
from headwater.providers.http_errors import error_for_status, parse_retry_after, redact, upstream_message
from headwater.providers.retry import stream_with_retries

if TYPE_CHECKING:
    import openai

__all__ = ("OpenAICompatibleProvider", "estimate_tokens")

# Local servers (Ollama, llama.cpp, LM Studio) need no key, but the SDK insists
# on one and would otherwise read OPENAI_API_KEY from our environment and send
# the operator's real key to whatever base_url a user configured.
NO_KEY_PLACEHOLDER = "no-key"
# Calls in flight per client before another client is added (see _ClientShards), and each
# client's own limits: a stream holds its connection for its whole length.
CALLS_PER_SHARD = 32
SHARD_LIMITS = httpx.Limits(max_connections=4 * CALLS_PER_SHARD, max_keepalive_connections=CALLS_PER_SHARD)
STREAM_FAILED = "An error occurred during streaming"


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
    - `tools`: whether the models take OpenAI `tools` (default True; false for servers whose
      models lack function calling: the agent then speaks its text protocol).
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
        self._base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self._timeout = timeout
        self._api_key = api_key
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._stream_usage = bool(options.get("stream_usage", True))
        self.accepts_images = bool(options.get("accepts_images", True))
        self._tools = bool(options.get("tools", True))
        host = urlparse(base_url).hostname if base_url else "api.openai.com"
        self._max_tokens_param = options.get("max_tokens_param") or (
            "max_completion_tokens" if host == "api.openai.com" else "max_tokens"
        )
        self._http = _ClientShards(lambda: httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=SHARD_LIMITS,
            headers={"Authorization": f"Bearer {api_key or NO_KEY_PLACEHOLDER}", "Accept": "text/event-stream"},
        ))
        self._completions_url = f"{self._base_url}/chat/completions"
        self._sdk: openai.AsyncOpenAI | None = None

    @property
    def _client(self) -> openai.AsyncOpenAI:
        if self._sdk is None:
            import openai  # imported on first use: the SDK takes seconds to import, the chat path needs none of it

            self._sdk = openai.AsyncOpenAI(
                base_url=self._base_url, api_key=self._api_key or NO_KEY_PLACEHOLDER, timeout=self._timeout,
                max_retries=0,
            )
        return self._sdk

    def supports_tools(self, model: str) -> bool:
        return self._tools

    def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        return stream_with_retries(
            lambda: self._stream_once(model, messages, params),
            max_retries=self._max_retries,
            base_delay=self._retry_base_delay,
            max_delay=self._retry_max_delay,
        )

    def reply_deltas(
        self, model: str, messages: list[ChatMessage], params: GenerationParams, *, streamed: bool
    ) -> AsyncIterator[ChatDelta]:
        if streamed:
            return self.stream_chat(model, messages, params)
        return stream_with_retries(
            lambda: self._answer_once(model, messages, params),
            max_retries=self._max_retries,
            base_delay=self._retry_base_delay,
            max_delay=self._retry_max_delay,
        )

    async def _answer_once(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        """One non-streamed request: the whole text as one delta, then usage and finish reason."""
        payload = self._payload(model, messages, params, stream=False)
        client = self._http.acquire()
        try:
            with self._upstream_errors("a malformed answer"):
                response = await client.post(
                    self._completions_url, content=orjson.dumps(payload),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )
                if response.status_code >= 400:
                    raise (await self._status_error(response)) from None
                body = orjson.loads(response.content)
        finally:
            self._http.release()
        if not isinstance(body, dict) or body.get("error"):
            message = redact(upstream_message(body, "no answer in the response"), self._api_key)
            raise ProviderError(f"{self.name}: upstream error: {message}")
        choice = _first_choice(body)
        message = choice.get("message")
        text = (message.get("content") if isinstance(message, dict) else None) or ""
        if text:
            yield ChatDelta(text=text)
        calls = _ToolCallParts()
        for index, call in enumerate((message.get("tool_calls") if isinstance(message, dict) else None) or ()):
            calls.add({**call, "index": index})
        yield ChatDelta(usage=_usage(body.get("usage"), messages, text),
                        finish_reason=choice.get("finish_reason") or "stop", tool_calls=calls.complete())

    async def _stream_once(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        payload = self._payload(model, messages, params, stream=True)
        if self._stream_usage:
            payload["stream_options"] = {"include_usage": True}
        reported_usage: Any = None
        finish_reason: str | None = None
        parts: list[str] = []
        calls = _ToolCallParts()
        client = self._http.acquire()
        try:
            request = client.build_request(
                "POST", self._completions_url, content=orjson.dumps(payload),
                headers={"Content-Type": "application/json"},
            )
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._http.release()
            raise self._map_transport_error(exc) from None
        except BaseException:
            self._http.release()
            raise
        try:
            with self._upstream_errors("a malformed stream chunk"):
                if response.status_code >= 400:
                    raise (await self._status_error(response)) from None
                async for data in _sse_data(response):
                    if data == b"[DONE]":
                        break
                    chunk = orjson.loads(data)
                    if not isinstance(chunk, dict):
                        continue
                    if chunk.get("error"):
                        message = redact(upstream_message(chunk, STREAM_FAILED), self._api_key)
                        raise ProviderError(f"{self.name}: upstream error: {message}") from None
                    if chunk_usage := chunk.get("usage"):
                        reported_usage = chunk_usage
                    for choice in (chunk.get("choices") or ())[:1]:
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
                        delta = choice.get("delta") or {}
                        # Empty deltas (the opening role-only chunk) are not passed
                        # on: until real text goes out, a failure can still be retried.
                        if text := delta.get("content"):
                            parts.append(text)
                            yield ChatDelta(text=text)
                        for fragment in delta.get("tool_calls") or ():
                            calls.add(fragment)
        finally:
            self._http.release()
            await response.aclose()
        yield ChatDelta(usage=_usage(reported_usage, messages, "".join(parts)), finish_reason=finish_reason or "stop",
                        tool_calls=calls.complete())

    def _payload(
        self, model: str, messages: list[ChatMessage], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        payload = {"model": model, "messages": [_to_openai(m) for m in messages], "stream": stream,
                   **self._request_kwargs(params)}
        if params.tools:
            payload["tools"] = [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
                for tool in params.tools]
        return payload

    @contextmanager
    def _upstream_errors(self, malformed: str) -> Iterator[None]:
        """Transport failures and unreadable JSON as provider errors (without the upstream's text or our key)."""
        try:
            yield
        except httpx.HTTPError as exc:
            raise self._map_transport_error(exc) from None
        except orjson.JSONDecodeError:
            raise ProviderError(f"{self.name}: upstream sent {malformed}") from None

    async def _status_error(self, response) -> ProviderError:
        body_bytes = await response.aread()
        try:
            body = orjson.loads(body_bytes)
        except orjson.JSONDecodeError:
            body = None
        fallback = body_bytes.decode("utf-8", "replace").strip() or response.reason_phrase or "error"
        message = redact(upstream_message(body, fallback), self._api_key)
        return error_for_status(
            response.status_code,
            f"{self.name}: upstream returned {response.status_code}: {message}",
            retry_after=parse_retry_after(response.headers),
        )

    def _map_transport_error(self, exc: Exception) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeout(f"{self.name}: request timed out")
        if isinstance(exc, httpx.TransportError):
            return ProviderUnavailable(f"{self.name}: cannot connect to the server")
        return ProviderError(f"{self.name}: {redact(str(exc), self._api_key)}")

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
        import openai

        try:
            return [model.id async for model in self._client.models.list()]
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._sdk is not None:
            await self._sdk.close()

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        import openai

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


class _ClientShards:
    """HTTP clients for one provider, one more for every CALLS_PER_SHARD calls in flight.

    An httpx connection pool walks all its connections and queued requests on every
    request and release, so its cost grows with the square of the concurrency: at 1,000
    open streams one pool spent more CPU on bookkeeping than on the streams (bench/REPORT.md).
    Calls go round-robin over clients whose pools stay small; a quiet provider has one.
    """

    def __init__(self, factory):
        self._factory = factory
        self._clients: list = []
        self._in_flight = 0
        self._turn = 0

    def acquire(self):
        self._in_flight += 1
        while len(self._clients) * CALLS_PER_SHARD < self._in_flight:
            self._clients.append(self._factory())
        self._turn = (self._turn + 1) % len(self._clients)
        return self._clients[self._turn]

    def release(self) -> None:
        self._in_flight -= 1

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()


async def _sse_data(response) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event (multi-line data joined by newlines)."""
    buffer = b""
    data: list[bytes] = []
    async for piece in response.aiter_bytes():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
    if data:
        yield b"\n".join(data)


def _usage(reported: Any, messages: list[ChatMessage], text: str) -> Usage:
    """The token counts the server reported, or an estimate when it sent none."""
    if isinstance(reported, dict):
        return Usage(prompt_tokens=reported.get("prompt_tokens") or 0,
                     completion_tokens=reported.get("completion_tokens") or 0)
    return Usage(prompt_tokens=sum(estimate_tokens(m.content) for m in messages),
                 completion_tokens=estimate_tokens(text))


def _first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


class _ToolCallParts:
    """Tool calls assembled from stream fragments: each names its call by `index`; the first
    fragment of a call brings its id and name, later ones append to its arguments text."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            return
        index = fragment.get("index")
        call = self._calls.setdefault(index if isinstance(index, int) else len(self._calls),
                                      {"id": "", "name": "", "arguments": ""})
        function = fragment.get("function") or {}
        call["id"] = fragment.get("id") or call["id"]
        call["name"] = function.get("name") or call["name"]
        call["arguments"] += function.get("arguments") or ""

    def complete(self) -> list[ToolCall] | None:
        if not self._calls:
            return None
        return [ToolCall(id=call["id"] or f"call_{index}", name=call["name"], arguments=call["arguments"] or "{}")
                for index, call in sorted(self._calls.items())]


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {"role": "assistant", "content": message.content or None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls]}
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts += [{"type": "image_url", "image_url": {"url": image.url}} for image in message.images]
    return {"role": message.role, "content": parts}
