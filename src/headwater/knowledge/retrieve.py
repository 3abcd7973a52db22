"""Retrieval: a question → the best chunks of some knowledge bases, with citations.

Full-text (BM25) always; vectors too when a knowledge base has an embedding
model and the backend can store them; the two rankings are fused by
reciprocal rank (RRF, k=60), which needs no score calibration between them.

`retrieve()` is the one entry point the chatbot kind and the flow engine's
`retrieval` node call; its signature is part of the engine contract.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import InvalidInput, NotFound
from headwater.knowledge.index_base import KbRef
from headwater.knowledge.query_terms import query_terms
from headwater.knowledge.state import knowledge_state
from headwater.providers.base import ProviderError
from headwater.store.knowledge_models import Chunk, Document, KnowledgeBase

if TYPE_CHECKING:
    from headwater.runtime import Runtime

log = logging.getLogger(__name__)
RRF_K = 60
MAX_TOP_K = 50
# Each ranking contributes this many candidates per result wanted, so fusion has room to reorder.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 20


@dataclass(slots=True)
class RetrievalResult:
    text: str
    chunks: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "fulltext"  # fulltext | vector | hybrid
    warnings: list[str] = field(default_factory=list)


async def retrieve(
    runtime: "Runtime", workspace_id: str, knowledge_bases: list[str], query: str, top_k: int,
    *, score_threshold: float | None = None, mode: str | None = None,
) -> RetrievalResult:
    """The `top_k` best chunks of the named knowledge bases (ids or slugs) for `query`.

    `score_threshold`, when given, drops chunks whose cosine similarity to the
    query is lower (full-text relevance when the bases have no vectors).
    `mode` forces "fulltext" or "vector" (benchmarks); default: all there is.
    """
    top_k = max(1, min(int(top_k), MAX_TOP_K))
    if not query.strip() or not knowledge_bases:
        return RetrievalResult(text="")
    async with runtime.sessionmaker() as db:
        kbs = await resolve_knowledge_bases(db, workspace_id, knowledge_bases)
        return await _retrieve(runtime, db, workspace_id, kbs, query, top_k, score_threshold, mode)


async def resolve_knowledge_bases(db: AsyncSession, workspace_id: str, names: list[str]) -> list[KnowledgeBase]:
    wanted = list(dict.fromkeys(n for n in names if n))
    rows = list(await db.scalars(
        select(KnowledgeBase).where(
            KnowledgeBase.workspace_id == workspace_id,
            or_(KnowledgeBase.id.in_(wanted), KnowledgeBase.slug.in_(wanted)),
        )
    ))
    known = {r.id for r in rows} | {r.slug for r in rows}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise NotFound(f"knowledge base '{missing[0]}' not found")
    return rows


async def _retrieve(
    runtime: "Runtime", db: AsyncSession, workspace_id: str, kbs: list[KnowledgeBase], query: str, top_k: int,
    score_threshold: float | None, mode: str | None,
) -> RetrievalResult:
    if mode not in (None, "fulltext", "vector", "hybrid"):
        raise InvalidInput("mode must be fulltext, vector or hybrid")
    state = knowledge_state(runtime)
    index = state.index
    limit = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
    refs = [KbRef(kb.id, kb.index_version) for kb in kbs]
    warnings: list[str] = []

    fulltext: list[tuple[int, float]] = []
    if mode != "vector":
        fulltext = await index.search_fulltext(db, refs, query_terms(query), limit)

    vector_hits: list[tuple[int, float]] = []
    similarity: dict[int, float] = {}
    query_vectors: list[tuple[list[KbRef], np.ndarray]] = []
    if mode != "fulltext":
        for model, group in _by_embedding_model(kbs).items():
            if not index.supports_vectors:
                warnings.append("this database has no vector index (pgvector missing): full-text only")
                break
            try:
                config, model_name = await runtime.provider_service(db).resolve_config(workspace_id, model)
                vector = await state.embedders.get(config, model_name).embed_one(query)
            except (ProviderError, InvalidInput) as exc:
                # An answer from full-text beats no answer while the embeddings provider is down.
                log.warning("query embedding with %s failed: %s", model, exc.detail)
                warnings.append(f"embedding the query with {model} failed ({exc.detail}); used full-text only")
                continue
            group_refs = [KbRef(kb.id, kb.index_version) for kb in group]
            query_vectors.append((group_refs, vector))
            vector_hits.extend(await index.search_vectors(db, group_refs, vector, limit))
        vector_hits.sort(key=lambda hit: hit[1], reverse=True)
        vector_hits = vector_hits[:limit]
        similarity.update(dict(vector_hits))

    rankings = [r for r in (fulltext, vector_hits) if r]
    used = "hybrid" if len(rankings) == 2 else ("vector" if vector_hits else "fulltext")
    fused = reciprocal_rank_fusion(rankings) if len(rankings) > 1 else (rankings[0] if rankings else [])

    if score_threshold is not None and fused:
        if query_vectors:
            unknown = [cid for cid, _ in fused if cid not in similarity]
            for group_refs, vector in query_vectors:
                if unknown:
                    similarity.update(await index.similarities(db, group_refs, vector, unknown))
            fused = [(cid, s) for cid, s in fused if similarity.get(cid, -1.0) >= score_threshold]
        else:
            fused = [(cid, s) for cid, s in fused if s >= score_threshold]
    fused = fused[:top_k]
    chunks = await _chunk_details(db, fused, dict(fulltext), similarity, used)
    return RetrievalResult(
        text=format_context(chunks), chunks=chunks, citations=[citation(c) for c in chunks],
        mode=used, warnings=warnings,
    )


def reciprocal_rank_fusion(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _by_embedding_model(kbs: list[KnowledgeBase]) -> dict[str, list[KnowledgeBase]]:
    groups: dict[str, list[KnowledgeBase]] = {}
    for kb in kbs:
        if kb.embedding_model:
            groups.setdefault(kb.embedding_model, []).append(kb)
    return groups


async def _chunk_details(
    db: AsyncSession, ranked: list[tuple[int, float]], fulltext: dict[int, float],
    similarity: dict[int, float], mode: str,
) -> list[dict[str, Any]]:
    if not ranked:
        return []
    rows = await db.execute(
        select(Chunk, Document)
        .join(Document, Document.id == Chunk.document_id)
        .where(Chunk.id.in_([cid for cid, _ in ranked]))
    )
    by_id = {chunk.id: (chunk, document) for chunk, document in rows}
    out = []
    for chunk_id, score in ranked:
        if chunk_id not in by_id:  # deleted between search and fetch
            continue
        chunk, document = by_id[chunk_id]
        out.append({
            "chunk_id": chunk.id, "document_id": document.id, "knowledge_base_id": chunk.knowledge_base_id,
            "title": document.title, "file_name": document.file_name, "url": document.source_url,
            "page": chunk.page, "section": chunk.section, "text": chunk.text, "score": round(score, 6),
            "fulltext_score": _rounded(fulltext.get(chunk_id)), "vector_score": _rounded(similarity.get(chunk_id)),
            "mode": mode,
        })
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def citation(chunk: dict[str, Any]) -> dict[str, Any]:
    keys = ("document_id", "knowledge_base_id", "chunk_id", "title", "url", "file_name", "page", "section",
            "text", "score")
    return {key: chunk[key] for key in keys}


def format_context(chunks: list[dict[str, Any]]) -> str:
    """The chunks as a prompt block: numbered so a model can cite [1], [2]..."""
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        where = [chunk["title"]]
        if chunk.get("section"):
            where.append(chunk["section"])
        if chunk.get("page") is not None:
            where.append(f"page {chunk['page']}")
        parts.append(f"[{number}] {' — '.join(w for w in where if w)}\n{chunk['text']}")
    return "\n\n".join(parts)
