"""Tailwinds/Flowise prediction and message API (CONTRACTS §8, seeds/tailwinds-prediction-api.txt).

The official `flowise` SDK works unmodified: it first asks
`GET /api/v1/chatflows-streaming/{id}` without credentials, then posts the
prediction with `Authorization: Bearer <key>`. Streams are framed as the
Flowise server frames them (packages/server/src/utils/SSEStreamer.ts):
`message:\\ndata:{"event": ..., "data": ...}` with `start` (carrying the first
token), `token`s, `sourceDocuments` (when asked for and found), `metadata`,
then `end`; a failure sends `error` and then `end`, as Flowise does. (Flowise
writes `message` without the colon before `error` and `end`; either way it is
a field SSE clients ignore, and CONTRACTS §8 asks for `message:` on every frame.)

A session is named by `overrideConfig.sessionId` (or `chatId`); `chatId` and
`sessionId` in responses are both that session's id. A public app answers
predictions without a key; everything else needs one.
"""

from __future__ import annotations

import base64
import binascii
from contextlib import aclosing
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.api.deps import AdminKey, DbSession, OptionalKey, RuntimeDep, require_scope
from headwater.api.dialects.bot_chat import (
    DialectTurn,
    citations_of,
    existing_session,
    find_app_by_id,
    load_served_app,
    start_turn,
    turn_failure,
)
from headwater.api.sse import sse_response
from headwater.engine import events as ev
from headwater.errors import InvalidInput, NotFound, Unauthorized
from headwater.providers.base import ChatMessage, ImagePart
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.chat import TurnRequest
from headwater.services.keys import Principal
from headwater.services.sessions import SessionService
from headwater.store.models import Message
from headwater.runtime import Runtime
from headwater.uploads import PreparedUploads, UploadItem, prepare_uploads

router = APIRouter(prefix="/api/v1", tags=["flowise"])

FLOWISE_ROLES = {"apiMessage": "assistant", "userMessage": "user"}
_require_chatbot_scope = require_scope("chatbot")


class HistoryItem(BaseModel):
    """`{role, content}` as the seed shows it, or the SDK's `{message, type, role: null, content: null}`."""

    model_config = ConfigDict(extra="ignore")

    role: str | None = None
    content: str | None = None
    message: str | None = None
    type: str | None = None

    @model_validator(mode="after")
    def _speaker_and_text(self) -> "HistoryItem":
        if (self.role or self.type) not in FLOWISE_ROLES:
            raise ValueError("role (or type) must be 'apiMessage' or 'userMessage'")
        if self.content is None and self.message is None:
            raise ValueError("a history item needs content (or message)")
        return self

    def as_chat_message(self) -> ChatMessage:
        text = self.content if self.content is not None else self.message
        return ChatMessage(role=FLOWISE_ROLES[self.role or self.type], content=text or "")  # type: ignore[index]


class Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: str | None = None
    type: str = Field(min_length=1, max_length=32)  # file | url | audio (Flowise also has file:full, file:rag)
    name: str = Field(default="", max_length=500)
    mime: str = Field(default="", max_length=200)


class OverrideConfig(BaseModel):
    # Flowise lets a flow's node inputs be overridden here; a chatbot has none, so other keys are ignored.
    model_config = ConfigDict(extra="allow")

    sessionId: str | None = Field(default=None, min_length=1, max_length=200)
    returnSourceDocuments: bool = False


class PredictionRequest(BaseModel):
    # The SDK also sends chatflowId and null fields; Flowise clients add more (leadEmail, action...).
    model_config = ConfigDict(extra="ignore")

    question: str | None = None
    overrideConfig: OverrideConfig | None = None
    chatId: str | None = Field(default=None, min_length=1, max_length=200)
    history: list[HistoryItem] | None = None
    uploads: list[Upload] | None = None
    streaming: bool = False


@router.get("/chatflows-streaming/{app_id}")
async def chatflow_streaming(app_id: str, db: DbSession):
    """Public on purpose: the official SDK asks this without credentials before every prediction.

    It answers only "yes" for an existing id of a kind the prediction route serves and
    404 otherwise: no name, no workspace, and no slugs (ids are unguessable, slugs are not).
    """
    if await find_app_by_id(db, app_id) is None:
        raise NotFound("app not found")
    return {"isStreaming": True}


