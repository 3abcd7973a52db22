"""`llm`: one model call. System and prompt are templates; `memory` adds the session's recent turns.

Outputs `text`, `finish_reason`, `model`, and the call's `usage`. Tokens stream
as `token` events when this node's text is the reply (or `stream: true`) and
somebody reads them live; otherwise the model may answer in one piece (one
request, one body), which costs less. Cancelling the run closes the provider
stream, which stops the upstream call; the text generated so far is kept as
the node's partial output.

Two switches make the node a chatbot's model call (services/implied_graphs.py):
`files` gives the model the message's attachments (`sys.files`: images with the
user's message, the text of files in the system prompt, already fenced as data),
and `caller_params` lets the caller's generation parameters (`sys.params`: an
OpenAI client's temperature, top_p, max_tokens, stop) override the node's.
"""

from __future__ import annotations

from contextlib import aclosing

from pydantic import Field, field_validator

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import ModelName, Node, NodeConfig, NodeResult, node_type
from headwater.providers.base import ChatMessage, GenerationParams, ImagePart, QueueWait, Usage

DEFAULT_MEMORY_WINDOW = 10


class ConversationMemory(NodeConfig):
    """`memory`: how many of the session's recent messages a model node reads (true = the default window)."""

    memory: bool | int = False

    @field_validator("memory")
    @classmethod
    def _window(cls, value: bool | int) -> bool | int:
        if not isinstance(value, bool) and not 0 <= value <= 200:
            raise ValueError("memory is true/false or a number of messages (0-200)")
        return value

    @property
    def memory_window(self) -> int:
        if isinstance(self.memory, bool):
            return DEFAULT_MEMORY_WINDOW if self.memory else 0
        return self.memory


class LlmConfig(ConversationMemory):
    model: ModelName
    system: str = Field(default="", max_length=100_000)
    prompt: str = Field(default="{{ sys.query }}", max_length=100_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=65536)
    stop: list[str] | None = Field(default=None, max_length=8)
    stream: bool | None = None
    files: bool = False
    caller_params: bool = False


async def stream_completion(ctx: NodeContext, model_name: str, messages: list[ChatMessage],
                            params: GenerationParams, stream_tokens: bool) -> tuple[str, Usage, str]:
    """Call the model, streaming tokens if asked; keeps partial text in ctx.partial on cancel."""
    provider, model = await ctx.run.resolve_model(model_name)
    parts: list[str] = []
    usage, finish_reason = Usage(), "stop"
    queue = QueueWait()
    try:
        deltas = provider.reply_deltas(model, messages, params, streamed=ctx.run.live)
        async with aclosing(deltas) as stream:
            async for delta in stream:
                queue.see(delta)
                if delta.text:
                    parts.append(delta.text)
                    if stream_tokens:
                        ctx.token(delta.text)
                if delta.usage is not None:
                    usage = delta.usage
                if delta.finish_reason:
                    finish_reason = delta.finish_reason
    except BaseException:
        ctx.partial["text"] = "".join(parts)
        raise
    finally:
        if (waited := queue.as_dict()) is not None:
            ctx.record_inputs(queue=waited)  # the provider's line (the embedded model's slots)
    return "".join(parts), usage, finish_reason


@node_type("llm")
class LlmNode(Node):
    Config = LlmConfig
    outputs = ("text", "finish_reason", "model", "usage")
    effectful = True

    def templates(self):
        return [self.config.system, self.config.prompt]

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: LlmConfig = self.config
        system = ctx.render(config.system) if config.system else ""
        prompt = ctx.render(config.prompt)
        images: list[ImagePart] = []
        if config.files:
            images, texts = _attachments(ctx.run.sys.get("files"))
            system = "\n\n".join(part for part in (system, *texts) if part)
        history = ctx.run.history_messages(config.memory_window)
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages += history
        messages.append(ChatMessage(role="user", content=prompt, images=images))
        ctx.record_inputs(model=config.model, system=system, prompt=prompt, history_messages=len(history))
        params = _params(config, ctx.run.sys.get("params") if config.caller_params else None)
        streams_tokens = ctx.streams_tokens
        text, usage, finish_reason = await stream_completion(ctx, config.model, messages, params, streams_tokens)
        if streams_tokens:  # this call's text is the reply
            ctx.run.reply_model, ctx.run.finish_reason = config.model, finish_reason
        return NodeResult(
            outputs={"text": text, "finish_reason": finish_reason, "model": config.model, "usage": usage.as_dict()},
            usage=usage,
        )


def _attachments(files: list[dict] | None) -> tuple[list[ImagePart], list[str]]:
    """`sys.files` (OpenAI content parts) as (images for the user's message, texts for the system prompt)."""
    images, texts = [], []
    for part in files or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
            images.append(ImagePart(url=str(part["image_url"].get("url", ""))))
        elif part.get("type") == "text" and part.get("text"):
            texts.append(str(part["text"]))
    return images, texts


def _params(config: LlmConfig, given: dict | None) -> GenerationParams:
    """The node's generation parameters, overridden by those the caller set (when the node takes them)."""
    given = given or {}
    temperature = given.get("temperature")
    return GenerationParams(
        temperature=temperature if temperature is not None else config.temperature,
        top_p=given.get("top_p"),
        max_tokens=given.get("max_tokens") or config.max_tokens,
        stop=given.get("stop") or config.stop,
    )
