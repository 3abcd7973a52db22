"""Flowise's vector upsert route (CONTRACTS §8): `POST /api/v1/vector/upsert/{app_id}`.

Files (multipart `files`, with form fields) or JSON (`text` or `url`, at the
top level or inside `overrideConfig`) go into the app's knowledge base: the
first of its `knowledge_bases`. An app without one gets a knowledge base
named after it, attached to the app as a new version, so a Flowise client
that only ever upserts and predicts needs no other call.

Counts are of documents (files, texts, URLs), decided at once: `numAdded` a
new source, `numUpdated` a known source with new content (its chunks are
replaced when indexing finishes), `numSkipped` a known source with identical
content, `numDeleted` the documents removed by `cleanup: "full"` (those of the
base that this upsert did not name, as Flowise's record manager does).
Indexing itself runs in the background; the documents' status is listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from headwater.api.deps import AnyKey, DbSession, RuntimeDep
from headwater.api.native.knowledge import document_public, documents_from_form, upload_body
from headwater.api.native.schemas import ownership_claims
from headwater.errors import BadRequest, Forbidden, InvalidInput, UnsupportedMediaType
from headwater.knowledge.fetch import fetch_url, file_name_from_url
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.knowledge import MAX_DOCUMENT_BYTES, KnowledgeService, NewDocument

if TYPE_CHECKING:  # types only: dialects use the store through services
    from headwater.store.knowledge_models import KnowledgeBase

router = APIRouter(prefix="/api/v1", tags=["flowise"])


class UpsertJson(BaseModel):
    """The JSON form of an upsert (fields may also come inside `overrideConfig`); for the API document."""

    text: str | None = None
    url: str | None = None
    title: str | None = None
    source_url: str | None = None
    metadata: dict[str, Any] | None = None
    overrideConfig: dict[str, Any] | None = None
    cleanup: str | None = None


@router.post("/vector/upsert/{app_id}", openapi_extra=upload_body(UpsertJson))
async def vector_upsert(app_id: str, request: Request, principal: AnyKey, db: DbSession, runtime: RuntimeDep):
    if not principal.has_scope("knowledge"):
        raise Forbidden("this API key lacks the 'knowledge' scope")
    snapshot = await AppService(db).snapshot(principal.workspace_id, app_id)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        documents, options = await documents_from_form(request), await _form_options(request)
    elif content_type.startswith("application/json") or not content_type:
        documents, options = await _documents_from_json(request, runtime)
    else:
        raise UnsupportedMediaType("send multipart/form-data with 'files', or JSON")
    for new in documents:
        new.kind = KnowledgeService.validate(new)

    service = KnowledgeService(runtime, db)
    kb = await _app_knowledge_base(service, snapshot, principal.workspace_id)
    counts = {"numAdded": 0, "numUpdated": 0, "numSkipped": 0, "numDeleted": 0}
    stored = []
    for new in documents:
        document, outcome = await service.add_document(kb, new)
        counts[{"added": "numAdded", "updated": "numUpdated", "skipped": "numSkipped"}[outcome]] += 1
        stored.append(document_public(document, outcome))
    if str(options.get("cleanup", "")).lower() == "full":
        kept = {d["id"] for d in stored}
        stale = [d.source_key for d in await service.list_documents(kb) if d.id not in kept]
        counts["numDeleted"] = await service.delete_documents_by_source(kb, stale) if stale else 0
    return {**counts, "knowledgeBaseId": kb.id, "documents": stored}


async def _form_options(request: Request) -> dict[str, Any]:
    form = await request.form()
    options: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) or key in ("files", "file"):
            continue
        options[key] = value
    if problem := ownership_claims(options):
        raise InvalidInput(problem)
    return options


async def _documents_from_json(request: Request, runtime) -> tuple[list[NewDocument], dict[str, Any]]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    override = body.get("overrideConfig") if isinstance(body.get("overrideConfig"), dict) else {}
    fields = {**override, **{k: v for k, v in body.items() if k != "overrideConfig"}}
    if problem := ownership_claims(fields):
        raise InvalidInput(problem)
    title = _string(fields.get("title") or fields.get("name"), "title")
    metadata = fields.get("metadata") if isinstance(fields.get("metadata"), dict) else None
    documents = []
    if fields.get("text") is not None:
        text = _string(fields["text"], "text")
        if len(text.encode()) > MAX_DOCUMENT_BYTES:
            raise InvalidInput("text is too long")
        documents.append(NewDocument(data=text.encode(), title=title, kind="txt", meta=metadata,
                                     source_url=_string(fields.get("source_url"), "source_url")))
    if fields.get("url") is not None:
        url = _string(fields["url"], "url")
        data, mime, final_url = await fetch_url(runtime.settings, url, MAX_DOCUMENT_BYTES)
        documents.append(NewDocument(data=data, file_name=file_name_from_url(final_url), mime=mime,
                                     title=title, source_url=url, meta=metadata))
    if not documents:
        raise InvalidInput("nothing to upsert: send multipart 'files', or JSON with 'text' or 'url'")
    return documents, fields


def _string(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string")
    return value


async def _app_knowledge_base(service: KnowledgeService, snapshot: AppSnapshot, workspace_id: str) -> KnowledgeBase:
    config = dict(snapshot.version.config or {})
    named = [kb for kb in config.get("knowledge_bases") or [] if isinstance(kb, str)]
    if named:
        return await service.get_base(workspace_id, named[0])
    app = snapshot.app
    kb = await service.create_base(workspace_id, name=app.name, description=f"Documents upserted for {app.name}")
    config["knowledge_bases"] = [kb.id]
    await AppService(service.db).update(workspace_id, app.id, {"config": config})
    return kb
