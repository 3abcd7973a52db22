"""The contract of a chunk index backend (SQLite embedded, PostgreSQL scale-out).

Writing replaces a document's chunks in the caller's transaction (the old
rows, their full-text entries and vectors go; the new ones come), so a
re-indexed document never has duplicates and a failed re-index leaves the
old chunks in place. Searches return (chunk id, score) best first, within the
given knowledge bases only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.knowledge.chunking import ChunkDraft
from headwater.store.knowledge_models import Chunk

INSERT_BATCH = 500


@dataclass(slots=True)
class KbRef:
    """What a search needs of a knowledge base."""

    id: str
    index_version: int


class ChunkIndex(ABC):
    #: Whether vectors can be stored and searched on this backend (pgvector may be missing).
    supports_vectors: bool = True

    async def replace_chunks(
        self, db: AsyncSession, kb_id: str, document_id: str, drafts: list[ChunkDraft],
        vectors: np.ndarray | None,
    ) -> None:
        await db.execute(delete(Chunk).where(Chunk.document_id == document_id))
        ids: list[int] = []
        for start in range(0, len(drafts), INSERT_BATCH):
            batch = drafts[start:start + INSERT_BATCH]
            result = await db.execute(
                insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
                [
                    {"knowledge_base_id": kb_id, "document_id": document_id, "ordinal": d.ordinal,
                     "text": d.text, "page": d.page, "section": d.section}
                    for d in batch
                ],
            )
            ids.extend(result.scalars().all())
        if vectors is not None and self.supports_vectors and ids:
            await self.write_vectors(db, kb_id, ids, vectors)

    @abstractmethod
    async def write_vectors(self, db: AsyncSession, kb_id: str, chunk_ids: list[int], vectors: np.ndarray) -> None:
        """Store one normalised vector per chunk id."""

    @abstractmethod
    async def search_fulltext(
        self, db: AsyncSession, kbs: list[KbRef], terms: list[str], limit: int
    ) -> list[tuple[int, float]]:
        """BM25-like relevance, higher is better."""

    @abstractmethod
    async def search_vectors(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        """Cosine similarity, higher is better."""

    @abstractmethod
    async def similarities(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, chunk_ids: list[int]
    ) -> dict[int, float]:
        """Cosine similarity of the given chunks to the query (for score thresholds)."""

    def forget(self, kb_id: str) -> None:
        """Drop any cached state of a deleted knowledge base."""
