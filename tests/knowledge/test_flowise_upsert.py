"""Flowise's vector upsert route feeds the app's knowledge base; predictions then cite it."""

from __future__ import annotations

import requests
from knowledge.conftest import create_kb, query, wait_for_documents

POLICY_V1 = b"Remote work is allowed two days per week with manager approval."
POLICY_V2 = b"Remote work is allowed three days per week without approval."


def upsert_files(workspace, key: str, app_id: str, files: list[tuple[str, bytes]], **form):
    # `requests` exactly as the seed's example does it: files= plus data= form fields.
    return requests.post(
        f"{workspace.server.base_url}/api/v1/vector/upsert/{app_id}",
        files=[("files", (name, data)) for name, data in files], data=form,
        headers={"Authorization": f"Bearer {key}"}, timeout=30,
    )


def test_upserting_into_an_app_without_a_knowledge_base_creates_and_attaches_one(workspace):
    bot = workspace.create_chatbot(model="fake/context", name="Policy bot")
    key = workspace.create_key("upsert", scopes=["knowledge"])
    response = upsert_files(workspace, key, bot["id"], [("remote.txt", POLICY_V1)], returnSourceDocuments="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("numAdded", "numUpdated", "numSkipped", "numDeleted")} == {
        "numAdded": 1, "numUpdated": 0, "numSkipped": 0, "numDeleted": 0}

    with workspace.client() as client:
        app = client.get(f"/v1/apps/{bot['id']}").json()
        assert app["version"] == bot["version"] + 1
        assert app["config"]["knowledge_bases"] == [body["knowledgeBaseId"]]
        assert client.get(f"/v1/knowledge-bases/{body['knowledgeBaseId']}").json()["name"] == "Policy bot"
        wait_for_documents(client, body["knowledgeBaseId"])

    # Same file again: skipped. Changed file: updated in place. Another file: added.
    again = upsert_files(workspace, key, bot["id"], [("remote.txt", POLICY_V1)]).json()
    assert (again["numAdded"], again["numSkipped"]) == (0, 1)
    changed = upsert_files(workspace, key, bot["id"], [("remote.txt", POLICY_V2), ("travel.txt", b"Book trains.")]).json()
    assert (changed["numAdded"], changed["numUpdated"], changed["numSkipped"]) == (1, 1, 0)
    assert changed["knowledgeBaseId"] == body["knowledgeBaseId"]
    with workspace.client() as client:
        documents = wait_for_documents(client, body["knowledgeBaseId"])
        assert sorted(d["file_name"] for d in documents) == ["remote.txt", "travel.txt"]
        results = query(client, body["knowledgeBaseId"], "remote work days per week approval")["results"]
        assert [r["text"] for r in results if "Remote" in r["text"]] == [POLICY_V2.decode()]

    # The prediction route now answers from it and returns the source documents.
    with workspace.client(workspace.create_key()) as client:
        prediction = client.post(f"/api/v1/prediction/{bot['id']}", json={
            "question": "How many remote work days are allowed?", "overrideConfig": {"returnSourceDocuments": True}})
    assert prediction.status_code == 200, prediction.text
    assert "three days per week" in prediction.json()["text"]
    assert prediction.json()["sourceDocuments"][0]["pageContent"] == POLICY_V2.decode()


def test_json_upserts_and_full_cleanup(workspace):
    with workspace.client() as client:
        kb = create_kb(client, "Notes")
    bot = workspace.create_chatbot(model="fake/echo", knowledge_bases=[kb["id"]])
    headers = {"Authorization": f"Bearer {workspace.admin_key}"}
    url = f"{workspace.server.base_url}/api/v1/vector/upsert/{bot['id']}"
    first = requests.post(url, json={"overrideConfig": {"text": "Alpha note", "title": "alpha"}}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["numAdded"] == 1 and first.json()["knowledgeBaseId"] == kb["id"]
    requests.post(url, json={"text": "Beta note", "title": "beta"}, headers=headers).raise_for_status()
    cleaned = requests.post(url, json={"text": "Alpha note", "title": "alpha", "cleanup": "full"}, headers=headers)
    assert cleaned.json()["numSkipped"] == 1 and cleaned.json()["numDeleted"] == 1
    with workspace.client() as client:
        assert [d["title"] for d in wait_for_documents(client, kb["id"])] == ["alpha"]


def test_upsert_needs_the_knowledge_scope_and_stays_in_the_workspace(workspace, server):
    bot = workspace.create_chatbot(model="fake/echo")
    chatbot_key = workspace.create_key("chat", scopes=["chatbot"])
    assert upsert_files(workspace, chatbot_key, bot["id"], [("a.txt", b"text")]).status_code == 403
    other = server.new_workspace("other")
    assert upsert_files(workspace, other.admin_key, bot["id"], [("a.txt", b"text")]).status_code == 404
    response = requests.post(f"{workspace.server.base_url}/api/v1/vector/upsert/{bot['id']}",
                             files={"files": ("a.txt", b"text")}, timeout=30)
    assert response.status_code == 401
    bad = upsert_files(workspace, workspace.admin_key, bot["id"], [("a.exe", b"MZ\x90\x00\x03")])
    assert bad.status_code == 415
    empty = requests.post(f"{workspace.server.base_url}/api/v1/vector/upsert/{bot['id']}", json={},
                          headers={"Authorization": f"Bearer {workspace.admin_key}"}, timeout=30)
    assert empty.status_code == 422
