from __future__ import annotations

import time

import pytest
from support.provider_mocks import COMPLETION_TOKENS, PROMPT_TOKENS, ServedApp

from headwater.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider
from headwater.providers.base import (
    ChatMessage,
    GenerationParams,
    ImagePart,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

KEY = "sk-ant-test-SECRET-0123456789"
P = GenerationParams()


def make(server: ServedApp, **kwargs) -> AnthropicProvider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("retry_base_delay", 0.001)
    kwargs.setdefault("timeout", 5.0)
    return AnthropicProvider(base_url=server.base_url, name="claude", **kwargs)


@pytest.fixture
async def provider(anthropic_mock):
    p = make(anthropic_mock)
    yield p
    await p.aclose()


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


async def test_streams_text_and_usage_from_events(provider, anthropic_mock):
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("system", "Answer in English."),
        ChatMessage("user", "hello there"),
    ]
    deltas = [d async for d in provider.stream_chat("claude-test", messages, P)]
    assert [d.text for d in deltas[:-1]] == ["echo:", " hello", " there"]
    assert deltas[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert deltas[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert deltas[-1].finish_reason == "stop"
    sent = anthropic_mock.state.requests[0]
    assert sent["system"] == "Be brief.\n\nAnswer in English."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    assert sent["max_tokens"] == DEFAULT_MAX_TOKENS and sent["stream"] is True


async def test_params_and_max_tokens_length(provider, anthropic_mock):
    params = GenerationParams(temperature=0.5, max_tokens=2, stop=["END"])
    completion = await provider.complete("claude-test", user("a b c d"), params)
    assert completion.text == "echo: a"
    assert completion.finish_reason == "length"
    sent = anthropic_mock.state.requests[0]
    assert (sent["max_tokens"], sent["stop_sequences"], sent["temperature"]) == (2, ["END"], 0.5)
    assert "top_p" not in sent


async def test_images_and_alternation(provider, anthropic_mock):
    messages = [
        ChatMessage("user", "look", [ImagePart("data:image/png;base64,AAAA"), ImagePart("https://x.test/a.jpg")]),
        ChatMessage("user", "and this"),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", "so?"),
    ]
    await provider.complete("claude-test", messages, P)
    sent = anthropic_mock.state.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        {"type": "text", "text": "look"},
        {"type": "text", "text": "and this"},
    ]


async def test_retries_429_then_succeeds(provider, anthropic_mock):
    anthropic_mock.state.script[:] = ["429", "ok"]
    assert (await provider.complete("claude-test", user("hi"), P)).text == "echo: hi"
    assert len(anthropic_mock.state.requests) == 2


async def test_429_retry_after(anthropic_mock):
    provider = make(anthropic_mock, max_retries=0)
    anthropic_mock.state.script[:] = ["429"]
    anthropic_mock.state.retry_after = "3"
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete("claude-test", user("hi"), P)
    assert caught.value.retry_after == 3.0
    await provider.aclose()


async def test_overloaded_529_retried_then_gives_up(anthropic_mock):
    provider = make(anthropic_mock, max_retries=1)
    anthropic_mock.state.script[:] = ["529", "529", "ok"]
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete("claude-test", user("hi"), P)
    assert caught.value.status == 529
    assert len(anthropic_mock.state.requests) == 2
    await provider.aclose()


async def test_error_event_before_text_is_retried(provider, anthropic_mock):
    anthropic_mock.state.script[:] = ["error-event", "ok"]
    assert (await provider.complete("claude-test", user("hi"), P)).text == "echo: hi"
    assert len(anthropic_mock.state.requests) == 2


async def test_401_is_auth_error_without_the_key(provider, anthropic_mock):
    anthropic_mock.state.script[:] = ["401"]
    with pytest.raises(ProviderAuthError) as caught:
        await provider.complete("claude-test", user("hi"), P)
    assert "invalid x-api-key" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(anthropic_mock.state.requests) == 1


async def test_400_is_bad_request(provider, anthropic_mock):
    anthropic_mock.state.script[:] = ["400"]
    with pytest.raises(ProviderBadRequest) as caught:
        await provider.complete("claude-test", user("hi"), P)
    assert caught.value.status == 400 and "field required" in str(caught.value)


async def test_hang_times_out(anthropic_mock):
    provider = make(anthropic_mock, timeout=0.3, max_retries=0)
    anthropic_mock.state.script[:] = ["hang"]
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout):
        await provider.complete("claude-test", user("hi"), P)
    assert time.perf_counter() - started < 3
    await provider.aclose()


async def test_no_key_does_not_use_environment_key(anthropic_mock, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-server-env")
    provider = make(anthropic_mock, api_key=None)
    await provider.complete("claude-test", user("hi"), P)
    assert "sk-ant-from-server-env" not in str(anthropic_mock.state.headers[0])
    await provider.aclose()
