"""A conversation belongs to one app: naming another app's session is 409 on every chat route, and writes nothing.

Session ids may be picked by clients, so without this one app's caller could
continue (and read through the model) another app's conversation.
"""

from __future__ import annotations

import openai
import pytest
import requests
from dialect_support import asking_chatflow, llm_chatflow, make_public, session_messages
from flowise import Flowise, PredictionData

CHAT = "/v1/chatbot/api/chat"


@pytest.fixture
def key(workspace) -> str:
    return workspace.create_key("caller", ["chatbot"])


def test_the_openai_route_refuses_another_apps_conversation(workspace, server, key, written):
    first = workspace.create_chatbot(model="fake/context", name="First")
    second = workspace.create_chatbot(model="fake/context", name="Second")
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0) as sdk:
        started = sdk.chat.completions.create(model=first["slug"], messages=[{"role": "user", "content": "secret plan"}])
        conversation = started.model_extra["conversation_id"]
        before = written()
        with pytest.raises(openai.ConflictError) as caught:
            sdk.chat.completions.create(model=second["slug"], messages=[{"role": "user", "content": "repeat"}],
                                        extra_body={"conversation_id": conversation})
        assert "another app" in caught.value.response.json()["detail"]
        assert written() == before
        own = sdk.chat.completions.create(model=first["slug"], messages=[{"role": "user", "content": "and?"}],
                                          extra_body={"conversation_id": conversation})
    assert "user: secret plan" in own.choices[0].message.content


@pytest.mark.parametrize(("owner_kind", "caller_kind"), [("chatbot", "chatflow"), ("chatflow", "chatbot"),
                                                         ("chatflow", "chatflow")])
def test_wayscloud_refuses_another_apps_session_whatever_their_kinds(workspace, key, written, owner_kind, caller_kind):
    def app(kind: str, name: str) -> dict:
        return workspace.create_chatbot(model="fake/context", name=name) if kind == "chatbot" else \
            llm_chatflow(workspace, name=name)

    owner, caller = app(owner_kind, "Owner"), app(caller_kind, "Caller")
    with workspace.server.client(key) as c:
        session_id = c.post(CHAT, json={"bot_id": owner["slug"], "message": "secret plan"}).json()["session_id"]
        before = written()
        for path in (CHAT, CHAT + "/stream"):
            response = c.post(path, json={"bot_id": caller["slug"], "message": "repeat", "session_id": session_id})
            assert response.status_code == 409 and "another app" in response.json()["detail"]
            assert "secret" not in response.text
    assert written() == before


def test_a_waiting_chatflow_is_answered_by_its_own_app_only(workspace, key, written):
    shop = asking_chatflow(workspace)
    other = asking_chatflow(workspace, name="Other shop")
    with workspace.server.client(key) as c:
        asked = c.post(CHAT, json={"bot_id": shop["slug"], "message": "a shirt"}).json()
        assert asked["response"] == "Which size?"
        before = written()
        response = c.post(CHAT, json={"bot_id": other["slug"], "message": "XL", "session_id": asked["session_id"]})
        assert response.status_code == 409
        assert written() == before
        answered = c.post(CHAT, json={"bot_id": shop["slug"], "message": "XL", "session_id": asked["session_id"]})
    assert answered.json()["response"] == "You asked a shirt in size XL"


def test_flowise_refuses_another_apps_session_even_for_a_public_chatflow(workspace, server, key, written):
    private = workspace.create_chatbot(model="fake/context", name="Private")
    public = llm_chatflow(workspace, name="Public")
    make_public(workspace, public["id"])
    sdk = Flowise(server.base_url, key)
    list(sdk.create_prediction(PredictionData(chatflowId=private["id"], question="the vault code is 1234",
                                              overrideConfig={"sessionId": "123"})))
    before = written()
    for streaming in (False, True):
        with pytest.raises(requests.HTTPError) as caught:
            list(Flowise(server.base_url).create_prediction(PredictionData(
                chatflowId=public["id"], question="repeat everything", overrideConfig={"sessionId": "123"},
                streaming=streaming)))
        assert caught.value.response.status_code == 409
    assert written() == before
    assert session_messages(workspace, "123") == [("user", "the vault code is 1234"), ("assistant", "user: the vault code is 1234")]


def test_the_native_chatflow_route_refuses_another_apps_conversation(workspace, server, key):
    bot = workspace.create_chatbot(model="fake/context")
    flow = llm_chatflow(workspace)
    with workspace.server.client(key) as c:
        session_id = c.post(CHAT, json={"bot_id": bot["slug"], "message": "secret plan"}).json()["session_id"]
        response = c.post(f"/execute_chatflow/{flow['id']}/execute",
                          json={"input_data": {"query": "repeat", "conversation_id": session_id}})
    assert response.status_code == 409 and "another app" in response.json()["detail"]
