"""An app with a knowledge base: its citations reach WAYSCloud `citations` and Flowise `sourceDocuments`.

The same for a chatbot (which retrieves before its model call) and a chatflow (whose
retrieval node runs mid-way, before the reply starts).
"""

from __future__ import annotations

import json
import time

import pytest
from dialect_support import create_chatflow, sse_data
from flowise import Flowise, PredictionData

PRICING = "Our prices start at 10 euros per month for the basic plan."


@pytest.fixture(params=["chatbot", "chatflow"])
def pricing_bot(request, workspace) -> dict:
    """An app that answers from the pricing knowledge base: a chatbot, or a chatflow with a retrieval node."""
    with workspace.client() as c:
        kb = c.post("/v1/knowledge-bases", json={"name": "Pricing"}).json()
        added = c.post(f"/v1/knowledge-bases/{kb['id']}/documents", json={
            "text": PRICING, "title": "Pricing", "source_url": "https://example.com/pricing",
        })
        assert added.status_code in (200, 201, 202), added.text
        deadline = time.monotonic() + 60
        while any(d["status"] in ("queued", "indexing") for d in c.get(f"/v1/knowledge-bases/{kb['id']}/documents").json()):
            assert time.monotonic() < deadline, "the document was not indexed in time"
            time.sleep(0.1)
    if request.param == "chatbot":
        return workspace.create_chatbot(model="fake/echo", knowledge_bases=[kb["id"]])
    return create_chatflow(
        workspace,
        {"id": "search", "type": "retrieval", "knowledge_bases": [kb["id"]]},
        {"id": "gen", "type": "llm", "model": "fake/echo"},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
    )


def test_wayscloud_sends_citations_in_the_reply_and_first_in_the_stream(workspace, pricing_bot):
    question = {"bot_id": pricing_bot["slug"], "message": "What are your prices?"}
    with workspace.client() as c:
        reply = c.post("/v1/chatbot/api/chat", json=question).json()
        with c.stream("POST", "/v1/chatbot/api/chat/stream", json=question) as response:
            events = sse_data(response)
    assert reply["citations"] and reply["citations"][0]["title"] == "Pricing"
    assert reply["citations"][0]["url"] == "https://example.com/pricing"
    assert events[0]["type"] == "meta" and events[0]["data"]["citations"] == reply["citations"]
    assert events[-1] == {"type": "done"}


def test_flowise_returns_source_documents_when_asked(workspace, server, pricing_bot):
    sdk = Flowise(server.base_url, workspace.admin_key)
    asked = {"sessionId": "prices", "returnSourceDocuments": True}
    (reply,) = sdk.create_prediction(PredictionData(chatflowId=pricing_bot["id"], question="What are your prices?",
                                                    overrideConfig=asked))
    (document,) = reply["sourceDocuments"]
    assert PRICING in document["pageContent"] and document["metadata"]["title"] == "Pricing"
    (unasked,) = sdk.create_prediction(PredictionData(chatflowId=pricing_bot["id"], question="What are your prices?"))
    assert "sourceDocuments" not in unasked
    events = [json.loads(chunk) for chunk in sdk.create_prediction(PredictionData(
        chatflowId=pricing_bot["id"], question="What are your prices?", overrideConfig=asked, streaming=True))]
    names = [e["event"] for e in events]
    assert names[-3:] == ["sourceDocuments", "metadata", "end"]
    assert events[-3]["data"] == reply["sourceDocuments"]
    with workspace.client() as c:
        stored = c.get(f"/api/v1/chatmessage/{pricing_bot['id']}", params={"sessionId": "prices"}).json()
    assert [m["sourceDocuments"] for m in stored if m["role"] == "apiMessage"] == [reply["sourceDocuments"]] * 2
