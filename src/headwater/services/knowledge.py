"""Knowledge bases and their documents: the business rules behind the native and Flowise routes.

Adding a document stores its bytes and a `queued` row, then enqueues an
`ingest_document` job; parsing, chunking, embedding and indexing happen in
the background (headwater.knowledge.ingest). Adding a document whose source
(URL, else file name, else title) the base already holds replaces it: same
bytes → skipped, other bytes → re-indexed in place (its chunks replaced).
Checks that can fail on the caller's input (type sniffing, size, the
embedding model) run before anything is written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from headwater.knowledge.sniffing import KIND_MIME, detect_kind
from headwater.knowledge.state import knowledge_state
from headwater.knowledge.zipguard import check_archive
from headwater.store.knowledge_models import Chunk, Document, DocumentBlob, KnowledgeBase
from headwater.store.models import new_id, utcnow

if TYPE_CHECKING:
    from headwater.runtime import Runtime

INGEST_JOB = "ingest_document"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
Outcome = Literal["added", "updated", "skipped"]


@dataclass(slots=True)
class NewDocument:
    """A document as the caller gave it: bytes with an optional name/type, or text."""

    data: bytes
    file_name: str | None = None
    mime: str | None = None
    title: str | None = None
    source_url: str | None = None
    kind: str | None = None  # known already (JSON text is "txt"); else sniffed
    meta: dict | None = None


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:90] or "kb"


def safe_file_name(name: str | None) -> str | None:
    """A display name only (never a path): last path segment, no control characters, bounded."""
    if not name:
        return None
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base.strip(".") == "":  # ".", "..": a name that is all path syntax names nothing
        return None
    return base[:255] or None


class KnowledgeService:
    def __init__(self, runtime: "Runtime", db: AsyncSession):
        self.runtime = runtime
        self.db = db

    # --- knowledge bases --------------------------------------------------------

    async def create_base(
        self, workspace_id: str, *, name: str, slug: str | None = None, description: str = "",
        chunk_size: int = 1000, chunk_overlap: int = 150, embedding_model: str | None = None,
    ) -> KnowledgeBase:
        if chunk_overlap >= chunk_size:
            raise InvalidInput("chunk_overlap must be smaller than chunk_size")
        if embedding_model:
            await self.check_embedding_model(workspace_id, embedding_model)
        if slug is not None:
            if not SLUG_PATTERN.match(slug):
                raise InvalidInput("slug must be lowercase letters, digits, '-' or '_' (at most 100)")
        else:
            slug = await self._free_slug(workspace_id, slugify(name))
        kb = KnowledgeBase(
            workspace_id=workspace_id, name=name, slug=slug, description=description, chunk_size=chunk_size,
            chunk_overlap=chunk_overlap, embedding_model=embedding_model or None, index_version=0,
        )
        self.db.add(kb)
        try:
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise Conflict(f"slug '{slug}' is already used in this workspace") from None
        return kb

    async def check_embedding_model(self, workspace_id: str, model: str) -> None:
        config, model_name = await self.runtime.provider_service(self.db).resolve_config(workspace_id, model)
        knowledge_state(self.runtime).embedders.get(config, model_name)  # raises for unusable providers

    async def list_bases(self, workspace_id: str) -> list[KnowledgeBase]:
        return list(await self.db.scalars(
            select(KnowledgeBase).where(KnowledgeBase.workspace_id == workspace_id).order_by(KnowledgeBase.created_at)
        ))

    async def get_base(self, workspace_id: str, id_or_slug: str) -> KnowledgeBase:
        kb = await self.db.scalar(
            select(KnowledgeBase).where(
                KnowledgeBase.workspace_id == workspace_id,
                or_(KnowledgeBase.id == id_or_slug, KnowledgeBase.slug == id_or_slug),
            )
        )
        if kb is None:
            raise NotFound("knowledge base not found")
        return kb

    async def delete_base(self, workspace_id: str, id_or_slug: str) -> None:
        kb = await self.get_base(workspace_id, id_or_slug)
        # Explicit child deletes: the full-text triggers must see every chunk row go.
        await self.db.execute(delete(Chunk).where(Chunk.knowledge_base_id == kb.id))
        await self.db.execute(delete(Document).where(Document.knowledge_base_id == kb.id))
        await self.db.delete(kb)
        await self.db.commit()
        knowledge_state(self.runtime).index.forget(kb.id)

    async def document_counts(self, kb_ids: list[str]) -> dict[str, int]:
        if not kb_ids:
            return {}
        rows = await self.db.execute(
            select(Document.knowledge_base_id, func.count()).where(Document.knowledge_base_id.in_(kb_ids))
            .group_by(Document.knowledge_base_id)
        )
        return {kb_id: count for kb_id, count in rows}

    # --- documents --------------------------------------------------------------

    @staticmethod
    def validate(new: NewDocument) -> str:
        """The document's kind, or the 4xx its bytes deserve; cheap, so callers check every file before storing any."""
        if len(new.data) > MAX_DOCUMENT_BYTES:
            raise PayloadTooLarge(f"a document may be at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
        if not new.data.strip():
            raise InvalidInput("the document is empty")
        kind = new.kind or detect_kind(new.data, safe_file_name(new.file_name), new.mime)
        if kind in ("docx", "pptx"):
            check_archive(new.data)  # reads the zip directory only: bombs are refused before anything inflates
        return kind

    async def add_document(self, kb: KnowledgeBase, new: NewDocument) -> tuple[Document, Outcome]:
        kind = new.kind = self.validate(new)
        file_name = safe_file_name(new.file_name)
        content_hash = hashlib.sha256(new.data).hexdigest()
        title = (new.title or "").strip()[:500] or file_name or new.source_url or "Untitled"
        source_key = new.source_url or file_name or title
        existing = await self.db.scalar(
            select(Document).where(Document.knowledge_base_id == kb.id, Document.source_key == source_key)
            .order_by(Document.created_at).limit(1)
        )
        if existing is not None and existing.content_hash == content_hash and existing.status != "error":
            return existing, "skipped"
        if existing is not None:
            document, outcome = existing, "updated"
            await self.db.execute(delete(DocumentBlob).where(DocumentBlob.document_id == document.id))
        else:
            document, outcome = Document(id=new_id(), workspace_id=kb.workspace_id, knowledge_base_id=kb.id), "added"
            self.db.add(document)
        document.title, document.file_name, document.source_url = title, file_name, new.source_url
        document.source_key, document.kind, document.mime = source_key, kind, KIND_MIME.get(kind)
        document.size_bytes, document.content_hash = len(new.data), content_hash
        document.status, document.error, document.progress = "queued", None, {"stage": "queued"}
        document.meta = dict(new.meta or {})
        document.updated_at = utcnow()
        await self.db.flush()
        self.db.add(DocumentBlob(document_id=document.id, content=new.data))
        await self.db.commit()
        await self.runtime.jobs.enqueue(
            INGEST_JOB, {"document_id": document.id, "content_hash": content_hash}, workspace_id=kb.workspace_id
        )
        return document, outcome

    async def list_documents(self, kb: KnowledgeBase) -> list[Document]:
        return list(await self.db.scalars(
            select(Document).where(Document.knowledge_base_id == kb.id).order_by(Document.created_at)
        ))

    async def get_document(self, kb: KnowledgeBase, document_id: str) -> Document:
        document = await self.db.scalar(
            select(Document).where(Document.knowledge_base_id == kb.id, Document.id == document_id)
        )
        if document is None:
            raise NotFound("document not found")
        return document

    async def delete_document(self, kb: KnowledgeBase, document_id: str) -> None:
        document = await self.get_document(kb, document_id)
        await self.db.execute(delete(Chunk).where(Chunk.document_id == document.id))
        await self.db.execute(delete(Document).where(Document.id == document.id))
        await self.db.execute(
            update(KnowledgeBase).where(KnowledgeBase.id == kb.id)
            .values(index_version=KnowledgeBase.index_version + 1, updated_at=utcnow())
        )
        await self.db.commit()

    async def delete_documents_by_source(self, kb: KnowledgeBase, source_keys: list[str]) -> int:
        rows = list(await self.db.scalars(
            select(Document.id).where(Document.knowledge_base_id == kb.id, Document.source_key.in_(source_keys))
        ))
        for document_id in rows:
            await self.delete_document(kb, document_id)
        return len(rows)

    async def _free_slug(self, workspace_id: str, base: str) -> str:
        taken = set(await self.db.scalars(
            select(KnowledgeBase.slug).where(
                KnowledgeBase.workspace_id == workspace_id, KnowledgeBase.slug.like(f"{base}%")
            )
        ))
        if base not in taken:
            return base
        counter = 2
        while f"{base}-{counter}" in taken:
            counter += 1
        return f"{base}-{counter}"
