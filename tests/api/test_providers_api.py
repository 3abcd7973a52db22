"""Providers through the server: secrets never come back, chatbots run on them end to end."""

from __future__ import annotations

import openai
import pytest
from support.provider_mocks import MockState, ServedApp, openai_app
from support.server import dump_database

UPSTREAM_SECRET = "sk-upstream-secret-value-123456"


@pytest.fixture
def mock_openai():
    state = MockState()
    served = ServedApp(openai_app(state), state).start()
    yield served
    served.stop()


def test_provider_secret_is_never_returned_nor_stored_in_clear(workspace, server, mock_openai):
    with workspace.client() as c:
        created = c.post("/v1/providers", json={
            "name": "upstream", "type": "openai", "base_url": f"{mock_openai.base_url}/v1",
            "api_key": UPSTREAM_SECRET, "models": ["mock-small"],
        })
        assert created.status_code == 201
        assert UPSTREAM_SECRET not in created.text and created.json()["has_api_key"] is True
        assert UPSTREAM_SECRET not in c.get("/v1/providers").text
        assert UPSTREAM_SECRET not in c.get("/v1/providers/upstream").text
        names = [p["name"] for p in c.get("/v1/providers").json()]
        assert names[:2] == ["local", "fake"] and "upstream" in names
    assert UPSTREAM_SECRET not in dump_database(server.resolved_database_url)
    assert UPSTREAM_SECRET not in server.log_text()


def test_chatbot_on_an_openai_compatible_provider(workspace, server, mock_openai):
    with workspace.client() as c:
        assert c.post("/v1/providers", json={
            "name": "upstream", "type": "openai", "base_url": f"{mock_openai.base_url}/v1",
            "api_key": UPSTREAM_SECRET, "models": ["mock-small"],
        }).status_code == 201
    app = workspace.create_chatbot(model="upstream/mock-small", system_prompt="Be helpful.", temperature=0.3)
    sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=workspace.create_key(), max_retries=0)
    reply = sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "echo: ping"
    assert reply.usage.prompt_tokens == 11 and reply.usage.completion_tokens == 7
    sent = mock_openai.state.requests[-1]
    assert sent["model"] == "mock-small" and sent["temperature"] == 0.3
    assert sent["messages"][0] == {"role": "system", "content": "Be helpful."}
    assert mock_openai.state.headers[-1]["authorization"] == f"Bearer {UPSTREAM_SECRET}"

    chunks = list(sdk.chat.completions.create(
        model=app["slug"], messages=[{"role": "user", "content": "stream me"}], stream=True,
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream me"


def test_upstream_errors_are_retried_then_reported(workspace, server, mock_openai):
    with workspace.client() as c:
        c.post("/v1/providers", json={"name": "flaky", "type": "openai", "base_url": f"{mock_openai.base_url}/v1"})
    app = workspace.create_chatbot(model="flaky/any-model")
    sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=workspace.admin_key, max_retries=0)
    mock_openai.state.script.extend(["503", "ok"])
    assert sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "x"}]).choices
    mock_openai.state.script.extend(["401"])
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=app["slug"], messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502


def test_provider_validation(workspace):
    with workspace.client() as c:
        assert c.post("/v1/providers", json={"name": "local", "type": "openai", "base_url": "http://x.test/v1"}).status_code == 409
        assert c.post("/v1/providers", json={"name": "x", "type": "local"}).status_code == 422
        assert c.post("/v1/providers", json={"name": "x", "type": "mystery"}).status_code == 422
        assert c.post("/v1/providers", json={"name": "x", "type": "openai", "base_url": "not a url"}).status_code == 422
        assert c.post("/v1/providers", json={"name": "x", "type": "openai"}).status_code == 422
        assert c.post("/v1/providers", json={"name": "dup", "type": "openai", "base_url": "http://x.test/v1"}).status_code == 201
        assert c.post("/v1/providers", json={"name": "dup", "type": "openai", "base_url": "http://x.test/v1"}).status_code == 409
        assert c.delete("/v1/providers/local").status_code == 422
        assert c.delete("/v1/providers/dup").status_code == 204
        assert c.get("/v1/providers/dup").status_code == 404
