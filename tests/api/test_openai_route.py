"""The OpenAI-compatible route, driven by the official `openai` SDK, unmodified."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture
def sdk(workspace, server):
    key = workspace.create_key("sdk", ["chatbot"])
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
    yield client
    client.close()


def test_non_streaming_completion(workspace, sdk):
    app = workspace.create_chatbot(model="fake/echo")
    completion = sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "hello world"}])
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 2 and completion.usage.completion_tokens == 2
    assert completion.usage.total_tokens == 4


def test_streaming_completion(workspace, sdk):
    app = workspace.create_chatbot(model="fake/echo")
    stream = sdk.chat.completions.create(
        model=app["id"], messages=[{"role": "user", "content": "one two three"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3


def test_conversation_id_keeps_memory_server_side(workspace, sdk):
    app = workspace.create_chatbot(model="fake/context", system_prompt="You are terse.")
    first = sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "my name is Ada"}])
    conversation = first.model_extra["conversation_id"]
    sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "I like tea"}], extra_body={"conversation_id": conversation}
    )
    third = sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "what is my name?"}],
        extra_body={"conversation_id": conversation},
    )
    seen = third.choices[0].message.content
    assert seen.startswith("system: You are terse.")
    assert "user: my name is Ada" in seen and "user: I like tea" in seen
    assert seen.rstrip().endswith("user: what is my name?")


def test_without_conversation_id_the_client_history_is_used(workspace, sdk):
    app = workspace.create_chatbot(model="fake/context")
    reply = sdk.chat.completions.create(model=app["slug"], messages=[
        {"role": "system", "content": "extra rules"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": "now this"}]},
    ])
    assert reply.choices[0].message.content.splitlines() == [
        "system: extra rules", "user: earlier question", "assistant: earlier answer", "user: now this",
    ]


def test_memory_window_bounds_history(workspace, sdk):
    app = workspace.create_chatbot(model="fake/context", memory_window=2)
    first = sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "first"}])
    conversation = first.model_extra["conversation_id"]
    for text in ("second", "third"):
        last = sdk.chat.completions.create(
            model=app["slug"], messages=[{"role": "user", "content": text}], extra_body={"conversation_id": conversation}
        )
    # Two remembered messages: the "second" exchange; the "first" one fell out of the window.
    lines = last.choices[0].message.content.splitlines()
    assert lines[0] == "user: second"
    assert lines[1].startswith("assistant: ")
    assert lines[-1] == "user: third"


def test_models_lists_the_chatbots(workspace, sdk):
    app = workspace.create_chatbot(name="Listed")
    ids = [m.id for m in sdk.models.list()]
    assert app["slug"] in ids


def test_provider_failure_is_a_clear_error(workspace, sdk):
    app = workspace.create_chatbot(model="fake/fail")
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert "fake provider failure" in caught.value.response.json()["detail"]


def test_failure_mid_stream_raises_in_the_sdk_and_leaves_no_history(workspace, sdk):
    app = workspace.create_chatbot(model="fake/fail-midstream")
    stream = sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "a b c d e f"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    session_id = received[0].model_extra["conversation_id"]
    with workspace.client() as c:
        assert c.get(f"/v1/sessions/{session_id}/messages").json() == []
        run = c.get(f"/v1/runs/{received[0].id.removeprefix('chatcmpl-')}").json()
    assert run["status"] == "failed" and run["error"]["code"] == "provider_error"
