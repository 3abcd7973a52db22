"""The knowledge base API: lifecycle, re-indexing, deletion, limits, isolation and errors."""

from __future__ import annotations

import pytest
from knowledge.conftest import add_embedding_provider, create_kb, query, wait_for_documents
from knowledge.documents import make_pdf, zip_bomb_docx

HANDBOOK = "# Parking\n\nStaff park in lot B behind the warehouse.\n\n# Holidays\n\nEveryone gets 25 days of paid leave."


def add_text(client, kb_id: str, text: str, title: str = "Handbook", **fields):
    response = client.post(f"/v1/knowledge-bases/{kb_id}/documents", json={"text": text, "title": title, **fields})
    assert response.status_code == 202, response.text
    return response.json()["documents"][0]


def test_knowledge_base_lifecycle(workspace):
    with workspace.client() as client:
        kb = create_kb(client, "Employee Handbook", chunk_size=500, chunk_overlap=50)
        assert kb["slug"] == "employee-handbook"
        assert (kb["chunk_size"], kb["chunk_overlap"], kb["embedding_model"]) == (500, 50, None)
        assert create_kb(client, "Employee Handbook")["slug"] == "employee-handbook-2"
        assert client.post("/v1/knowledge-bases", json={"name": "x", "slug": "employee-handbook"}).status_code == 409
        assert client.post("/v1/knowledge-bases", json={"name": "x", "chunk_size": 200, "chunk_overlap": 300}).status_code == 422
        assert client.post("/v1/knowledge-bases", json={"name": "x", "bogus": 1}).status_code == 422

        document = add_text(client, kb["id"], HANDBOOK, format="markdown", source_url="https://intranet.example/hb")
        assert document["status"] == "queued" and document["outcome"] == "added"
        [ready] = wait_for_documents(client, kb["id"])
        assert ready["status"] == "ready" and ready["chunk_count"] == 2 and ready["progress"]["stage"] == "done"
        assert client.get(f"/v1/knowledge-bases/{kb['slug']}").json()["document_count"] == 1
        assert client.get(f"/v1/knowledge-bases/{kb['id']}/documents/{ready['id']}").json()["id"] == ready["id"]

        top = query(client, kb["slug"], "where do staff park?")["results"][0]
        assert top["section"] == "Parking" and "lot B" in top["text"]
        assert top["url"] == "https://intranet.example/hb" and top["title"] == "Handbook"

        assert client.delete(f"/v1/knowledge-bases/{kb['id']}").status_code == 204
        assert client.get(f"/v1/knowledge-bases/{kb['id']}").status_code == 404
        assert client.post(f"/v1/knowledge-bases/{kb['id']}/query", json={"query": "park"}).status_code == 404


def test_same_content_is_skipped_and_changed_content_replaces_its_chunks(workspace):
    with workspace.client() as client:
        kb = create_kb(client)
        first = add_text(client, kb["id"], HANDBOOK, format="markdown")
        wait_for_documents(client, kb["id"])
        again = add_text(client, kb["id"], HANDBOOK, format="markdown")
        assert (again["id"], again["outcome"]) == (first["id"], "skipped")

        changed = HANDBOOK.replace("lot B behind the warehouse", "the new garage on Elm Street")
        updated = add_text(client, kb["id"], changed, format="markdown")
        assert (updated["id"], updated["outcome"]) == (first["id"], "updated")
        [document] = wait_for_documents(client, kb["id"])
        assert document["chunk_count"] == 2
        results = query(client, kb["id"], "park garage warehouse paid leave", top_k=10)["results"]
        texts = [r["text"] for r in results]
        assert any("Elm Street" in t for t in texts)
        assert not any("warehouse" in t for t in texts)
        assert len(results) == 2  # the old chunks are gone, not duplicated


def test_deleting_a_document_removes_its_chunks(workspace):
    with workspace.client() as client:
        kb = create_kb(client)
        keep = add_text(client, kb["id"], "The canteen closes at three.", title="Canteen")
        drop = add_text(client, kb["id"], "The canteen menu changes every Monday.", title="Menu")
        wait_for_documents(client, kb["id"])
        assert len(query(client, kb["id"], "canteen")["results"]) == 2
        assert client.delete(f"/v1/knowledge-bases/{kb['id']}/documents/{drop['id']}").status_code == 204
        assert client.delete(f"/v1/knowledge-bases/{kb['id']}/documents/{drop['id']}").status_code == 404
        results = query(client, kb["id"], "canteen")["results"]
        assert [r["document_id"] for r in results] == [keep["id"]]


def test_a_long_pdf_is_indexed_in_the_background_with_progress(workspace):
    pages = [[f"Page {n} covers topic number {n} of the maintenance manual in detail."] for n in range(1, 121)]
    pages[86] = ["The pressure valve of pump seven is replaced every eighteen months."]
    with workspace.client() as client:
        kb = create_kb(client)
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("manual.pdf", make_pdf(pages), "application/pdf")})
        assert response.status_code == 202
        assert response.json()["documents"][0]["status"] == "queued"  # the request did not wait for indexing
        [document] = wait_for_documents(client, kb["id"])
        assert document["status"] == "ready"
        assert document["page_count"] == 120 and document["progress"] == {"stage": "done", "chunks": 120, "pages": 120}
        top = query(client, kb["id"], "how often is the pump seven pressure valve replaced")["results"][0]
        assert top["page"] == 87 and top["file_name"] == "manual.pdf"


