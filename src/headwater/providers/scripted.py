"""A provider that plays a script: deterministic agent runs, tool calls included, without a model.

Like pydantic-ai's `FunctionModel`, it lets tests decide what "the model" says at
each turn. The script travels in the conversation itself, as a JSON list between
`<script>` and `</script>` in a user or system message (a test's question,
typically), so a server started by a test needs no extra wiring and every process
plays the same script. Reply number i is entry i, where i counts the assistant
messages after the message that holds the script: a stateless function of the
conversation, so a run resumed after a pause or a restart gets the same replies.

An entry: `{"say": "text", "tool_calls": [{"name": "calculator", "arguments": {...}}],
"delay_ms": 20}`. `say` streams word by word, `delay_ms` apart (a slow model to stop
mid-call); `tool_calls` are the calls of that reply (several = parallel calls).

Models: `tools` answers with native tool calls (`supports_tools`); `text` writes the
same calls in the agent's ReAct text protocol, as a model without function calling
would (only the first call of an entry: that protocol has one action per reply).
Past the end of the script, or without one, it echoes the last user message.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderBadRequest,
    ToolCall,
    Usage,
)
from headwater.providers.fake import split_tokens

__all__ = ("ScriptedProvider", "SCRIPTED_MODELS", "script_block")

SCRIPTED_MODELS: tuple[str, ...] = ("tools", "text")
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_block(entries: list[dict[str, Any]]) -> str:
    """The text that carries `entries` to the provider (for tests and demos)."""
    return f"<script>{json.dumps(entries)}</script>"


def _entry(messages: list[ChatMessage]) -> dict[str, Any] | None:
    """The entry for the next reply, or None when there is no script or it has run out."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.role == "assistant":
            continue
        match = _SCRIPT.search(message.content or "")
        if match is None:
            continue
        try:
            script = json.loads(match.group(1))
        except ValueError:
            raise ProviderBadRequest("scripted: the <script> block is not valid JSON") from None
        if not isinstance(script, list):
            raise ProviderBadRequest("scripted: the <script> block must hold a JSON list")
        replied = sum(1 for later in messages[position + 1:] if later.role == "assistant")
        found = script[replied] if replied < len(script) else None
        return found if isinstance(found, dict) else None
    return None


def _calls(entry: dict[str, Any], turn: int) -> list[ToolCall]:
    calls = []
    for index, call in enumerate(entry.get("tool_calls") or ()):
        arguments = call.get("arguments", {})
        calls.append(ToolCall(id=f"call_{turn}_{index}", name=str(call.get("name", "")),
                              arguments=arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return calls


def _as_react_text(say: str, calls: list[ToolCall]) -> str:
    if not calls:
        return say
    return f"Thought: {say or 'I will use a tool.'}\nAction: {calls[0].name}\nAction Input: {calls[0].arguments}"


class ScriptedProvider(ChatProvider):
    """Provider `scripted`: models `tools` (native tool calls) and `text` (ReAct text)."""

    def supports_tools(self, model: str) -> bool:
        return model == "tools"

    async def list_models(self) -> list[str]:
        return list(SCRIPTED_MODELS)

    async def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        if model not in SCRIPTED_MODELS:
            raise ProviderBadRequest(f"scripted provider has no model {model!r}", status=404)
        entry = _entry(messages)
        if entry is None:
            last = next((m for m in reversed(messages) if m.role == "user"), None)
            entry = {"say": last.content if last else ""}
        turn = sum(1 for m in messages if m.role == "assistant")
        calls = _calls(entry, turn) if params.tools or model == "text" else []
        say = str(entry.get("say", ""))
        text = say if model == "tools" else _as_react_text(say, calls)
        delay = float(entry.get("delay_ms", 0)) / 1000
        tokens = split_tokens(text)
        for token in tokens:
            await asyncio.sleep(delay)  # a turn of the loop per token even without a delay, as a network would
            yield ChatDelta(text=token)
        usage = Usage(prompt_tokens=sum(len(m.content.split()) for m in messages), completion_tokens=len(tokens))
        native = calls if model == "tools" else []
        yield ChatDelta(usage=usage, finish_reason="tool_calls" if native else "stop", tool_calls=native or None)
