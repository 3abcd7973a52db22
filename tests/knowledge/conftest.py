"""Fixtures for the knowledge tests: the embeddings mock, document makers, waiting for indexing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from support.embedding_mock import serve_embeddings
from support.provider_mocks import ServedApp


@pytest.fixture(scope="session")
def embeddings_server() -> Iterator[ServedApp]:
    served = serve_embeddings()
    yield served
    served.stop()


@pytest.fixture
def embeddings_mock(embeddings_server: ServedApp) -> ServedApp:
    embeddings_server.state.reset()
    return embeddings_server


def add_embedding_provider(client: httpx.Client, mock: ServedApp, name: str = "emb") -> str:
    response = client.post("/v1/providers", json={
        "name": name, "type": "openai", "base_url": f"{mock.base_url}/v1", "api_key": "sk-embed-secret",
    })
    assert response.status_code == 201, response.text
    return f"{name}/hash-embed-256"


def create_kb(client: httpx.Client, name: str = "Handbook", **fields) -> dict:
    response = client.post("/v1/knowledge-bases", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_documents(client: httpx.Client, kb_id: str, timeout: float = 90.0) -> list[dict]:
    """Polls until no document is queued or indexing; returns the documents."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/knowledge-bases/{kb_id}/documents")
        assert response.status_code == 200, response.text
        documents = response.json()
        if all(d["status"] in ("ready", "error") for d in documents):
            return documents
        if time.monotonic() > deadline:
            raise AssertionError(f"documents still indexing after {timeout}s: {documents}")
        time.sleep(0.1)


def query(client: httpx.Client, kb_id: str, text: str, **fields) -> dict:
    response = client.post(f"/v1/knowledge-bases/{kb_id}/query", json={"query": text, **fields})
    assert response.status_code == 200, response.text
    return response.json()
