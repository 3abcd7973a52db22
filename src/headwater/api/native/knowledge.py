"""Knowledge bases, their documents, and queries (CONTRACTS §1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, model_validator

from headwater.api.deps import AdminKey, DbSession, RuntimeDep, require_scope
from headwater.api.errors import describe_validation_error
from headwater.api.native.schemas import StrictModel
from headwater.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from headwater.knowledge.fetch import fetch_url, file_name_from_url
from headwater.knowledge.retrieve import retrieve
from headwater.services.keys import Principal
from headwater.services.knowledge import MAX_DOCUMENT_BYTES, KnowledgeService, NewDocument
from headwater.store.knowledge_models import Document, KnowledgeBase

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge"])

KnowledgeKey = Annotated[Principal, Depends(require_scope("knowledge"))]
MAX_FILES_PER_REQUEST = 20


class KnowledgeBaseCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=10_000)
    chunk_size: int = Field(default=1000, ge=100, le=20_000)
    chunk_overlap: int = Field(default=150, ge=0, le=5_000)
    embedding_model: str | None = Field(default=None, max_length=300)


class KnowledgeBasePublic(BaseModel):
    id: str
    name: str
    slug: str
    description: str
    chunk_size: int
    chunk_overlap: int
    embedding_model: str | None
    embedding_dim: int | None
    document_count: int = 0
    created_at: datetime
    updated_at: datetime


class DocumentFromJson(StrictModel):
    """Text given inline, or a URL to fetch (through the SSRF-safe client)."""

    text: str | None = Field(default=None, max_length=MAX_DOCUMENT_BYTES)
    url: str | None = Field(default=None, max_length=2000)
    title: str | None = Field(default=None, max_length=500)
    source_url: str | None = Field(default=None, max_length=2000)
    format: Literal["text", "markdown", "html"] = "text"
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.text is None) == (self.url is None):
            raise ValueError("give either 'text' or 'url'")
        return self


class DocumentPublic(BaseModel):
    id: str
    knowledge_base_id: str
    title: str
    file_name: str | None
    source_url: str | None
    kind: str | None
    mime: str | None
    size_bytes: int
    status: str
    error: str | None
    progress: dict[str, Any]
    page_count: int | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class QueryRequest(StrictModel):
    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=4, ge=1, le=50)
    score_threshold: float | None = None
    mode: Literal["hybrid", "fulltext", "vector"] | None = None


def _kb_public(kb: KnowledgeBase, document_count: int = 0) -> KnowledgeBasePublic:
    return KnowledgeBasePublic(
        id=kb.id, name=kb.name, slug=kb.slug, description=kb.description, chunk_size=kb.chunk_size,
        chunk_overlap=kb.chunk_overlap, embedding_model=kb.embedding_model, embedding_dim=kb.embedding_dim,
        document_count=document_count, created_at=kb.created_at, updated_at=kb.updated_at,
    )


def document_public(document: Document, outcome: str | None = None) -> dict[str, Any]:
    body = DocumentPublic.model_validate(document, from_attributes=True).model_dump(mode="json")
    if outcome is not None:
        body["outcome"] = outcome
    return body


@router.post("", status_code=201, response_model=KnowledgeBasePublic)
async def create_knowledge_base(body: KnowledgeBaseCreate, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    kb = await KnowledgeService(runtime, db).create_base(principal.workspace_id, **body.model_dump())
    return _kb_public(kb)


@router.get("", response_model=list[KnowledgeBasePublic])
async def list_knowledge_bases(principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    bases = await service.list_bases(principal.workspace_id)
    counts = await service.document_counts([kb.id for kb in bases])
    return [_kb_public(kb, counts.get(kb.id, 0)) for kb in bases]


@router.get("/{kb_id}", response_model=KnowledgeBasePublic)
async def get_knowledge_base(kb_id: str, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    kb = await service.get_base(principal.workspace_id, kb_id)
    return _kb_public(kb, (await service.document_counts([kb.id])).get(kb.id, 0))


@router.delete("/{kb_id}", status_code=204)
async def delete_knowledge_base(kb_id: str, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    await KnowledgeService(runtime, db).delete_base(principal.workspace_id, kb_id)
    return Response(status_code=204)


def upload_body(json_model: type[BaseModel]) -> dict[str, Any]:
    """The request body of a route that reads it itself: files as multipart, or JSON."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": MAX_FILES_PER_REQUEST},
            "title": {"type": "string"}}}},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}


