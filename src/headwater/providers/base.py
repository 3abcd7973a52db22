"""The contract every model provider fulfils.

A provider turns a list of chat messages into a stream of `ChatDelta`s. The
last delta of a successful stream carries `usage` and `finish_reason`. Every
provider streams; non-streaming callers collect with `complete()`.

Failures are raised as `ProviderError` subclasses carrying the upstream HTTP
status and `retry_after`, so callers (and `with_retries`) can tell a transient
failure (429, 5xx, timeout) from a permanent one (400, 401, unknown model).
Cancellation is cooperative: closing the async iterator (or cancelling the task
consuming it) must stop the upstream generation promptly.

Tool calling is optional: a provider whose `supports_tools(model)` is true
accepts `GenerationParams.tools`, and its last delta carries the complete
`tool_calls` the model asked for (streamed fragments are assembled by the
provider, never by the caller). Conversations that used tools carry them as
assistant messages with `tool_calls` and `tool` messages with the results.
Callers must not send tools to a provider that does not support them (the
agent then speaks its text protocol instead).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from headwater.errors import HeadwaterError

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ImagePart:
    """An image for multimodal models: a data: URI or an https URL."""

    url: str


@dataclass(slots=True)
class ToolSpec:
    """A function the model may call: `parameters` is its arguments' JSON schema (an object)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class ToolCall:
    """One call the model asked for; `arguments` is the JSON text as the model wrote it (it may be invalid)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str
    images: list[ImagePart] = field(default_factory=list)
    # An assistant turn that called tools; each result follows as a `tool` message naming its call.
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass(slots=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    # Only for a provider whose supports_tools(model) is true.
    tools: list[ToolSpec] | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class ChatDelta:
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    # On the last delta: the complete calls of a reply that used tools (finish_reason "tool_calls").
    tool_calls: list[ToolCall] | None = None
    # From a provider that queues requests (the embedded model): the request's place in
    # line while it waits (1 = next), then 0 when it starts. Recorded with `QueueWait`.
    queue_position: int | None = None


class QueueWait:
    """What a run's trace shows of a provider's queue: the place in line a request
    entered at and how long it waited. Nothing for a request that did not wait."""

    def __init__(self) -> None:
        self.position: int | None = None
        self._since = 0.0
        self._waited: float | None = None

    def see(self, delta: ChatDelta) -> None:
        if delta.queue_position is None:
            return
        if self.position is None and delta.queue_position > 0:
            self.position, self._since = delta.queue_position, time.perf_counter()
        elif self.position is not None and delta.queue_position == 0 and self._waited is None:
            self._waited = time.perf_counter() - self._since

    def as_dict(self) -> dict[str, int] | None:
        if self.position is None:
            return None
        waited = self._waited if self._waited is not None else time.perf_counter() - self._since
        return {"position": self.position, "waited_ms": int(waited * 1000)}


@dataclass(slots=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str


class ProviderError(HeadwaterError):
    """A model call failed. `status` is the upstream HTTP status when there was one."""

    status_code = 502
    retryable = False

    def __init__(self, detail: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(detail)
        self.status = status
        self.retry_after = retry_after


class ProviderRateLimited(ProviderError):
    retryable = True


class ProviderUnavailable(ProviderError):
    """5xx or connection failure upstream."""

    retryable = True


class ProviderTimeout(ProviderError):
    status_code = 504
    retryable = True


class ProviderAuthError(ProviderError):
    """The provider refused our credentials: a configuration problem, not the caller's."""


class ProviderBadRequest(ProviderError):
    """The provider refused the request itself (unknown model, context too long)."""

    status_code = 422


class ChatProvider(ABC):
    """One configured provider instance (holds its client and connection pool)."""

    #: Whether `ImagePart`s are accepted for this provider's models.
    accepts_images: bool = False

    @abstractmethod
    def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        """Yield deltas; the last one carries usage and finish_reason."""

    def reply_deltas(
        self, model: str, messages: list[ChatMessage], params: GenerationParams, *, streamed: bool
    ) -> AsyncIterator[ChatDelta]:
        """What a chat turn reads: the stream, or, for a caller that does not stream, whatever
        is cheapest. A provider with a one-piece answer (one request, one body, no per-token
        parsing) overrides this; the default is the stream either way."""
        return self.stream_chat(model, messages, params)

    def supports_tools(self, model: str) -> bool:
        """Whether `model` takes `GenerationParams.tools` and answers with `ChatDelta.tool_calls`."""
        return False

    async def list_models(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        """Release clients and pools."""

    async def complete(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> Completion:
        parts: list[str] = []
        usage = Usage()
        finish_reason = "stop"
        async for delta in self.stream_chat(model, messages, params):
            parts.append(delta.text)
            if delta.usage is not None:
                usage = delta.usage
            if delta.finish_reason:
                finish_reason = delta.finish_reason
        return Completion(text="".join(parts), usage=usage, finish_reason=finish_reason)


@dataclass(slots=True)
class ProviderConfig:
    """What is stored for a provider; `api_key` is the decrypted secret, never serialised out."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = None
    models: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
