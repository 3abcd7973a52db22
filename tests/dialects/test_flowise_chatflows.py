"""Chatflow apps through the Tailwinds/Flowise prediction API (CONTRACTS §8), driven by the official `flowise` SDK."""

from __future__ import annotations

import base64

import httpx
import pytest
from dialect_support import (
    app_runs,
    asking_chatflow,
    create_chatflow,
    latest_run,
    llm_chatflow,
    make_public,
    predict,
    predict_stream,
    refused,
    run_events,
    session_messages,
)
from flowise import Flowise, IFileUpload, IMessage, PredictionData


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
NOTES = "data:text/plain;filename=notes.txt;base64," + base64.b64encode(b"The launch is on Tuesday.").decode()


@pytest.fixture
def sdk(server, workspace) -> Flowise:
    return Flowise(server.base_url, workspace.create_key("flowise", ["chatbot"]))


def test_the_streaming_probe_answers_for_chatflows(workspace, server):
    flow = llm_chatflow(workspace)
    with httpx.Client(base_url=server.base_url) as anonymous:
        found = anonymous.get(f"/api/v1/chatflows-streaming/{flow['id']}")
    assert found.status_code == 200 and found.json() == {"isStreaming": True}


def test_a_prediction_answers_in_the_native_session_and_records_its_trace(workspace, sdk):
    flow = llm_chatflow(workspace, model="fake/echo")
    reply = predict(sdk, flow["id"], "Hey, how are you?")
    assert set(reply) == {"text", "question", "chatId", "chatMessageId", "sessionId"}
    assert reply["text"] == reply["question"] == "Hey, how are you?" and reply["chatId"] == reply["sessionId"]
    with workspace.client() as c:
        stored = c.get(f"/v1/sessions/{reply['sessionId']}/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "Hey, how are you?"), ("assistant", "Hey, how are you?")]
    assert stored[1]["id"] == reply["chatMessageId"]
    run, _ = latest_run(workspace, flow["id"])
    assert run["source"] == "flowise" and run["status"] == "succeeded" and run["session_id"] == reply["sessionId"]
    finished = [e["data"]["node_id"] for e in run_events(workspace, run["id"]) if e["type"] == "node_finished"]
    assert finished == ["start", "gen", "out"]


def test_a_streamed_prediction_uses_flowise_events(workspace, sdk):
    flow = llm_chatflow(workspace, model="fake/echo")
    events = predict_stream(sdk, flow["id"], "Tell me a joke", overrideConfig={"sessionId": "joke-1"})
    assert [e["event"] for e in events] == ["start"] + ["token"] * 4 + ["metadata", "end"]
    assert events[0]["data"] == "Tell "
    metadata = events[-2]["data"]
    assert metadata["chatId"] == metadata["sessionId"] == "joke-1" and metadata["question"] == "Tell me a joke"
    with workspace.client() as c:
        stored = c.get("/v1/sessions/joke-1/messages").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "Tell me a joke"), ("assistant", "Tell me a joke")]
    assert stored[1]["id"] == metadata["chatMessageId"]


def test_a_fact_from_turn_one_is_remembered_in_turn_three(workspace, sdk):
    flow = llm_chatflow(workspace)
    session = {"sessionId": "user-42"}
    predict(sdk, flow["id"], "my name is Brian", overrideConfig=session)
    predict_stream(sdk, flow["id"], "I like tea", overrideConfig=session)
    third = predict(sdk, flow["id"], "what is my name?", overrideConfig=session)
    assert third["sessionId"] == "user-42"
    assert "user: my name is Brian" in third["text"] and "user: I like tea" in third["text"]
    assert third["text"].rstrip().endswith("user: what is my name?")
    assert "Brian" not in predict(sdk, flow["id"], "what is my name?")["text"]
    with workspace.client() as c:
        listed = c.get(f"/api/v1/chatmessage/{flow['id']}", params={"sessionId": "user-42"}).json()
    assert [m["role"] for m in listed] == ["userMessage", "apiMessage"] * 3


def test_client_history_is_the_context_of_a_new_conversation_only(workspace, sdk):
    flow = llm_chatflow(workspace)
    history = [IMessage(message="I am Brian", type="userMessage"), IMessage(message="Hi Brian", type="apiMessage")]
    first = predict(sdk, flow["id"], "Who am I?", history=history, overrideConfig={"sessionId": "h"})
    assert first["text"].splitlines() == ["user: I am Brian", "assistant: Hi Brian", "user: Who am I?"]
    later = predict(sdk, flow["id"], "And now?", overrideConfig={"sessionId": "h"},
                    history=[IMessage(message="a history that must not be used", type="userMessage")])
    assert "must not be used" not in later["text"] and later["text"].splitlines()[0] == "user: Who am I?"


