"""Tool calling over the wire: OpenAI `tool_calls` (streamed in fragments, or whole) and Anthropic `tool_use`,
against the real-HTTP mocks; and the scripted provider that agent tests drive."""

from __future__ import annotations

import json

import pytest
from support.provider_mocks import ServedApp

from headwater.providers.anthropic import AnthropicProvider
from headwater.providers.base import ChatMessage, GenerationParams, ToolCall, ToolSpec
from headwater.providers.openai_compat import OpenAICompatibleProvider
from headwater.providers.scripted import ScriptedProvider, script_block

WEATHER = ToolSpec("weather", "The weather in a city.", {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]})
TOOLS = GenerationParams(tools=[WEATHER])
TWO_CALLS = [{"say": "Looking both up.", "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}},
                                                         {"name": "weather", "arguments": {"city": "Rome"}}]},
             {"say": "Oslo is cold, Rome is warm."}]


async def _collect(stream):
    text, calls, finish = "", None, None
    async for delta in stream:
        text += delta.text
        calls = delta.tool_calls or calls
        finish = delta.finish_reason or finish
    return text, calls, finish


def _openai(server: ServedApp) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(base_url=f"{server.base_url}/v1", api_key="k", retry_base_delay=0.001,
                                    timeout=5.0, name="mock")


@pytest.mark.parametrize("streamed", [True, False])
async def test_openai_parallel_tool_calls_are_assembled_from_their_fragments(openai_mock, streamed):
    provider = _openai(openai_mock)
    try:
        messages = [ChatMessage("user", "weather? " + script_block(TWO_CALLS))]
        assert provider.supports_tools("any")
        text, calls, finish = await _collect(
            provider.reply_deltas("m", messages, TOOLS, streamed=streamed))
        assert finish == "tool_calls" and text == "Looking both up."
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("weather", {"city": "Oslo"}),
                                                                       ("weather", {"city": "Rome"})]
        sent = openai_mock.state.requests[-1]
        assert sent["tools"][0]["function"]["name"] == "weather"
        # The results go back as the API wants them: the assistant turn with its calls, then one tool message each.
        follow_up = messages + [ChatMessage("assistant", text, tool_calls=calls)] + [
            ChatMessage("tool", "cold" if i == 0 else "warm", tool_call_id=call.id) for i, call in enumerate(calls)]
        text, calls, finish = await _collect(provider.reply_deltas("m", follow_up, TOOLS, streamed=streamed))
        assert (text, calls, finish) == ("Oslo is cold, Rome is warm.", None, "stop")
        turns = openai_mock.state.requests[-1]["messages"]
        assert turns[1]["tool_calls"][1]["function"] == {"name": "weather", "arguments": '{"city": "Rome"}'}
        assert [t["role"] for t in turns] == ["user", "assistant", "tool", "tool"]
        assert turns[2]["tool_call_id"] == turns[1]["tool_calls"][0]["id"]
    finally:
        await provider.aclose()


async def test_anthropic_tool_use_blocks_become_tool_calls_and_results_go_back_as_tool_result(anthropic_mock):
    provider = AnthropicProvider(base_url=anthropic_mock.base_url, api_key="k", retry_base_delay=0.001, timeout=5.0)
    try:
        messages = [ChatMessage("system", "be brief"), ChatMessage("user", "weather? " + script_block(TWO_CALLS))]
        text, calls, finish = await _collect(provider.stream_chat("claude", messages, TOOLS))
        assert finish == "tool_calls" and text == "Looking both up."
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("weather", {"city": "Oslo"}),
                                                                       ("weather", {"city": "Rome"})]
        assert anthropic_mock.state.requests[-1]["tools"][0]["input_schema"]["required"] == ["city"]
        follow_up = messages + [ChatMessage("assistant", text, tool_calls=calls)] + [
            ChatMessage("tool", "cold", tool_call_id=calls[0].id), ChatMessage("tool", "warm", tool_call_id=calls[1].id)]
        text, calls, _ = await _collect(provider.stream_chat("claude", follow_up, TOOLS))
        assert text == "Oslo is cold, Rome is warm." and calls is None
        turns = anthropic_mock.state.requests[-1]["messages"]
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert turns[1]["content"][1] == {"type": "tool_use", "id": "toolu_0", "name": "weather",
                                          "input": {"city": "Oslo"}}
        assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result"]
    finally:
        await provider.aclose()


async def test_scripted_provider_plays_its_script_natively_or_as_react_text():
    provider = ScriptedProvider()
    messages = [ChatMessage("user", script_block(TWO_CALLS))]
    text, calls, finish = await _collect(provider.stream_chat("tools", messages, TOOLS))
    assert finish == "tool_calls" and [c.id for c in calls] == ["call_0_0", "call_0_1"]
    text, calls, _ = await _collect(provider.stream_chat("text", messages, GenerationParams()))
    assert calls is None and text.startswith("Thought: Looking both up.\nAction: weather\nAction Input: {")
    later = messages + [ChatMessage("assistant", "x", tool_calls=[ToolCall("c", "weather", "{}")])]
    assert (await _collect(provider.stream_chat("tools", later, TOOLS)))[0] == "Oslo is cold, Rome is warm."
    # Past the end of the script it echoes, like fake/echo.
    done = later + [ChatMessage("assistant", "y"), ChatMessage("user", "thanks")]
    assert (await _collect(provider.stream_chat("tools", done, TOOLS)))[0] == "thanks"
