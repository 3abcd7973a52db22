"""Tailwinds/Flowise prediction and message API (CONTRACTS §8), driven by the official `flowise` SDK.

The SDK first calls `GET /api/v1/chatflows-streaming/{id}` without credentials,
then posts the prediction with `Authorization: Bearer <key>`; a streamed
prediction yields the JSON text of each `data:` line.
"""

from __future__ import annotations

import base64

import httpx
import pytest
import requests
from dialect_support import (
    chatbot_trace,
    latest_run,
    llm_chatflow,
    make_public,
    predict,
    predict_stream,
    refused,
    session_messages,
)
from flowise import Flowise, IFileUpload, IMessage, PredictionData

from headwater.providers.fake import MIDSTREAM_TEXT

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()


@pytest.fixture
def chatbot_key(workspace) -> str:
    return workspace.create_key("flowise", ["chatbot"])


@pytest.fixture
def sdk(server, chatbot_key) -> Flowise:
    return Flowise(server.base_url, chatbot_key)


# chatflows-streaming: the SDK's unauthenticated probe


def test_streaming_probe_answers_without_credentials_and_reveals_nothing(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo")
    with workspace.client() as c:
        agent = c.post("/v1/apps", json={"name": "Agent", "kind": "agent", "config": {"mode": "react"}}).json()
    with httpx.Client(base_url=server.base_url) as anonymous:
        found = anonymous.get(f"/api/v1/chatflows-streaming/{bot['id']}")
        assert found.status_code == 200 and found.json() == {"isStreaming": True}
        for unknown in ("6f1c1b1e-0000-4000-8000-000000000000", bot["slug"], agent["id"]):
            missing = anonymous.get(f"/api/v1/chatflows-streaming/{unknown}")
            assert missing.status_code == 404 and missing.json() == {"detail": "app not found"}


# predictions through the SDK


def test_prediction_answers_and_shares_the_native_session(workspace, sdk):
    bot = workspace.create_chatbot(model="fake/echo")
    reply = predict(sdk, bot["id"], "Hey, how are you?")
    assert set(reply) == {"text", "question", "chatId", "chatMessageId", "sessionId"}
    assert reply["text"] == "Hey, how are you?" and reply["question"] == "Hey, how are you?"
    assert reply["chatId"] == reply["sessionId"]
    with workspace.client() as c:
        stored = c.get(f"/v1/sessions/{reply['sessionId']}/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "Hey, how are you?"), ("assistant", "Hey, how are you?")]
    assert stored[1]["id"] == reply["chatMessageId"]
    run, types = latest_run(workspace, bot["id"])
    assert run["source"] == "flowise" and run["status"] == "succeeded" and run["session_id"] == reply["sessionId"]
    assert types == chatbot_trace(tokens=4)


def test_streamed_prediction_uses_flowise_events_in_flowise_order(workspace, sdk):
    bot = workspace.create_chatbot(model="fake/echo")
    events = predict_stream(sdk, bot["id"], "Tell me a joke", overrideConfig={"sessionId": "joke-1"})
    names = [e["event"] for e in events]
    assert names == ["start"] + ["token"] * 4 + ["metadata", "end"]
    assert events[0]["data"] == events[1]["data"] == "Tell "  # start carries the first token, as in Flowise
    assert "".join(e["data"] for e in events if e["event"] == "token") == "Tell me a joke"
    metadata = events[-2]["data"]
    assert metadata["chatId"] == metadata["sessionId"] == "joke-1" and metadata["question"] == "Tell me a joke"
    assert events[-1]["data"] == "[DONE]"
    stored = session_messages(workspace, "joke-1")
    assert stored == [("user", "Tell me a joke"), ("assistant", "Tell me a joke")]


def test_the_raw_stream_is_framed_like_flowise(workspace, server, chatbot_key):
    bot = workspace.create_chatbot(model="fake/echo")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {chatbot_key}"}) as c:
        with c.stream("POST", f"/api/v1/prediction/{bot['id']}", json={"question": "hi", "streaming": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert frames[0] == 'message:\ndata:{"event":"start","data":"hi"}'
    assert frames[-1] == 'message:\ndata:{"event":"end","data":"[DONE]"}'
    assert all(f.startswith("message:\ndata:{") for f in frames)


def test_a_fact_from_turn_one_is_remembered_in_turn_three(workspace, sdk):
    bot = workspace.create_chatbot(model="fake/context")
    session = {"sessionId": "user-42"}
    first = predict(sdk, bot["id"], "my name is Brian", overrideConfig=session)
    predict_stream(sdk, bot["id"], "I like tea", overrideConfig=session)
    third = predict(sdk, bot["id"], "what is my name?", overrideConfig=session)
    assert first["sessionId"] == third["sessionId"] == third["chatId"] == "user-42"
    assert "user: my name is Brian" in third["text"] and "user: I like tea" in third["text"]
    assert third["text"].rstrip().endswith("user: what is my name?")
    assert "Brian" not in predict(sdk, bot["id"], "what is my name?")["text"]  # no sessionId: a new session


def test_chat_id_names_the_session_too(workspace, sdk):
    bot = workspace.create_chatbot(model="fake/context")
    predict(sdk, bot["id"], "the code is 7", chatId="chat-7")
    again = predict(sdk, bot["id"], "what is the code?", chatId="chat-7")
    assert again["chatId"] == "chat-7" and "user: the code is 7" in again["text"]


def test_client_history_in_both_shapes_is_the_context_of_a_new_session(workspace, sdk, server, chatbot_key):
    bot = workspace.create_chatbot(model="fake/context")
    sdk_history = [IMessage(message="Hello how can I help?", type="apiMessage"),
                   IMessage(message="Hi my name is Brian", type="userMessage")]
    reply = predict(sdk, bot["id"], "Hey, how are you?", history=sdk_history)
    assert reply["text"].splitlines() == [
        "assistant: Hello how can I help?", "user: Hi my name is Brian", "user: Hey, how are you?",
    ]
    seed_history = [{"role": "apiMessage", "content": "Hello how can I help?"},
                    {"role": "userMessage", "content": "Hi my name is Brian"},
                    {"role": "apiMessage", "content": "Hi Brian, how can I help?"}]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {chatbot_key}"}) as c:
        seeded = c.post(f"/api/v1/prediction/{bot['id']}", json={"question": "Who am I?", "history": seed_history,
                                                                   "overrideConfig": {"sessionId": "fresh"}})
        assert seeded.json()["text"].splitlines()[-2:] == ["assistant: Hi Brian, how can I help?", "user: Who am I?"]
        # The session now remembers; its stored memory wins over a history the client sends again.
        later = c.post(f"/api/v1/prediction/{bot['id']}", json={
            "question": "And now?", "overrideConfig": {"sessionId": "fresh"},
            "history": [{"role": "userMessage", "content": "a history that must not be used"}],
        })
    assert "must not be used" not in later.json()["text"]
    assert later.json()["text"].splitlines()[0] == "user: Who am I?"


@pytest.mark.parametrize("item", [{"role": "wizard", "content": "x"}, {"role": "userMessage"}, {"content": "x"}])
def test_malformed_history_is_422(workspace, server, chatbot_key, written, item):
    bot = workspace.create_chatbot(model="fake/context")
    before = written()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {chatbot_key}"}) as c:
        response = c.post(f"/api/v1/prediction/{bot['id']}", json={"question": "hi", "history": [item]})
    assert response.status_code == 422 and "history" in response.json()["detail"]
    assert written() == before


def test_return_source_documents_adds_nothing_without_citations(workspace, sdk):
    bot = workspace.create_chatbot(model="fake/echo")
    override = {"sessionId": "docs", "returnSourceDocuments": True}
    assert "sourceDocuments" not in predict(sdk, bot["id"], "hi", overrideConfig=override)
    assert "sourceDocuments" not in [e["event"] for e in predict_stream(sdk, bot["id"], "hi", overrideConfig=override)]


# uploads


@pytest.mark.parametrize(("upload", "streaming"), [
    (IFileUpload(data=PNG, type="file", name="image.png", mime="image/png"), False),
    (IFileUpload(data=PNG.split(",", 1)[1], type="file", name="image.png", mime="image/png"), True),
])
def test_image_uploads_reach_the_model(workspace, sdk, upload, streaming):
    bot = workspace.create_chatbot(model="fake/echo")
    if streaming:
        events = predict_stream(sdk, bot["id"], "Can you describe the image?", uploads=[upload])
        text = "".join(e["data"] for e in events if e["event"] == "token")
    else:
        text = predict(sdk, bot["id"], "Can you describe the image?", uploads=[upload])["text"]
    assert text == "Can you describe the image? [1 image]"  # fake/echo notes the images it was given


# File and audio uploads (text as context, speech-to-text) belong to the uploads feature: tests/knowledge/test_uploads.py.
@pytest.mark.parametrize(("upload", "expected"), [
    (IFileUpload(data="http://example.com/cat.png", type="url", name="cat.png", mime="image/png"), "https"),
    (IFileUpload(data="data:image/png;base64,not base64!", type="file", name="x.png", mime="image/png"), "base64"),
    (IFileUpload(data=None, type="file", name="empty.png", mime="image/png"), "no data"),
])
def test_unusable_image_uploads_are_422_and_write_nothing(workspace, sdk, written, upload, expected):
    bot = workspace.create_chatbot(model="fake/echo")
    before = written()
    with pytest.raises(requests.HTTPError) as caught:
        predict(sdk, bot["id"], "what is this?", uploads=[upload])
    assert caught.value.response.status_code == 422
    assert expected in caught.value.response.json()["detail"]
    assert written() == before


@pytest.mark.parametrize("url", ["https://127.0.0.1/cat.png", "https://localhost/cat.png", "https://10.1.2.3/cat.png",
                                 "https://[::ffff:127.0.0.1]/cat.png"])
def test_image_urls_are_fetched_through_the_egress_guard(workspace, sdk, written, url):
    # Fetched by the server, as the OpenAI route does, never handed to a provider to fetch: a private
    # or loopback address is refused before anything is written, for chatbots and chatflows alike.
    apps = [workspace.create_chatbot(model="fake/echo"), llm_chatflow(workspace, model="fake/echo")]
    before = written()
    for app in apps:
        with pytest.raises(requests.HTTPError) as caught:
            predict(sdk, app["id"], "what is this?", uploads=[IFileUpload(data=url, type="url", name="cat.png",
                                                                          mime="image/png")])
        assert caught.value.response.status_code == 422
        assert "not allowed" in caught.value.response.json()["detail"]
    assert written() == before


def test_images_for_a_text_only_model_name_the_model(workspace, sdk, written):
    bot = workspace.create_chatbot(model="local/gemma-3-270m")
    before = written()
    with pytest.raises(requests.HTTPError) as caught:
        predict(sdk, bot["id"], "what is this?", uploads=[IFileUpload(data=PNG, type="file", name="i.png", mime="image/png")])
    assert caught.value.response.status_code == 422
    assert "local/gemma-3-270m" in caught.value.response.json()["detail"]
    assert written() == before


# failures


def test_failure_mid_stream_is_an_error_event_and_writes_no_history(workspace, sdk, app_of_kind):
    bot = app_of_kind("fake/fail-midstream")
    events = predict_stream(sdk, bot["id"], "a b c", overrideConfig={"sessionId": "breaks"})
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-2:] == ["error", "end"] and "metadata" not in names
    assert "".join(e["data"] for e in events if e["event"] == "token") == MIDSTREAM_TEXT
    assert events[-2]["data"] == "fake provider failure mid-stream"
    assert session_messages(workspace, "breaks") == []
    run, types = latest_run(workspace, bot["id"])
    assert run["status"] == "failed" and types[-2:] == ["error", "run_finished"]


def test_failure_without_streaming_is_a_json_error(workspace, sdk, app_of_kind):
    bot = app_of_kind("fake/fail")
    with pytest.raises(requests.HTTPError) as caught:
        predict(sdk, bot["id"], "hi", overrideConfig={"sessionId": "fails"})
    assert caught.value.response.status_code == 502
    assert caught.value.response.json() == {"detail": "fake provider failure"}
    assert session_messages(workspace, "fails") == []


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("question", ["", "  "])
def test_empty_question_is_422_and_writes_nothing(workspace, sdk, written, question, streaming):
    bot = workspace.create_chatbot(model="fake/echo")
    before = written()
    status = refused(lambda: list(sdk.create_prediction(
        PredictionData(chatflowId=bot["id"], question=question, streaming=streaming)))).status_code
    assert status == 422
    assert written() == before


# who may call


def test_private_app_without_key_is_401_and_public_app_works(workspace, server, written):
    private = workspace.create_chatbot(model="fake/echo", name="Private")
    public = workspace.create_chatbot(model="fake/context", name="Public")
    make_public(workspace, public["id"])
    anonymous = Flowise(server.base_url)
    before = written()
    assert refused(lambda: predict(anonymous, private["id"], "hi")).status_code == 401
    assert refused(lambda: predict_stream(anonymous, private["id"], "hi")).status_code == 401
    assert written() == before
    first = predict(anonymous, public["id"], "my name is Ada", overrideConfig={"sessionId": "visitor-1"})
    events = predict_stream(anonymous, public["id"], "who am I?", overrideConfig={"sessionId": "visitor-1"})
    assert first["text"] == "user: my name is Ada"
    assert "user: my name is Ada" in "".join(e["data"] for e in events if e["event"] == "token")
    assert events[-1]["event"] == "end"


def test_anonymous_callers_reach_public_apps_by_id_only(workspace, server):
    public = workspace.create_chatbot(model="fake/echo", name="Public")
    make_public(workspace, public["id"])
    with httpx.Client(base_url=server.base_url) as anonymous:
        by_id = anonymous.post(f"/api/v1/prediction/{public['id']}", json={"question": "hi"})
        by_slug = anonymous.post(f"/api/v1/prediction/{public['slug']}", json={"question": "hi"})
        unknown = anonymous.post("/api/v1/prediction/6f1c1b1e-0000-4000-8000-000000000000", json={"question": "hi"})
    assert by_id.status_code == 200 and by_id.json()["text"] == "hi"
    assert "X-RateLimit-Remaining" in by_id.headers  # anonymous callers are rate limited too (per address)
    assert by_slug.status_code == unknown.status_code == 401


def test_a_public_app_cannot_read_another_apps_session(workspace, sdk, server):
    private = workspace.create_chatbot(model="fake/context", name="Private")
    public = workspace.create_chatbot(model="fake/context", name="Public")
    make_public(workspace, public["id"])
    predict(sdk, private["id"], "the vault code is 1234", overrideConfig={"sessionId": "123"})
    with pytest.raises(requests.HTTPError) as caught:
        predict(Flowise(server.base_url), public["id"], "repeat everything", overrideConfig={"sessionId": "123"})
    assert caught.value.response.status_code == 409
    assert "1234" not in caught.value.response.text


def test_a_wrong_key_is_401_even_for_a_public_app(workspace, server):
    public = workspace.create_chatbot(model="fake/echo")
    make_public(workspace, public["id"])
    wrong_key = Flowise(server.base_url, "hw_not_a_real_key")
    assert refused(lambda: predict(wrong_key, public["id"], "hi")).status_code == 401


def test_a_key_without_the_chatbot_scope_is_403(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo")
    knowledge = Flowise(server.base_url, workspace.create_key("kb", ["knowledge"]))
    assert refused(lambda: predict(knowledge, bot["id"], "hi")).status_code == 403
    assert refused(lambda: predict_stream(knowledge, bot["id"], "hi")).status_code == 403


def test_another_workspaces_app_is_404_on_every_route(workspace, other_workspace, server, written):
    foreign = other_workspace.create_chatbot(model="fake/echo", name="Foreign")
    make_public(other_workspace, foreign["id"])  # public or not, a key acts for its own workspace only
    with other_workspace.client() as c:
        c.post(f"/api/v1/prediction/{foreign['id']}", json={"question": "theirs", "overrideConfig": {"sessionId": "s"}})
    before = written()
    mine = Flowise(server.base_url, workspace.admin_key)
    assert refused(lambda: predict(mine, foreign["id"], "hi")).status_code == 404
    assert refused(lambda: predict_stream(mine, foreign["id"], "hi")).status_code == 404
    with workspace.client() as c:
        for method in ("GET", "DELETE"):
            response = c.request(method, f"/api/v1/chatmessage/{foreign['id']}")
            assert response.status_code == 404 and response.json() == {"detail": "app not found"}
    assert written() == before
    assert session_messages(other_workspace, "s") == [("user", "theirs"), ("assistant", "theirs")]


# message API


def test_chat_messages_in_flowise_shape_with_filters(workspace, server, sdk):
    bot = workspace.create_chatbot(model="fake/echo")
    for session, question in (("a", "first"), ("a", "second"), ("b", "third")):
        predict(sdk, bot["id"], question, overrideConfig={"sessionId": session})
    with workspace.client() as c:
        all_messages = c.get(f"/api/v1/chatmessage/{bot['id']}")
    assert all_messages.status_code == 200
    items = all_messages.json()
    assert [(m["role"], m["content"], m["sessionId"]) for m in items] == [
        ("userMessage", "first", "a"), ("apiMessage", "first", "a"), ("userMessage", "second", "a"),
        ("apiMessage", "second", "a"), ("userMessage", "third", "b"), ("apiMessage", "third", "b"),
    ]
    assert {"id", "role", "chatflowid", "content", "chatId", "sessionId", "createdDate", "sourceDocuments"} <= set(items[0])
    assert all(m["chatflowid"] == bot["id"] and m["chatId"] == m["sessionId"] for m in items)
    with workspace.client() as c:
        def contents(**params) -> list[str]:
            response = c.get(f"/api/v1/chatmessage/{bot['id']}", params=params)
            assert response.status_code == 200, response.text
            return [m["content"] for m in response.json() if m["role"] == "userMessage"]

        assert contents(sessionId="a") == contents(chatId="a") == contents(sessionId="a", chatId="a") == ["first", "second"]
        assert c.get(f"/api/v1/chatmessage/{bot['id']}", params={"sessionId": "a", "chatId": "b"}).status_code == 422
        assert contents(sort="DESC") == contents(order="DESC") == ["third", "second", "first"]
        assert contents(sort="ASC", sessionId="b") == ["third"]
        today = items[0]["createdDate"][:10]
        assert contents(startDate=today, endDate=today) == ["first", "second", "third"]
        assert contents(startDate="2999-01-01") == [] and contents(endDate="2000-01-01T00:00:00Z") == []
        assert c.get(f"/api/v1/chatmessage/{bot['id']}", params={"startDate": "yesterday"}).status_code == 422
        assert c.get(f"/api/v1/chatmessage/{bot['id']}", params={"sort": "sideways"}).status_code == 422


def test_deleting_chat_messages_by_session_and_for_the_whole_app(workspace, server, sdk):
    bot = workspace.create_chatbot(model="fake/context")
    predict(sdk, bot["id"], "remember 1", overrideConfig={"sessionId": "x"})
    predict(sdk, bot["id"], "remember 2", overrideConfig={"sessionId": "y"})
    with workspace.client() as c:
        url = f"/api/v1/chatmessage/{bot['id']}"
        assert c.delete(url, params={"sessionId": "x"}).json() == {"raw": [], "affected": 2}
        assert [m["sessionId"] for m in c.get(url).json()] == ["y", "y"]
        # The memory went with the messages: the session starts afresh.
        assert predict(sdk, bot["id"], "what was it?", overrideConfig={"sessionId": "x"})["text"] == "user: what was it?"
        assert c.delete(url).json() == {"raw": [], "affected": 4}
        assert c.get(url).json() == []


def test_the_message_api_is_admin_only(workspace, server, chatbot_key):
    bot = workspace.create_chatbot(model="fake/echo")
    url = f"/api/v1/chatmessage/{bot['id']}"
    with workspace.client() as c:
        assert c.get(url).status_code == 200
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {chatbot_key}"}) as c:
        assert c.get(url).status_code == 403 and c.delete(url).status_code == 403
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get(url).status_code == 401 and anonymous.delete(url).status_code == 401
    with httpx.Client(base_url=server.base_url, auth=("admin", "wrong")) as wrong:
        assert wrong.get(url).status_code == 401


def test_the_message_api_accepts_basic_auth_for_the_admins_workspace(server):
    # HTTP Basic is the instance admin, acting for the default workspace (where this app lives).
    with server.client(server.admin_key) as admin:
        bot = admin.post("/v1/apps", json={"name": "Basic", "kind": "chatbot", "config": {"model": "fake/echo"}}).json()
        admin.post(f"/api/v1/prediction/{bot['id']}", json={"question": "hello", "overrideConfig": {"sessionId": bot["id"]}})
    with httpx.Client(base_url=server.base_url, auth=("admin", server.admin_password)) as basic:
        listed = basic.get(f"/api/v1/chatmessage/{bot['id']}")
        assert [(m["role"], m["content"]) for m in listed.json()] == [("userMessage", "hello"), ("apiMessage", "hello")]
        assert basic.delete(f"/api/v1/chatmessage/{bot['id']}").json()["affected"] == 2


@pytest.mark.local_model
def test_local_model_through_the_flowise_sdk(workspace, sdk):
    bot = workspace.create_chatbot(model="local/gemma-3-270m", temperature=0.0, max_tokens=48)
    reply = predict(sdk, bot["id"], "What is the capital of France?")
    assert "Paris" in reply["text"]
    events = predict_stream(sdk, bot["id"], "What is the capital of France?")
    assert events[0]["event"] == "start" and [e["event"] for e in events[-2:]] == ["metadata", "end"]
    tokens = [e["data"] for e in events if e["event"] == "token"]
    assert len(tokens) >= 2 and "Paris" in "".join(tokens)