@router.post("/prediction/{app_id}")
async def predict(app_id: str, body: PredictionRequest, principal: OptionalKey, db: DbSession, runtime: RuntimeDep):
    snapshot = await _app_for_caller(db, principal, app_id)
    workspace_id = snapshot.app.workspace_id
    images, uploaded = await _images_from_uploads(body.uploads or [], runtime, workspace_id)
    question = uploaded.question(body.question or "")  # an audio upload's transcript is (part of) the question
    override = body.overrideConfig or OverrideConfig()
    session_id = override.sessionId or body.chatId
    history = await _client_history(db, body, workspace_id, session_id, snapshot.app.id)
    await db.close()  # the turn opens its own sessions; don't hold this connection during generation
    turn = await start_turn(runtime, TurnRequest(
        workspace_id=workspace_id, snapshot=snapshot, message=question, images=images,
        session_id=session_id, history=history, source="flowise", extra_system=uploaded.context(),
    ))
    if body.streaming:
        return sse_response(_stream_frames(turn, question, override.returnSourceDocuments))
    result = await turn.collect()
    if result.status == "failed":
        raise turn_failure(result.error)
    response: dict[str, Any] = {
        "text": result.text, "question": question,
        "chatId": result.session_id, "chatMessageId": result.message_id, "sessionId": result.session_id,
    }
    if override.returnSourceDocuments and (documents := source_documents(citations_of(result))):
        response["sourceDocuments"] = documents
    return response


async def _app_for_caller(db: AsyncSession, principal: Principal | None, app_id: str) -> AppSnapshot:
    """With a key: the app (id or slug) in the key's workspace. Without: a public app, by id only."""
    if principal is not None:
        await _require_chatbot_scope(principal)
        return await load_served_app(db, principal.workspace_id, app_id)
    app = await find_app_by_id(db, app_id)
    if app is None or not app.is_public:
        # The same answer whether the app is private or absent: no key learns nothing.
        raise Unauthorized("missing credentials: send X-API-Key or Authorization: Bearer <key>")
    return await load_served_app(db, app.workspace_id, app.id)


async def _client_history(
    db: AsyncSession, body: PredictionRequest, workspace_id: str, session_id: str | None, app_id: str
) -> list[ChatMessage] | None:
    """The turn's earlier messages: the client's `history`, unless the named session remembers (stored memory wins).

    None means "use the session's stored memory". A conversation that does not exist yet
    has none, so it gets the client's history as is (the SDK always sends `history: []`),
    which also spares prepare() looking for messages that cannot be there.
    """
    session = await existing_session(db, workspace_id, session_id, app_id) if session_id else None
    client_history = [item.as_chat_message() for item in body.history or []]
    if session is None:
        return client_history
    if client_history and not await SessionService(db).recent_messages(workspace_id, session.id, 1):
        return client_history
    return None


async def _images_from_uploads(
    uploads: list[Upload], runtime: Runtime, workspace_id: str
) -> tuple[list[ImagePart], PreparedUploads]:
    images, others = [], []
    for upload in uploads:
        if _is_image(upload):
            images.append(_image_part(upload))
        else:
            others.append(non_image_upload(upload))
    return images, await prepare_uploads(runtime, workspace_id, others)


def non_image_upload(upload: Upload) -> UploadItem:
    """A file or audio upload, read by headwater.uploads: a file's text becomes context, audio is transcribed."""
    label = f"upload '{upload.name or upload.type}'"
    if upload.type == "url":
        raise InvalidInput(f"{label}: only image URLs are accepted")
    if not (upload.data or "").strip():
        raise InvalidInput(f"{label} has no data")
    kind = "audio" if upload.type == "audio" else "file"
    return UploadItem(type=kind, data=upload.data or "", name=upload.name or None, mime=upload.mime or None)


def _is_image(upload: Upload) -> bool:
    if upload.type == "url":
        return not upload.mime or upload.mime.startswith("image/")
    return upload.type == "file" and (upload.mime.startswith("image/") or (upload.data or "").startswith("data:image/"))


def _image_part(upload: Upload) -> ImagePart:
    label = f"upload '{upload.name or upload.type}'"
    data = (upload.data or "").strip()
    if not data:
        raise InvalidInput(f"{label} has no data")
    if upload.type == "url":
        parts = urlsplit(data)
        if parts.scheme != "https" or not parts.netloc:
            raise InvalidInput(f"{label}: an image url must be an https URL")
        return ImagePart(url=data)
    if data.startswith("data:"):
        header, _, payload = data.partition(",")
        if not header.startswith("data:image/") or not header.endswith(";base64"):
            raise InvalidInput(f"{label}: expected a data:image/...;base64, URI")
    else:  # bare base64, typed by `mime`
        header, payload = f"data:{upload.mime};base64", data
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{label}: the image data is not valid base64") from None
    return ImagePart(url=f"{header},{payload}")


