"""How an agent talks tools with a model: natively, or in the ReAct text format for models without tool calling.

Both protocols turn one model reply into a `Reply` (thought, tool calls, final
text) and the calls' results back into messages, so the agent loop is the same
for every model:

- `NativeTools`: the provider's function calling (`GenerationParams.tools`). A
  reply with tool calls is a step (its text, if any, is the thought); a reply
  without is the answer. Several calls in one reply run in parallel.
- `TextTools`: the model is taught the ReAct format in its system prompt
  (`Thought:` / `Action:` / `Action Input:`, or `Final Answer:`); each action's
  result goes back as an `Observation:` user message. One action per reply. A
  reply in neither form is the answer: small local models often just answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from headwater.engine.agent.tools import Tool
from headwater.providers.base import ChatMessage, GenerationParams, ToolCall, ToolSpec

_FINAL = re.compile(r"final answer\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_ACTION = re.compile(r"action\s*:\s*([A-Za-z0-9_-]+)\s*\n+\s*action input\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_THOUGHT = re.compile(r"thought\s*:\s*(.*?)(?:\n\s*(?:action|final answer)\s*:|$)", re.IGNORECASE | re.DOTALL)
# A model that goes on to imagine the tool's answer: what follows is not part of its input.
_IMAGINED = re.compile(r"\n\s*observation\s*:", re.IGNORECASE)


@dataclass(slots=True)
class Reply:
    thought: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    final: str | None = None  # set when the reply is an answer (no calls)


def parse_arguments(tool: Tool | None, raw: str) -> dict[str, Any]:
    """A call's arguments: a JSON object, or for a text-protocol model a bare value for the tool's main argument."""
    text = raw.strip()
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        value = text
    if isinstance(value, dict):
        return value
    if tool is None:
        return {"input": value}
    return {tool.primary: value if isinstance(value, str) else json.dumps(value)}


class NativeTools:
    native = True

    def __init__(self, tools: list[Tool]):
        self._specs = [ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in tools]

    def system_note(self) -> str:
        return ""

    def params(self, base: GenerationParams, with_tools: bool) -> GenerationParams:
        return GenerationParams(temperature=base.temperature, max_tokens=base.max_tokens,
                                tools=self._specs if with_tools and self._specs else None)

    def parse(self, text: str, calls: list[ToolCall] | None) -> Reply:
        if calls:
            return Reply(thought=text.strip(), calls=list(calls))
        return Reply(final=text.strip())

    def assistant_message(self, text: str, reply: Reply) -> ChatMessage:
        return ChatMessage(role="assistant", content=text, tool_calls=list(reply.calls))

    def result_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        return [ChatMessage(role="tool", content=result, tool_call_id=call.id) for call, result in results]


class TextTools:
    native = False

    def __init__(self, tools: list[Tool]):
        self._tools = tools

    def system_note(self) -> str:
        listed = "\n".join(f"- {t.name}: {t.description} Input: {t.text_input}" for t in self._tools) or "(no tools)"
        return ("You can use these tools:\n" + listed + "\n\n"
                "To use a tool, reply exactly:\nThought: <why>\nAction: <tool name>\nAction Input: <input>\n"
                "You will then get an Observation. When you know the answer, reply:\n"
                "Thought: <why>\nFinal Answer: <the answer>")

    def params(self, base: GenerationParams, with_tools: bool) -> GenerationParams:
        return GenerationParams(temperature=base.temperature, max_tokens=base.max_tokens)

    def parse(self, text: str, calls: list[ToolCall] | None) -> Reply:
        thought_match = _THOUGHT.search(text)
        thought = thought_match.group(1).strip() if thought_match else ""
        final = _FINAL.search(text)
        action = _ACTION.search(text)
        if action and (not final or action.start() < final.start()):
            argument = _IMAGINED.split(action.group(2), maxsplit=1)[0].strip()
            return Reply(thought=thought, calls=[ToolCall(id="text-call", name=action.group(1).strip(),
                                                          arguments=argument)])
        if final:
            return Reply(thought=thought, final=final.group(1).strip())
        return Reply(final=text.strip())

    def assistant_message(self, text: str, reply: Reply) -> ChatMessage:
        return ChatMessage(role="assistant", content=text)

    def result_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        observed = "\n\n".join(f"Observation: {result}" for _, result in results)
        return [ChatMessage(role="user", content=observed)]


def message_to_state(message: ChatMessage) -> dict[str, Any]:
    """A conversation message as JSON for a checkpoint (agents never send images)."""
    state: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        state["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    if message.tool_call_id is not None:
        state["tool_call_id"] = message.tool_call_id
    return state


def message_from_state(state: dict[str, Any]) -> ChatMessage:
    return ChatMessage(
        role=state["role"], content=state.get("content") or "",
        tool_calls=[ToolCall(**call) for call in state.get("tool_calls") or ()],
        tool_call_id=state.get("tool_call_id"),
    )
