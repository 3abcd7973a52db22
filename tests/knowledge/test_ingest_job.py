"""The ingest job is idempotent: a re-run (after a restart, or twice) never duplicates chunks."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

import headwater.knowledge.ingest  # noqa: F401
from headwater.config import Settings
from headwater.knowledge.ingest import ingest_document
from headwater.queue.handlers import JobContext
from headwater.boot import build_runtime
from headwater.services.knowledge import KnowledgeService, NewDocument
from headwater.services.workspaces import DEFAULT_WORKSPACE_ID
from headwater.store.knowledge_models import Chunk, Document


@pytest.fixture
async def runtime(tmp_path):
    runtime = await build_runtime(Settings(data_dir=tmp_path, admin_key="hw_test_admin_key_00000000000000"))
    yield runtime
    await runtime.jobs.close()
    await runtime.engine.dispose()


async def chunk_count(runtime, document_id: str) -> int:
    async with runtime.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(Chunk).where(Chunk.document_id == document_id))


async def test_rerunning_an_interrupted_ingest_replaces_chunks_without_duplicates(runtime):
    text = "\n\n".join(f"Paragraph {n} about the warehouse inventory and its shelves." for n in range(40))
    async with runtime.sessionmaker() as db:
        service = KnowledgeService(runtime, db)
        kb = await service.create_base(DEFAULT_WORKSPACE_ID, name="Jobs", chunk_size=200, chunk_overlap=20)
        document, _ = await service.add_document(kb, NewDocument(data=text.encode(), title="Inventory", kind="txt"))
    await runtime.jobs.drain(timeout=30)
    first = await chunk_count(runtime, document.id)
    assert first > 5

    # As if the process died after indexing began: the queue runs the job again from the start.
    async with runtime.sessionmaker() as db:
        await db.execute(update(Document).where(Document.id == document.id).values(status="indexing",
                                                                                     indexed_hash=None))
        await db.commit()
    context = JobContext(runtime, "job", "ingest_document", 2, DEFAULT_WORKSPACE_ID)
    payload = {"document_id": document.id, "content_hash": document.content_hash}
    await ingest_document(context, payload)
    await ingest_document(context, payload)  # and once more after it finished: nothing changes
    assert await chunk_count(runtime, document.id) == first
    async with runtime.sessionmaker() as db:
        assert (await db.get(Document, document.id)).status == "ready"

    # A job for bytes that were replaced since does nothing (the newer job owns the document).
    await ingest_document(context, {"document_id": document.id, "content_hash": "0" * 64})
    assert await chunk_count(runtime, document.id) == first
