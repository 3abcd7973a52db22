"""knowledge bases, documents, chunks and their full-text and vector indexes

Revision ID: 0004
Revises: 0001

SQLite: an external-content FTS5 table over kb_chunks kept in step by
triggers; vectors live in kb_chunk_vectors (float32 blobs) and are searched
from an embedded numpy index beside the database file.
PostgreSQL: a generated tsvector column with a GIN index; vectors in a pgvector
column when the `vector` extension can be created, else full-text only.
"""
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(300), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("index_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace_id", "slug"),
    )
    op.create_index("ix_knowledge_bases_workspace_id", "knowledge_bases", ["workspace_id"])
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), nullable=False),
        sa.Column("knowledge_base_id", sa.String(36),
                  sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=True),
        sa.Column("source_url", sa.String(2000), nullable=True),
        sa.Column("source_key", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("mime", sa.String(200), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("indexed_hash", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("progress", JSONType, nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kb_documents_workspace_id", "kb_documents", ["workspace_id"])
    op.create_index("ix_kb_documents_kb_source", "kb_documents", ["knowledge_base_id", "source_key"])
    op.create_table(
        "kb_document_blobs",
        sa.Column("document_id", sa.String(36), sa.ForeignKey("kb_documents.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "kb_chunks",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("knowledge_base_id", sa.String(36),
                  sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("document_id", sa.String(36), sa.ForeignKey("kb_documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section", sa.Text(), nullable=True),
    )
    op.create_index("ix_kb_chunks_knowledge_base_id", "kb_chunks", ["knowledge_base_id"])
    op.create_index("ix_kb_chunks_document", "kb_chunks", ["document_id", "ordinal"])

    if op.get_bind().dialect.name == "sqlite":
        _sqlite_indexes()
    else:
        _postgres_indexes()


def _sqlite_indexes() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5("
        "text, section, content='kb_chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN "
        "INSERT INTO kb_chunks_fts(rowid, text, section) VALUES (new.id, new.text, coalesce(new.section, '')); END"
    )
    op.execute(
        "CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN "
        "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, text, section) "
        "VALUES ('delete', old.id, old.text, coalesce(old.section, '')); END"
    )
    op.execute(
        "CREATE TRIGGER kb_chunks_fts_update AFTER UPDATE ON kb_chunks BEGIN "
        "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, text, section) "
        "VALUES ('delete', old.id, old.text, coalesce(old.section, '')); "
        "INSERT INTO kb_chunks_fts(rowid, text, section) VALUES (new.id, new.text, coalesce(new.section, '')); END"
    )
    op.create_table(
        "kb_chunk_vectors",
        sa.Column("chunk_id", sa.Integer(), sa.ForeignKey("kb_chunks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("knowledge_base_id", sa.String(36), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_kb_chunk_vectors_kb", "kb_chunk_vectors", ["knowledge_base_id", "chunk_id"])


def _postgres_indexes() -> None:
    op.execute(
        "ALTER TABLE kb_chunks ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
        "(setweight(to_tsvector('english', coalesce(section, '')), 'B') || "
        "setweight(to_tsvector('english', text), 'A')) STORED"
    )
    op.execute("CREATE INDEX ix_kb_chunks_search_vector ON kb_chunks USING gin (search_vector)")
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
    if not available:
        log.warning("pgvector is not installed: knowledge bases on PostgreSQL will use full-text search only")
        return
    # A failing CREATE EXTENSION (no privilege) must not abort the whole migration.
    bind.execute(sa.text("SAVEPOINT pgvector"))
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        bind.execute(sa.text("ROLLBACK TO SAVEPOINT pgvector"))
        log.warning("could not create the pgvector extension (%s): full-text search only", exc.orig)
        return
    bind.execute(sa.text("RELEASE SAVEPOINT pgvector"))
    # No fixed dimension: each knowledge base may use a different embedding model.
    op.execute(
        "CREATE TABLE kb_chunk_vectors ("
        "chunk_id BIGINT PRIMARY KEY REFERENCES kb_chunks(id) ON DELETE CASCADE, "
        "knowledge_base_id VARCHAR(36) NOT NULL, embedding vector NOT NULL)"
    )
    op.execute("CREATE INDEX ix_kb_chunk_vectors_kb ON kb_chunk_vectors (knowledge_base_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_chunks_fts")
    op.execute("DROP TABLE IF EXISTS kb_chunk_vectors")
    op.drop_table("kb_chunks")
    op.drop_table("kb_document_blobs")
    op.drop_table("kb_documents")
    op.drop_table("knowledge_bases")