@router.post("/{kb_id}/documents", status_code=202, openapi_extra=upload_body(DocumentFromJson))
async def add_documents(kb_id: str, request: Request, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    kb = await service.get_base(principal.workspace_id, kb_id)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        documents = await documents_from_form(request)
    elif content_type.startswith("application/json"):
        documents = [await _document_from_json(request, runtime)]
    else:
        raise UnsupportedMediaType("send multipart/form-data with 'files', or JSON with 'text' or 'url'")
    # Every file is checked before any is stored: a bad one leaves nothing behind.
    for new in documents:
        new.kind = KnowledgeService.validate(new)
    results = [await service.add_document(kb, new) for new in documents]
    return {"documents": [document_public(d, outcome) for d, outcome in results]}


async def documents_from_form(request: Request) -> list[NewDocument]:
    try:
        form = await request.form(max_files=MAX_FILES_PER_REQUEST, max_fields=100)
    except Exception as exc:  # noqa: BLE001 - malformed multipart is the caller's 400
        raise BadRequest(f"the multipart body could not be read: {getattr(exc, 'detail', exc.__class__.__name__)}")
    try:
        uploads = [item for key, item in form.multi_items() if key in ("files", "file") and hasattr(item, "read")]
        if not uploads:
            raise InvalidInput("the form has no 'files' part")
        title = form.get("title") if isinstance(form.get("title"), str) else None
        documents = []
        for upload in uploads:
            data = await upload.read(MAX_DOCUMENT_BYTES + 1)
            if len(data) > MAX_DOCUMENT_BYTES:
                raise PayloadTooLarge(f"a document may be at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
            documents.append(NewDocument(
                data=data, file_name=upload.filename, mime=upload.content_type,
                title=title if len(uploads) == 1 else None,
            ))
        return documents
    finally:
        await form.close()


async def _document_from_json(request: Request, runtime) -> NewDocument:
    try:
        body = DocumentFromJson.model_validate(orjson.loads(await request.body()))
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None  # type: ignore[arg-type]
    if body.text is not None:
        kind = {"text": "txt", "markdown": "md", "html": "html"}[body.format]
        return NewDocument(
            data=body.text.encode("utf-8"), title=body.title, source_url=body.source_url, kind=kind,
            meta=body.metadata,
        )
    data, content_type, final_url = await fetch_url(runtime.settings, body.url, MAX_DOCUMENT_BYTES)
    return NewDocument(
        data=data, file_name=file_name_from_url(final_url), mime=content_type, title=body.title,
        source_url=body.url, meta=body.metadata,
    )


@router.get("/{kb_id}/documents")
async def list_documents(kb_id: str, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    kb = await service.get_base(principal.workspace_id, kb_id)
    return [document_public(d) for d in await service.list_documents(kb)]


@router.get("/{kb_id}/documents/{document_id}")
async def get_document(kb_id: str, document_id: str, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    kb = await service.get_base(principal.workspace_id, kb_id)
    return document_public(await service.get_document(kb, document_id))


@router.delete("/{kb_id}/documents/{document_id}", status_code=204)
async def delete_document(kb_id: str, document_id: str, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep):
    service = KnowledgeService(runtime, db)
    kb = await service.get_base(principal.workspace_id, kb_id)
    await service.delete_document(kb, document_id)
    return Response(status_code=204)


@router.post("/{kb_id}/query")
async def query_knowledge_base(
    kb_id: str, body: QueryRequest, principal: KnowledgeKey, db: DbSession, runtime: RuntimeDep
):
    kb = await KnowledgeService(runtime, db).get_base(principal.workspace_id, kb_id)
    await db.close()
    result = await retrieve(
        runtime, principal.workspace_id, [kb.id], body.query, body.top_k,
        score_threshold=body.score_threshold, mode=body.mode,
    )
    return {"query": body.query, "mode": result.mode, "results": result.chunks, "warnings": result.warnings}