def test_a_paused_chatflow_asks_and_the_next_prediction_answers_it(workspace, sdk):
    flow = asking_chatflow(workspace)
    asked = predict_stream(sdk, flow["id"], "a shirt", overrideConfig={"sessionId": "shop-1"})
    assert [(e["event"], e["data"]) for e in asked[:2]] == [("start", "Which size?"), ("token", "Which size?")]
    assert [e["event"] for e in asked[2:]] == ["metadata", "end"]
    answered = predict(sdk, flow["id"], "XL", overrideConfig={"sessionId": "shop-1"})
    assert answered["text"] == "You asked a shirt in size XL"
    assert answered["chatMessageId"] == asked[2]["data"]["chatMessageId"]  # the reply the run stores when it ends
    (run,) = app_runs(workspace, flow["id"])
    assert run["status"] == "succeeded"
    assert session_messages(workspace, "shop-1") == [("user", "a shirt"), ("assistant", "You asked a shirt in size XL")]


def test_an_answer_to_a_paused_chatflow_takes_no_uploads(workspace, sdk, written):
    flow = asking_chatflow(workspace)
    assert predict(sdk, flow["id"], "a shirt", overrideConfig={"sessionId": "shop-2"})["text"] == "Which size?"
    before = written()
    response = refused(lambda: predict(sdk, flow["id"], "XL", overrideConfig={"sessionId": "shop-2"},
                                       uploads=[IFileUpload(data=PNG, type="file", name="i.png", mime="image/png")]))
    assert response.status_code == 422 and "waiting for an answer" in response.json()["detail"]
    assert written() == before
    assert predict(sdk, flow["id"], "XL", overrideConfig={"sessionId": "shop-2"})["text"] == "You asked a shirt in size XL"


def test_uploads_reach_the_flow_as_sys_files(workspace, sdk):
    # The flow decides what to do with them: here its prompt names each one and quotes the files' text.
    prompt = ("{% for f in sys.files %}[{{ f.type }}]{% if f.type == 'text' %} {{ f.text }}{% endif %}\n{% endfor %}"
              "{{ sys.query }}")
    flow = create_chatflow(workspace, {"id": "gen", "type": "llm", "model": "fake/echo", "prompt": prompt},
                           {"id": "out", "type": "answer", "text": "{{ gen.text }}"})
    uploads = [IFileUpload(data=PNG, type="file", name="image.png", mime="image/png"),
               IFileUpload(data=NOTES, type="file", name="notes.txt", mime="text/plain")]
    text = predict(sdk, flow["id"], "When is the launch?", uploads=uploads)["text"]
    lines = text.splitlines()
    assert lines[0] == "[image_url]" and lines[1].startswith("[text] The user attached the files below.")
    assert '<file name="notes.txt">' in text and "The launch is on Tuesday." in text
    assert lines[-1] == "When is the launch?"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("question", ["", "  "])
def test_empty_question_is_422_and_writes_nothing(workspace, sdk, written, question, streaming):
    flow = llm_chatflow(workspace)
    before = written()
    response = refused(lambda: list(sdk.create_prediction(
        PredictionData(chatflowId=flow["id"], question=question, streaming=streaming))))
    assert response.status_code == 422
    if not streaming:  # the SDK has consumed a streamed response's body
        assert response.json() == {"detail": "the message is empty"}
    assert written() == before


def test_a_public_chatflow_answers_without_a_key(workspace, server):
    flow = llm_chatflow(workspace)
    make_public(workspace, flow["id"])
    anonymous = Flowise(server.base_url)
    assert predict(anonymous, flow["id"], "my name is Ada", overrideConfig={"sessionId": "v"})["text"] == "user: my name is Ada"
    events = predict_stream(anonymous, flow["id"], "who am I?", overrideConfig={"sessionId": "v"})
    assert "user: my name is Ada" in "".join(e["data"] for e in events if e["event"] == "token")


@pytest.mark.local_model
def test_local_model_in_a_chatflow_through_the_flowise_sdk(workspace, sdk):
    flow = llm_chatflow(workspace, model="local/gemma-3-270m", temperature=0.0, max_tokens=48)
    events = predict_stream(sdk, flow["id"], "What is the capital of France?")
    assert events[0]["event"] == "start" and [e["event"] for e in events[-2:]] == ["metadata", "end"]
    assert "Paris" in "".join(e["data"] for e in events if e["event"] == "token")
