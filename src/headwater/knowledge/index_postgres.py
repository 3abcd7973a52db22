"""PostgreSQL backend: a generated tsvector column (GIN) + pgvector, when the extension is there.

Without pgvector (`kb_chunk_vectors` absent) the backend still indexes and
searches full-text, and says so once in the log; knowledge bases with an
embedding model then retrieve by full-text alone.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.knowledge.index_base import ChunkIndex, KbRef
from headwater.knowledge.query_terms import tsquery_text

log = logging.getLogger(__name__)

_FTS_SEARCH = text(
    "SELECT c.id, ts_rank(c.search_vector, q, 1) AS score "
    "FROM kb_chunks c, to_tsquery('english', :query) q "
    "WHERE c.knowledge_base_id IN :kbs AND c.search_vector @@ q "
    "ORDER BY score DESC, c.id LIMIT :limit"
).bindparams(bindparam("kbs", expanding=True))
_VECTOR_SEARCH = text(
    "SELECT chunk_id, 1 - (embedding <=> CAST(:query AS vector)) AS score FROM kb_chunk_vectors "
    "WHERE knowledge_base_id IN :kbs ORDER BY embedding <=> CAST(:query AS vector) LIMIT :limit"
).bindparams(bindparam("kbs", expanding=True))
_SIMILARITIES = text(
    "SELECT chunk_id, 1 - (embedding <=> CAST(:query AS vector)) FROM kb_chunk_vectors "
    "WHERE chunk_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_INSERT_VECTOR = text(
    "INSERT INTO kb_chunk_vectors (chunk_id, knowledge_base_id, embedding) VALUES (:chunk_id, :kb, CAST(:v AS vector))"
)


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


class PostgresChunkIndex(ChunkIndex):
    def __init__(self) -> None:
        self.supports_vectors = True
        self._checked = False

    async def check_vectors(self, db: AsyncSession) -> bool:
        if not self._checked:
            found = await db.scalar(text("SELECT to_regclass('kb_chunk_vectors') IS NOT NULL"))
            self.supports_vectors = bool(found)
            self._checked = True
            if not self.supports_vectors:
                log.warning("pgvector is not installed: knowledge bases search full-text only on this database")
        return self.supports_vectors

    async def replace_chunks(self, db, kb_id, document_id, drafts, vectors) -> None:
        await self.check_vectors(db)
        await super().replace_chunks(db, kb_id, document_id, drafts, vectors)

    async def write_vectors(self, db: AsyncSession, kb_id: str, chunk_ids: list[int], vectors: np.ndarray) -> None:
        await db.execute(
            _INSERT_VECTOR,
            [{"chunk_id": cid, "kb": kb_id, "v": vector_literal(v)} for cid, v in zip(chunk_ids, vectors)],
        )

    async def search_fulltext(
        self, db: AsyncSession, kbs: list[KbRef], terms: list[str], limit: int
    ) -> list[tuple[int, float]]:
        if not terms or not kbs:
            return []
        rows = await db.execute(_FTS_SEARCH, {"query": tsquery_text(terms), "kbs": [k.id for k in kbs], "limit": limit})
        return [(int(r[0]), float(r[1])) for r in rows]

    async def search_vectors(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        if not kbs or not await self.check_vectors(db):
            return []
        rows = await db.execute(
            _VECTOR_SEARCH, {"query": vector_literal(query), "kbs": [k.id for k in kbs], "limit": limit}
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    async def similarities(
        self, db: AsyncSession, kbs: list[KbRef], query: np.ndarray, chunk_ids: list[int]
    ) -> dict[int, float]:
        if not chunk_ids or not await self.check_vectors(db):
            return {}
        rows = await db.execute(_SIMILARITIES, {"query": vector_literal(query), "ids": chunk_ids})
        return {int(r[0]): float(r[1]) for r in rows}
