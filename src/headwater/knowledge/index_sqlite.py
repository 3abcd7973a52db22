"""SQLite backend: FTS5 (kept in step with kb_chunks by triggers) + the embedded numpy vector index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import bindparam, insert, table, column, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Integer, LargeBinary, String

from headwater.knowledge.index_base import ChunkIndex, KbRef
from headwater.knowledge.query_terms import fts5_match
from headwater.knowledge.vectors import EmbeddedVectorIndex, to_blob

_vectors_table = table(
    "kb_chunk_vectors",
    column("chunk_id", Integer), column("knowledge_base_id", String), column("embedding", LargeBinary),
)
# bm25 column weights: chunk text, then its section heading.
_FTS_SEARCH = text(
    "SELECT c.id, -bm25(kb_chunks_fts, 1.0, 0.5) AS score "
    "FROM kb_chunks_fts JOIN kb_chunks c ON c.id = kb_chunks_fts.rowid "
    "WHERE kb_chunks_fts MATCH :match AND c.knowledge_base_id IN :kbs "
    "ORDER BY bm25(kb_chunks_fts, 1.0, 0.5) LIMIT :limit"
).bindparams(bindparam("kbs", expanding=True))


class SqliteChunkIndex(ChunkIndex):
    def __init__(self, vector_dir: Path):
        self.vectors = EmbeddedVectorIndex(vector_dir)

    async def write_vectors(self, db: AsyncSession, kb_id: str, chunk_ids: list[int], vectors: np.ndarray) -> None:
        await db.execute(
            insert(_vectors_table),
            [{"chunk_id": cid, "knowledge_base_id": kb_id, "embedding": to_blob(v)}
             for cid, v in zip(chunk_ids, vectors)],
        )

    async def search_fulltext(
        self, db: AsyncSession, kbs: list[KbRef], terms: list[str], limit: int
    ) -> list[tuple[int, float]]:
        if not terms or not kbs:
            return []
        rows = await db.execute(_FTS_SEARCH, {"match": fts5_match(terms), "kbs": [k.id for k in kbs], "limit": limit})
        return [(int(r[0]), float(r[1])) for r in rows]

    async def search_vectors(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        found: list[tuple[int, float]] = []
        for kb in kbs:
            found.extend(await self.vectors.search(db, kb.id, kb.index_version, query, limit))
        found.sort(key=lambda item: item[1], reverse=True)
        return found[:limit]

    async def similarities(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, chunk_ids: list[int]
    ) -> dict[int, float]:
        out: dict[int, float] = {}
        for kb in kbs:
            out.update(await self.vectors.similarities(db, kb.id, kb.index_version, query, sorted(chunk_ids)))
        return out

    def forget(self, kb_id: str) -> None:
        self.vectors.forget(kb_id)
