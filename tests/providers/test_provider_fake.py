from __future__ import annotations

import asyncio
import time

import pytest

from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    GenerationParams,
    ImagePart,
    ProviderBadRequest,
    ProviderUnavailable,
)
from headwater.providers.fake import FAKE_MODELS, FakeProvider, split_tokens

P = GenerationParams()


def user(text: str, images: int = 0) -> ChatMessage:
    return ChatMessage("user", text, [ImagePart(f"data:image/png;base64,{i}") for i in range(images)])


async def deltas(model: str, messages: list[ChatMessage], params: GenerationParams = P) -> list[ChatDelta]:
    return [d async for d in FakeProvider().stream_chat(model, messages, params)]


async def test_echo_streams_last_user_message_word_by_word():
    messages = [user("first"), ChatMessage("assistant", "ignored"), user("Hello  there, world!\n")]
    out = await deltas("echo", messages)
    assert [d.text for d in out[:-1]] == ["Hello  ", "there, ", "world!\n"]
    last = out[-1]
    assert last.text == "" and last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.prompt_tokens == 1 + 1 + 3
    assert last.usage.completion_tokens == 3
    assert all(d.usage is None for d in out[:-1])


async def test_context_replies_with_whole_transcript():
    messages = [
        ChatMessage("system", "You are terse."),
        user("My name is Ada."),
        ChatMessage("assistant", "Hi Ada."),
        user("What is my name?"),
    ]
    completion = await FakeProvider().complete("context", messages, P)
    assert completion.text == (
        "system: You are terse.\nuser: My name is Ada.\nassistant: Hi Ada.\nuser: What is my name?"
    )
    assert completion.usage.prompt_tokens == 3 + 4 + 2 + 4


async def test_images_are_mentioned():
    assert (await FakeProvider().complete("echo", [user("look", images=1)], P)).text == "look [1 image]"
    text = (await FakeProvider().complete("context", [user("a", images=2), user("b")], P)).text
    assert text == "user: a [2 images]\nuser: b"
    assert FakeProvider.accepts_images


async def test_max_tokens_truncates_with_length():
    completion = await FakeProvider().complete("echo", [user("one two three four")], GenerationParams(max_tokens=2))
    assert completion.text == "one two "
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 2


async def test_stop_sequence_cuts_before_it():
    params = GenerationParams(stop=["STOP", "never"])
    completion = await FakeProvider().complete("echo", [user("keep this STOP not this")], params)
    assert completion.text == "keep this "
    assert completion.finish_reason == "stop"
    assert completion.usage.completion_tokens == 2


async def test_fail_raises_before_any_token():
    stream = FakeProvider().stream_chat("fail", [user("hi")], P)
    with pytest.raises(ProviderUnavailable) as caught:
        await anext(stream)
    assert caught.value.status == 503 and caught.value.retryable
    assert "fake provider failure" in str(caught.value)


async def test_fail_midstream_sends_some_text_then_raises():
    received = []
    with pytest.raises(ProviderUnavailable):
        async for delta in FakeProvider().stream_chat("fail-midstream", [user("hi")], P):
            received.append(delta.text)
    assert len(received) >= 2 and "".join(received).strip()


@pytest.mark.parametrize(("model", "per_token"), [("slow", 0.05), ("slow-20", 0.02)])
async def test_slow_waits_per_token(model, per_token):
    started = time.perf_counter()
    completion = await FakeProvider().complete(model, [user("a b c")], P)
    assert completion.text == "a b c"
    assert time.perf_counter() - started >= 3 * per_token * 0.9


async def test_slow_can_be_cancelled():
    async def consume():
        async for _ in FakeProvider().stream_chat("slow-1000", [user("a b c")], P):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("model", ["nope", "slow-abc", "echo2", ""])
async def test_unknown_model_is_a_404_bad_request(model):
    with pytest.raises(ProviderBadRequest) as caught:
        await deltas(model, [user("hi")])
    assert caught.value.status == 404
    assert repr(model) in str(caught.value)


async def test_list_models_and_empty_input():
    assert await FakeProvider().list_models() == list(FAKE_MODELS)
    completion = await FakeProvider().complete("echo", [], P)
    assert completion.text == "" and completion.usage.completion_tokens == 0


@pytest.mark.parametrize("text", ["", "a", "  lead", "trail  ", "a\n\nb\tc ", "x  y"])
def test_tokens_join_back_exactly(text):
    assert "".join(split_tokens(text)) == text
