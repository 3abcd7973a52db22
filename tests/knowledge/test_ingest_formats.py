"""Every supported file type goes in through the real upload route and comes back as the top citation."""

from __future__ import annotations

import pytest
from knowledge.conftest import add_embedding_provider, create_kb, query, wait_for_documents
from knowledge.documents import samples


def upload(client, kb_id: str, files: list[tuple[str, bytes, str]]):
    return client.post(
        f"/v1/knowledge-bases/{kb_id}/documents",
        files=[("files", (name, data, mime)) for name, data, mime in files],
    )


@pytest.mark.parametrize("retrieval", ["fulltext", "hybrid"])
def test_every_type_is_ingested_and_its_passage_is_the_top_citation(workspace, embeddings_mock, retrieval):
    with workspace.client() as client:
        fields = {"chunk_size": 300, "chunk_overlap": 50}
        if retrieval == "hybrid":
            fields["embedding_model"] = add_embedding_provider(client, embeddings_mock)
        kb = create_kb(client, "All formats", **fields)
        items = samples()
        response = upload(client, kb["id"], [(s.file_name, s.data, "application/octet-stream") for s in items])
        assert response.status_code == 202, response.text
        accepted = response.json()["documents"]
        assert [d["outcome"] for d in accepted] == ["added"] * len(items)
        assert all(d["status"] == "queued" for d in accepted)

        documents = {d["file_name"]: d for d in wait_for_documents(client, kb["id"])}
        for sample in items:
            document = documents[sample.file_name]
            assert document["status"] == "ready", document
            assert document["kind"] == sample.kind
            assert document["chunk_count"] >= 1
        assert documents["safety.pdf"]["page_count"] == 3
        assert documents["update.pptx"]["page_count"] == 3

        for sample in items:
            result = query(client, kb["id"], sample.question, top_k=3)
            assert result["mode"] == retrieval
            top = result["results"][0]
            assert top["document_id"] == documents[sample.file_name]["id"], (sample.file_name, result["results"])
            assert sample.needle in top["text"]
            assert top["file_name"] == sample.file_name
            if sample.page is not None:
                assert top["page"] == sample.page
            if sample.section is not None:
                assert top["section"] == sample.section
            assert top["score"] > 0
        if retrieval == "hybrid":
            assert embeddings_mock.state.authorizations[0] == "Bearer sk-embed-secret"
            assert {r["model"] for r in embeddings_mock.state.requests} == {"hash-embed-256"}


def test_html_scripts_and_navigation_are_not_indexed(workspace):
    with workspace.client() as client:
        kb = create_kb(client)
        html = next(s for s in samples() if s.kind == "html")
        assert upload(client, kb["id"], [(html.file_name, html.data, "text/html")]).status_code == 202
        wait_for_documents(client, kb["id"])
        assert query(client, kb["id"], "secret never indexed")["results"] == []


def test_type_comes_from_the_content_when_the_name_says_nothing(workspace):
    pdf = next(s for s in samples() if s.kind == "pdf")
    with workspace.client() as client:
        kb = create_kb(client)
        response = upload(client, kb["id"], [("scan-0042", pdf.data, "application/octet-stream")])
        assert response.status_code == 202, response.text
        assert response.json()["documents"][0]["kind"] == "pdf"
        assert wait_for_documents(client, kb["id"])[0]["status"] == "ready"
        assert query(client, kb["id"], pdf.question)["results"][0]["page"] == 2


@pytest.mark.parametrize(("name", "content", "mime"), [
    ("notes.txt", "pdf", "text/plain"),           # a PDF named as text
    ("report.pdf", b"just some words", "application/pdf"),  # text named as a PDF
    ("slides.pptx", "docx", "application/octet-stream"),    # a DOCX named as a PPTX
    ("archive.zip", b"PK\x03\x04rest", "application/zip"),  # an unsupported type
    ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    ("data.json", b"{not json", "application/json"),
])
def test_type_mismatches_are_415_and_store_nothing(workspace, name, content, mime):
    by_kind = {s.kind: s.data for s in samples()}
    data = by_kind[content] if isinstance(content, str) else content
    with workspace.client() as client:
        kb = create_kb(client)
        good = next(s for s in samples() if s.kind == "txt")
        response = upload(client, kb["id"], [(good.file_name, good.data, "text/plain"), (name, data, mime)])
        assert response.status_code == 415, response.text
        assert "detail" in response.json()
        # The good file of the same request was not stored either.
        assert client.get(f"/v1/knowledge-bases/{kb['id']}/documents").json() == []
