"""The `ingest_document` job: stored bytes → blocks → chunks → (vectors) → index.

Idempotent, as the queue requires: it works from the stored bytes, and the
final write replaces the document's chunks in one transaction, so a re-run
after a restart (or a second job for the same bytes) ends in the same state
with no duplicates. A job whose document was deleted, or re-uploaded with
other bytes since (a newer job will handle those), does nothing.

The document's `status` goes queued → indexing → ready | error (with the
reason); `progress` says which stage runs and how far it is (pages parsed,
chunks embedded), flushed to the store every half second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from sqlalchemy import select, update

from headwater.errors import HeadwaterError
from headwater.knowledge.chunking import chunk_blocks
from headwater.knowledge.loaders import load
from headwater.knowledge.state import knowledge_state
from headwater.queue.handlers import JobContext, job_handler
from headwater.services.knowledge import INGEST_JOB
from headwater.store.knowledge_models import Document, DocumentBlob, KnowledgeBase
from headwater.store.models import utcnow

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.5
EMBED_BATCH = 256


class _Progress:
    """Progress reported from a worker thread, written to the store by the event loop."""

    def __init__(self, runtime, document_id: str):
        self.runtime = runtime
        self.document_id = document_id
        self.state: dict[str, Any] = {"stage": "starting"}
        self._written: dict[str, Any] | None = None
        self._last = 0.0

    def set(self, **state: Any) -> None:
        self.state = state

    async def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.state == self._written or (not force and now - self._last < PROGRESS_INTERVAL):
            return
        self._last, self._written = now, dict(self.state)
        async with self.runtime.sessionmaker() as db:
            await db.execute(
                update(Document).where(Document.id == self.document_id).values(progress=dict(self.state))
            )
            await db.commit()

    async def run_with_flushes(self, work):
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.wait({task}, timeout=PROGRESS_INTERVAL)
            await self.flush()
        return task.result()


@job_handler(INGEST_JOB)
async def ingest_document(ctx: JobContext, payload: dict[str, Any]) -> None:
    runtime = ctx.runtime
    document_id = payload["document_id"]
    async with runtime.sessionmaker() as db:
        document = await db.get(Document, document_id)
        if document is None or document.content_hash != payload.get("content_hash"):
            return  # deleted, or replaced by newer bytes that have their own job
        if document.status == "ready" and document.indexed_hash == document.content_hash:
            return  # a re-run after the work was committed
        kb = await db.get(KnowledgeBase, document.knowledge_base_id)
        blob = await db.get(DocumentBlob, document_id)
        if kb is None or blob is None:
            return
        data, kind = blob.content, document.kind or "txt"
        chunk_size, chunk_overlap, embedding_model = kb.chunk_size, kb.chunk_overlap, kb.embedding_model
        document.status, document.error, document.progress = "indexing", None, {"stage": "extracting"}
        await db.commit()

    progress = _Progress(runtime, document_id)
    try:
        await _ingest(runtime, ctx, document_id, payload["content_hash"], kb.id, data, kind,
                      chunk_size, chunk_overlap, embedding_model, progress)
    except asyncio.CancelledError:
        raise
    except HeadwaterError as exc:
        await _mark_error(runtime, document_id, exc.detail)
        raise
    except Exception as exc:
        log.exception("indexing document %s failed", document_id)
        await _mark_error(runtime, document_id, f"internal error while indexing ({exc.__class__.__name__})")
        raise


async def _ingest(
    runtime, ctx: JobContext, document_id: str, content_hash: str, kb_id: str, data: bytes, kind: str,
    chunk_size: int, chunk_overlap: int, embedding_model: str | None, progress: _Progress,
) -> None:
    state = knowledge_state(runtime)

    def on_page(done: int, total: int) -> None:
        progress.set(stage="extracting", done=done, total=total, unit="pages")

    loaded = await progress.run_with_flushes(asyncio.to_thread(load, kind, data, on_page))
    drafts = await asyncio.to_thread(chunk_blocks, loaded.blocks, chunk_size, chunk_overlap)
    if not drafts:
        raise HeadwaterError("no text could be extracted from the document")
    if loaded.page_count:
        progress.set(stage="chunked", chunks=len(drafts), pages=loaded.page_count)

    vectors: np.ndarray | None = None
    if embedding_model and await _vectors_supported(runtime, state):
        async with runtime.sessionmaker() as db:
            config, model = await runtime.provider_service(db).resolve_config(ctx.workspace_id or "", embedding_model)
        embedder = state.embedders.get(config, model)
        parts = []
        texts = [d.embedding_text for d in drafts]
        for start in range(0, len(texts), EMBED_BATCH):
            progress.set(stage="embedding", done=start, total=len(texts), unit="chunks")
            await progress.flush()
            parts.append(await embedder.embed(texts[start:start + EMBED_BATCH]))
        vectors = np.vstack(parts)

    progress.set(stage="indexing", chunks=len(drafts))
    await progress.flush(force=True)
    async with runtime.sessionmaker() as db:
        document = await db.get(Document, document_id)
        if document is None or document.content_hash != content_hash:
            return
        kb = await db.scalar(select(KnowledgeBase).where(KnowledgeBase.id == kb_id))
        if kb is None:
            return
        if vectors is not None:
            if kb.embedding_dim is None:
                kb.embedding_dim = int(vectors.shape[1])
            elif kb.embedding_dim != vectors.shape[1]:
                raise HeadwaterError(
                    f"the embedding model returned {vectors.shape[1]} dimensions; this base holds {kb.embedding_dim}"
                )
        await state.index.replace_chunks(db, kb_id, document_id, drafts, vectors)
        if document.title in (document.file_name, "Untitled") and loaded.title:
            document.title = loaded.title[:500]
        document.status, document.error, document.indexed_hash = "ready", None, content_hash
        document.chunk_count, document.page_count = len(drafts), loaded.page_count
        document.progress = {"stage": "done", "chunks": len(drafts), **(
            {"pages": loaded.page_count} if loaded.page_count else {})}
        document.updated_at = utcnow()
        await db.execute(
            update(KnowledgeBase).where(KnowledgeBase.id == kb_id)
            .values(index_version=KnowledgeBase.index_version + 1, updated_at=utcnow())
        )
        await db.commit()


async def _vectors_supported(runtime, state) -> bool:
    check = getattr(state.index, "check_vectors", None)
    if check is None:
        return state.index.supports_vectors
    async with runtime.sessionmaker() as db:
        return await check(db)


async def _mark_error(runtime, document_id: str, reason: str) -> None:
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(Document).where(Document.id == document_id)
            .values(status="error", error=reason[:2000], progress={"stage": "failed"}, updated_at=utcnow())
        )
        await db.commit()
