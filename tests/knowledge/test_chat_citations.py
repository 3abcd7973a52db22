"""A chatbot over a knowledge base answers with the retrieved context and cites it, in every dialect."""

from __future__ import annotations

import json

import httpx
from knowledge.conftest import create_kb, wait_for_documents
from openai import OpenAI

HANDBOOK = (
    "# Parking\n\nStaff park in lot B behind the warehouse. Visitors use the front car park.\n\n"
    "# Holidays\n\nEveryone gets 25 days of paid leave, plus public holidays."
)


def chatbot_over_handbook(workspace, model: str = "fake/context") -> tuple[dict, dict]:
    with workspace.client() as client:
        kb = create_kb(client, "Handbook")
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("handbook.md", HANDBOOK.encode(), "text/markdown")})
        assert response.status_code == 202
        wait_for_documents(client, kb["id"])
    bot = workspace.create_chatbot(model=model, name="Helpdesk", system_prompt="You answer staff questions.",
                                   knowledge_bases=[kb["slug"]], top_k=2)
    return bot, kb


def test_openai_sdk_gets_an_answer_grounded_in_the_knowledge_base_with_citations(workspace):
    bot, kb = chatbot_over_handbook(workspace)
    client = OpenAI(base_url=f"{workspace.server.base_url}/v1", api_key=workspace.create_key())
    reply = client.chat.completions.create(
        model=bot["slug"], messages=[{"role": "user", "content": "Where can staff park?"}]
    )
    answer = reply.choices[0].message.content
    # fake/context repeats its whole prompt: the system prompt carries the retrieved chunk, fenced as context.
    assert answer.startswith("system: You answer staff questions.")
    assert "<context>" in answer and "Staff park in lot B behind the warehouse." in answer
    assert answer.rstrip().endswith("user: Where can staff park?")
    citations = reply.model_extra["citations"]
    assert citations[0]["section"] == "Parking"
    assert citations[0]["file_name"] == "handbook.md" and citations[0]["title"]
    assert "lot B" in citations[0]["text"] and citations[0]["score"] > 0
    assert citations[0]["document_id"]

    # The assistant message keeps its citations.
    with workspace.client() as admin:
        session = reply.model_extra["conversation_id"]
        messages = admin.get(f"/v1/sessions/{session}/messages").json()
        assistant = [m for m in (messages["data"] if isinstance(messages, dict) else messages)
                     if m["role"] == "assistant"][-1]
        assert assistant["meta"]["citations"][0]["section"] == "Parking"


def test_streamed_runs_send_citations_before_the_first_token(workspace):
    bot, _ = chatbot_over_handbook(workspace)
    key = workspace.create_key()
    with httpx.Client(base_url=workspace.server.base_url, headers={"X-API-Key": key}, timeout=30) as client:
        with client.stream("POST", "/v1/chatbot/api/chat/stream",
                           json={"bot_id": bot["slug"], "message": "How many days of paid leave?"}) as response:
            assert response.status_code == 200
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[0]["type"] == "meta"
    assert events[0]["data"]["citations"][0]["section"] == "Holidays"
    assert events[1]["type"] == "token" and events[-1]["type"] == "done"


def test_wayscloud_chat_returns_citations(workspace):
    bot, _ = chatbot_over_handbook(workspace)
    with httpx.Client(base_url=workspace.server.base_url, headers={"X-API-Key": workspace.create_key()},
                      timeout=30) as client:
        response = client.post("/v1/chatbot/api/chat", json={"bot_id": bot["id"], "message": "Where can staff park?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Staff park in lot B" in body["response"]
    assert body["citations"][0]["section"] == "Parking"
    assert body["citations"][0]["title"]


def test_chatbots_without_knowledge_have_no_citations(workspace):
    bot = workspace.create_chatbot(model="fake/context", system_prompt="Plain.")
    client = OpenAI(base_url=f"{workspace.server.base_url}/v1", api_key=workspace.create_key())
    reply = client.chat.completions.create(model=bot["slug"], messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "system: Plain.\nuser: hi"
    assert reply.model_extra["citations"] == []


def test_a_deleted_knowledge_base_is_a_clear_error(workspace):
    bot, kb = chatbot_over_handbook(workspace)
    with workspace.client() as client:
        assert client.delete(f"/v1/knowledge-bases/{kb['id']}").status_code == 204
        response = client.post("/v1/chat/completions", json={
            "model": bot["slug"], "messages": [{"role": "user", "content": "Where can staff park?"}]})
    assert response.status_code == 422
    assert "knowledge base" in response.json()["detail"]
