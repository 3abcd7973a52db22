"""Knowledge bases, their documents and the chunks the retriever searches.

Full-text and vector indexes are not modelled here: they are backend-specific
(SQLite FTS5 + an embedded vector index, PostgreSQL tsvector + pgvector), are
created by migration 0004, and are read and written by headwater.knowledge's
index modules with plain SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from headwater.store.models import AutoId, Base, JSONType, UTCDateTime, new_id, utcnow


class KnowledgeBase(Base):
    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("workspace_id", "slug"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    chunk_size: Mapped[int] = mapped_column(Integer, default=1000)
    chunk_overlap: Mapped[int] = mapped_column(Integer, default=150)
    # "<provider>/<model>" of an OpenAI-compatible /v1/embeddings provider; None = full-text only.
    embedding_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    embedding_dim: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bumped whenever chunks change, so cached vector matrices know they are stale.
    index_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    __tablename__ = "kb_documents"
    __table_args__ = (Index("ix_kb_documents_kb_source", "knowledge_base_id", "source_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(String(36), index=True)
    knowledge_base_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    # Metadata only: the bytes are stored under the document id, never under this name.
    file_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    source_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # What identifies "the same document" when it is added again: its URL, else file name, else title.
    source_key: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # txt md html pdf docx pptx csv json
    mime: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    indexed_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # queued | indexing | ready | error
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    page_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentBlob(Base):
    """The uploaded bytes, kept in the store so any worker can (re-)index them after a restart."""

    __tablename__ = "kb_document_blobs"

    document_id: Mapped[str] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Chunk(Base):
    __tablename__ = "kb_chunks"
    __table_args__ = (Index("ix_kb_chunks_document", "document_id", "ordinal"),)

    # An integer key: SQLite's FTS5 index refers to chunks by it (a text key's rowid may change on VACUUM).
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    knowledge_base_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[str] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    section: Mapped[str | None] = mapped_column(Text, nullable=True)