def test_unreadable_documents_end_in_error_with_the_reason(workspace):
    with workspace.client() as client:
        kb = create_kb(client)
        broken = b"%PDF-1.7\n" + b"\x00garbage" * 100
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("broken.pdf", broken, "application/pdf")})
        assert response.status_code == 202
        [document] = wait_for_documents(client, kb["id"])
        assert document["status"] == "error"
        assert "PDF" in document["error"] or "pdf" in document["error"]


def test_upload_limits(workspace, server):
    with workspace.client() as client:
        kb = create_kb(client)
        too_big = b"a" * (server_max_body(server) + 1)
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("big.txt", too_big, "text/plain")})
        assert response.status_code == 413
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("bomb.docx", zip_bomb_docx(), "application/octet-stream")})
        assert response.status_code == 413, response.text
        assert "expands" in response.json()["detail"]
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents",
                               files={"files": ("empty.txt", b"   ", "text/plain")})
        assert response.status_code == 422
        assert client.get(f"/v1/knowledge-bases/{kb['id']}/documents").json() == []


def server_max_body(server) -> int:
    return int(server.env().get("HEADWATER_MAX_BODY_BYTES", 10 * 1024 * 1024))


@pytest.mark.parametrize(("body", "status"), [
    ({"url": "http://127.0.0.1:8000/private"}, 422),
    ({"url": "http://169.254.169.254/latest/meta-data/"}, 422),
    ({"url": "file:///etc/passwd"}, 422),
    ({"url": "https://example.com/a", "text": "both"}, 422),
    ({}, 422),
])
def test_url_documents_go_through_the_egress_guard(workspace, body, status):
    with workspace.client() as client:
        kb = create_kb(client)
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents", json=body)
        assert response.status_code == status, response.text
        assert client.get(f"/v1/knowledge-bases/{kb['id']}/documents").json() == []


def test_other_workspaces_and_scopes(workspace, server):
    other = server.new_workspace("other")
    with workspace.client() as client:
        kb = create_kb(client)
        add_text(client, kb["id"], "Secret plans for the Apollo merger.")
        wait_for_documents(client, kb["id"])
    with other.client() as stranger:
        for method, path in [("GET", ""), ("GET", "/documents"), ("DELETE", ""), ("POST", "/query")]:
            response = stranger.request(method, f"/v1/knowledge-bases/{kb['id']}{path}",
                                        json={"query": "apollo"} if method == "POST" else None)
            assert response.status_code == 404, (method, path)
        assert stranger.get("/v1/knowledge-bases").json() == []
    knowledge_key = workspace.create_key("k", scopes=["knowledge"])
    chatbot_key = workspace.create_key("c", scopes=["chatbot"])
    with workspace.client(knowledge_key) as client:
        assert client.post(f"/v1/knowledge-bases/{kb['id']}/query", json={"query": "apollo"}).status_code == 200
        assert client.post(f"/v1/knowledge-bases/{kb['id']}/documents", json={"text": "more"}).status_code == 202
        assert client.post("/v1/knowledge-bases", json={"name": "new"}).status_code == 403
        assert client.delete(f"/v1/knowledge-bases/{kb['id']}").status_code == 403
    with workspace.client(chatbot_key) as client:
        assert client.post(f"/v1/knowledge-bases/{kb['id']}/query", json={"query": "apollo"}).status_code == 403
    with server.client() as anonymous:
        assert anonymous.get("/v1/knowledge-bases").status_code == 401


def test_hybrid_retrieval_threshold_and_embedding_outage(workspace, embeddings_mock):
    with workspace.client() as client:
        model = add_embedding_provider(client, embeddings_mock)
        kb = create_kb(client, embedding_model=model)
        assert kb["embedding_model"] == model
        add_text(client, kb["id"], HANDBOOK, format="markdown")
        [document] = wait_for_documents(client, kb["id"])
        assert document["status"] == "ready"
        assert client.get(f"/v1/knowledge-bases/{kb['id']}").json()["embedding_dim"] == 256

        hybrid = query(client, kb["id"], "paid leave days")
        assert hybrid["mode"] == "hybrid" and "paid leave" in hybrid["results"][0]["text"]
        assert hybrid["results"][0]["vector_score"] > hybrid["results"][1]["vector_score"]
        vector = query(client, kb["id"], "paid leave days", mode="vector")
        assert vector["mode"] == "vector" and "paid leave" in vector["results"][0]["text"]
        strict = query(client, kb["id"], "paid leave days", score_threshold=0.5)
        assert [r["section"] for r in strict["results"]] == ["Holidays"]

        embeddings_mock.state.fail_next = 10  # the SDK retries; every try fails
        degraded = query(client, kb["id"], "paid leave days")
        assert degraded["mode"] == "fulltext" and degraded["warnings"]
        assert "paid leave" in degraded["results"][0]["text"]
        embeddings_mock.state.fail_next = 0


def test_unknown_embedding_models_are_refused_when_the_base_is_created(workspace):
    with workspace.client() as client:
        response = client.post("/v1/knowledge-bases", json={"name": "x", "embedding_model": "nobody/model"})
        assert response.status_code == 422
        assert "nobody" in response.json()["detail"]
