from __future__ import annotations

import time

import pytest
from support.provider_mocks import COMPLETION_TOKENS, PROMPT_TOKENS, ServedApp

from headwater.providers.base import (
    ChatMessage,
    GenerationParams,
    ImagePart,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from headwater.providers.openai_compat import OpenAICompatibleProvider

KEY = "sk-test-SECRET-0123456789"
P = GenerationParams()


def make(server: ServedApp, **kwargs) -> OpenAICompatibleProvider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("retry_base_delay", 0.001)
    kwargs.setdefault("timeout", 5.0)
    return OpenAICompatibleProvider(base_url=f"{server.base_url}/v1", name="mock", **kwargs)


@pytest.fixture
async def provider(openai_mock):
    p = make(openai_mock)
    yield p
    await p.aclose()


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


async def test_streams_text_and_server_usage(provider, openai_mock):
    messages = [ChatMessage("system", "be brief"), ChatMessage("user", "hello there")]
    deltas = [d async for d in provider.stream_chat("mock-small", messages, P)]
    texts = [d.text for d in deltas[:-1]]
    assert texts == ["echo:", " hello", " there"]  # the empty role chunk is not passed on
    assert deltas[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert deltas[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert deltas[-1].finish_reason == "stop"
    sent = openai_mock.state.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert openai_mock.state.headers[0]["authorization"] == f"Bearer {KEY}"


async def test_params_are_sent(provider, openai_mock):
    params = GenerationParams(temperature=0.3, top_p=0.9, max_tokens=12, stop=["\n"])
    await provider.complete("mock-small", user("hi"), params)
    sent = openai_mock.state.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (0.3, 0.9, 12, ["\n"])
    assert "max_completion_tokens" not in sent


async def test_unset_params_are_not_sent(provider, openai_mock):
    await provider.complete("mock-small", user("hi"), P)
    assert not {"temperature", "top_p", "max_tokens", "stop"} & set(openai_mock.state.requests[0])


async def test_usage_is_estimated_when_server_sends_none(provider, openai_mock):
    openai_mock.state.send_usage = False
    completion = await provider.complete("mock-small", user("x" * 40), P)
    assert completion.text == "echo: " + "x" * 40
    assert completion.usage.prompt_tokens == 10
    assert completion.usage.completion_tokens == 12  # 46 chars / 4, rounded up


async def test_images_become_content_parts(provider, openai_mock):
    image = "data:image/png;base64,iVBORw0KGgo="
    messages = [ChatMessage("user", "what is this?", [ImagePart(image), ImagePart("https://x.test/a.jpg")])]
    completion = await provider.complete("mock-small", messages, P)
    assert completion.text == "echo: what is this?"
    assert openai_mock.state.requests[0]["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


async def test_retries_429_then_succeeds(provider, openai_mock):
    openai_mock.state.script[:] = ["429", "ok"]
    completion = await provider.complete("mock-small", user("hi"), P)
    assert completion.text == "echo: hi"
    assert len(openai_mock.state.requests) == 2


async def test_429_carries_retry_after(openai_mock):
    provider = make(openai_mock, max_retries=0)
    openai_mock.state.script[:] = ["429"]
    openai_mock.state.retry_after = "7"
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete("mock-small", user("hi"), P)
    assert caught.value.retry_after == 7.0 and caught.value.status == 429
    await provider.aclose()


async def test_retry_after_is_honoured(openai_mock):
    provider = make(openai_mock, max_retries=1, retry_max_delay=5)
    openai_mock.state.script[:] = ["429", "ok"]
    openai_mock.state.retry_after = "1"
    started = time.perf_counter()
    await provider.complete("mock-small", user("hi"), P)
    assert time.perf_counter() - started >= 1.0
    await provider.aclose()


async def test_500_retried_then_gives_up(openai_mock):
    provider = make(openai_mock, max_retries=2)
    openai_mock.state.script[:] = ["500", "500", "500", "ok"]
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete("mock-small", user("hi"), P)
    assert caught.value.status == 500 and "upstream exploded" in str(caught.value)
    assert len(openai_mock.state.requests) == 3
    await provider.aclose()


async def test_401_is_auth_error_without_the_key(provider, openai_mock):
    openai_mock.state.script[:] = ["401"]
    with pytest.raises(ProviderAuthError) as caught:
        await provider.complete("mock-small", user("hi"), P)
    assert caught.value.status == 401
    assert "Incorrect API key" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(openai_mock.state.requests) == 1  # not retried


async def test_400_is_bad_request_not_retried(provider, openai_mock):
    openai_mock.state.script[:] = ["400", "ok"]
    with pytest.raises(ProviderBadRequest) as caught:
        await provider.complete("mock-small", user("hi"), P)
    assert caught.value.status == 400 and "does not exist" in caught.value.detail
    assert len(openai_mock.state.requests) == 1


async def test_hang_times_out(openai_mock):
    provider = make(openai_mock, timeout=0.3, max_retries=0)
    openai_mock.state.script[:] = ["hang"]
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout):
        await provider.complete("mock-small", user("hi"), P)
    assert time.perf_counter() - started < 3
    await provider.aclose()


async def test_stream_broken_after_text_is_not_retried(provider, openai_mock):
    openai_mock.state.script[:] = ["break", "ok"]
    received = []
    with pytest.raises(ProviderUnavailable):
        async for delta in provider.stream_chat("mock-small", user("a b c"), P):
            received.append(delta.text)
    assert received == ["echo:"]
    assert len(openai_mock.state.requests) == 1


async def test_connection_refused_is_unavailable():
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete("m", user("hi"), P)
    assert KEY not in str(caught.value)
    await provider.aclose()


async def test_list_models(provider, openai_mock):
    assert await provider.list_models() == ["mock-small", "library/llama3:8b"]
    openai_mock.state.script[:] = ["401"]
    with pytest.raises(ProviderAuthError):
        await provider.list_models()


async def test_no_key_sends_placeholder_not_environment_key(openai_mock, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-server-env")
    provider = make(openai_mock, api_key=None)
    await provider.complete("mock-small", user("hi"), P)
    assert "sk-from-server-env" not in openai_mock.state.headers[0]["authorization"]
    await provider.aclose()


async def test_openai_host_uses_max_completion_tokens():
    provider = OpenAICompatibleProvider(api_key=KEY)
    assert provider._request_kwargs(GenerationParams(max_tokens=5)) == {"max_completion_tokens": 5}
    await provider.aclose()


async def test_generic_stream_error_is_a_provider_error(provider):
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    error = provider._map_error(openai.APIError(f"boom {KEY}", request, body={"message": f"boom {KEY}"}))
    assert type(error) is ProviderError and not error.retryable
    assert KEY not in str(error)


# --- one-piece answers (`reply_deltas(streamed=False)`), for callers that do not stream ---


async def answer(provider, text: str = "hello there"):
    return [d async for d in provider.reply_deltas("mock-small", user(text), P, streamed=False)]


async def test_unstreamed_answer_is_one_request_without_stream(provider, openai_mock):
    deltas = await answer(provider)
    assert [d.text for d in deltas] == ["echo: hello there", ""]
    assert deltas[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert deltas[-1].usage.completion_tokens == COMPLETION_TOKENS
    assert deltas[-1].finish_reason == "stop"
    sent = openai_mock.state.requests
    assert len(sent) == 1 and sent[0]["stream"] is False and "stream_options" not in sent[0]


async def test_streamed_reply_deltas_are_the_stream(provider, openai_mock):
    deltas = [d async for d in provider.reply_deltas("mock-small", user("hello there"), P, streamed=True)]
    assert [d.text for d in deltas[:-1]] == ["echo:", " hello", " there"]
    assert openai_mock.state.requests[0]["stream"] is True


async def test_unstreamed_answer_retries_500_then_succeeds(provider, openai_mock):
    openai_mock.state.script.extend(["500", "503"])
    deltas = await answer(provider)
    assert deltas[0].text == "echo: hello there"
    assert len(openai_mock.state.requests) == 3


async def test_unstreamed_answer_401_without_the_key(provider, openai_mock):
    openai_mock.state.script.append("401")
    with pytest.raises(ProviderAuthError) as caught:
        await answer(provider)
    assert KEY not in caught.value.detail
    assert len(openai_mock.state.requests) == 1


async def test_unstreamed_answer_400_is_not_retried(provider, openai_mock):
    openai_mock.state.script.append("400")
    with pytest.raises(ProviderBadRequest):
        await answer(provider)
    assert len(openai_mock.state.requests) == 1


async def test_unstreamed_answer_refused_connection_is_unavailable():
    p = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", name="mock", max_retries=0, timeout=2)
    try:
        with pytest.raises(ProviderUnavailable):
            [d async for d in p.reply_deltas("m", user("x"), P, streamed=False)]
    finally:
        await p.aclose()
