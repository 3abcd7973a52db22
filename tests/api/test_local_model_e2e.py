"""The embedded Gemma model answers through the server with no network: both modes of the openai SDK."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.local_model


@pytest.fixture
def local_bot(workspace, server):
    app = workspace.create_chatbot(model="local/gemma-3-270m", temperature=0.0, max_tokens=48)
    sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=workspace.admin_key, max_retries=0, timeout=120)
    yield app, sdk
    sdk.close()


def test_local_model_answers_a_simple_question(local_bot):
    app, sdk = local_bot
    reply = sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    text = reply.choices[0].message.content
    assert "Paris" in text
    assert "User:" not in text and "Assistant:" not in text
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 48


def test_local_model_streams_tokens(local_bot):
    app, sdk = local_bot
    stream = sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "Name a colour."}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "".join(pieces).strip()
    assert chunks[-1].usage.completion_tokens >= len(pieces) - 1