def source_documents(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Citations as Flowise/LangChain documents: the chunk text as `pageContent`, the rest as `metadata`."""
    return [
        {"pageContent": c.get("text", ""), "metadata": {k: v for k, v in c.items() if k != "text"}}
        for c in citations
    ]


def _frame(event: str, data: Any) -> bytes:
    return b"message:\ndata:" + orjson.dumps({"event": event, "data": data}) + b"\n\n"


async def _stream_frames(turn: DialectTurn, question: str, return_sources: bool):
    started = failed = False
    async with aclosing(turn.events()) as events:
        async for event in events:
            if event.type == ev.TOKEN:
                if not started:  # Flowise's `start` carries the first token and precedes its `token`
                    started = True
                    yield _frame("start", event.data["text"])
                yield _frame("token", event.data["text"])
            elif event.type == ev.ERROR:
                failed = True
                yield _frame("error", event.data["message"])
            elif event.type == ev.RUN_FINISHED and not failed:
                if return_sources and (documents := source_documents(citations_of(turn))):
                    yield _frame("sourceDocuments", documents)
                yield _frame("metadata", {
                    "chatId": turn.session_id, "chatMessageId": turn.message_id,
                    "question": question, "sessionId": turn.session_id,
                })
    yield _frame("end", "[DONE]")


# Message API: admin only, like Flowise's (admin key or HTTP Basic admin).

SortOrder = Literal["ASC", "DESC"]


@router.get("/chatmessage/{app_id}")
async def list_chat_messages(
    app_id: str, principal: AdminKey, db: DbSession,
    sessionId: str | None = None, chatId: str | None = None,
    sort: SortOrder | None = None,
    order: Annotated[SortOrder | None, Query(description="Flowise's own name for `sort`")] = None,
    startDate: str | None = None, endDate: str | None = None,
):
    app = await AppService(db).get(principal.workspace_id, app_id)
    query = _message_filter(select(Message), principal.workspace_id, app.id, sessionId, chatId, startDate, endDate)
    descending = (sort or order) == "DESC"
    ordering = (Message.created_at.desc(), Message.id.desc()) if descending else (Message.created_at, Message.id)
    return [_message_public(m) for m in await db.scalars(query.order_by(*ordering))]


@router.delete("/chatmessage/{app_id}")
async def delete_chat_messages(
    app_id: str, principal: AdminKey, db: DbSession,
    sessionId: str | None = None, chatId: str | None = None,
    startDate: str | None = None, endDate: str | None = None,
):
    """Without filters, every message of the app; the conversations' memory goes with them."""
    app = await AppService(db).get(principal.workspace_id, app_id)
    statement = _message_filter(delete(Message), principal.workspace_id, app.id, sessionId, chatId, startDate, endDate)
    result = await db.execute(statement)
    await db.commit()
    return {"raw": [], "affected": result.rowcount}  # TypeORM's DeleteResult, which Flowise returns


def _message_filter(statement, workspace_id: str, app_id: str, session_id: str | None, chat_id: str | None,
                    start: str | None, end: str | None):
    statement = statement.where(Message.workspace_id == workspace_id, Message.app_id == app_id)
    for wanted in {session_id, chat_id} - {None}:  # both name the session here
        statement = statement.where(Message.session_id == wanted)
    if start:
        statement = statement.where(Message.created_at >= _date_bound(start, "startDate", time.min))
    if end:
        statement = statement.where(Message.created_at <= _date_bound(end, "endDate", time.max))
    return statement


def _date_bound(value: str, name: str, day_edge: time) -> datetime:
    """An ISO 8601 date or datetime in UTC; a bare date means its start (startDate) or end (endDate), as in Flowise."""
    try:
        return datetime.combine(date.fromisoformat(value), day_edge, tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _message_public(message: Message) -> dict[str, Any]:
    citations = message.meta.get("citations") if message.meta else None
    return {
        "id": message.id,
        "role": "apiMessage" if message.role == "assistant" else "userMessage",
        "chatflowid": message.app_id,
        "content": message.content,
        "chatType": "EXTERNAL",
        "chatId": message.session_id,
        "sessionId": message.session_id,
        "createdDate": message.created_at,
        "sourceDocuments": source_documents(citations) if citations else None,
    }
