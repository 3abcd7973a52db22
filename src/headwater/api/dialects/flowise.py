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

The app is a chatbot or a chatflow. A session is named by
`overrideConfig.sessionId` (or `chatId`); `chatId` and `sessionId` in responses
are both that session's id. A public app answers predictions without a key;
everything else needs one. Image URLs are fetched through the SSRF-safe client,
like every other user-given URL.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.api.deps import AdminKey, DbSession, OptionalKey, RuntimeDep, require_scope
from headwater.api.dialects.bot_chat import (
    DialectTurn,
    citations_of,
    find_app_by_id,
    load_served_app,
    reply_parts,
    start_turn,
)
from headwater.api.native.schemas import DialectRequest
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import run_id_header, sse_response
from headwater.errors import InvalidInput, NotFound, Unauthorized
from headwater.providers.base import ChatMessage, ImagePart
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.chat import TurnRequest
from headwater.services.keys import Principal
from headwater.services.sessions import SessionService
from headwater.runtime import Runtime
from headwater.uploads import PreparedUploads, UploadItem, prepare_uploads

if TYPE_CHECKING:  # types only: dialects use the store through services
    from headwater.store.models import Message

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
    # Flowise lets a flow's node inputs be overridden here; our apps take none, so other keys are ignored.
    model_config = ConfigDict(extra="allow")

    sessionId: str | None = Field(default=None, min_length=1, max_length=200)
    returnSourceDocuments: bool = False


class PredictionRequest(DialectRequest):
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
    images, uploaded = await _read_uploads(body.uploads or [], runtime, workspace_id)
    question = uploaded.question(body.question or "")  # an audio upload's transcript is (part of) the question
    override = body.overrideConfig or OverrideConfig()
    session_id = override.sessionId or body.chatId
    history = await _client_history(db, body, workspace_id, session_id)
    await db.close()  # the turn opens its own sessions; don't hold this connection during generation
    turn = await start_turn(runtime, TurnRequest(
        workspace_id=workspace_id, snapshot=snapshot, message=question, images=images,
        session_id=session_id, history=history, source="flowise", extra_system=uploaded.context(),
    ))
    if body.streaming:
        return sse_response(_stream_frames(turn, question, override.returnSourceDocuments), run_id=turn.run_id)
    result = await turn.collect()
    if result.error is not None:
        raise result.error.http_error(result.run_id)
    response: dict[str, Any] = {
        "text": result.text, "question": question,
        "chatId": result.session_id, "chatMessageId": result.message_id, "sessionId": result.session_id,
    }
    if override.returnSourceDocuments and (documents := source_documents(citations_of(result))):
        response["sourceDocuments"] = documents
    return FastJSONResponse(response, headers=run_id_header(result.run_id))


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
    db: AsyncSession, body: PredictionRequest, workspace_id: str, session_id: str | None
) -> list[ChatMessage] | None:
    """The turn's earlier messages: the client's `history`, unless the named session remembers (stored memory wins).

    None means "use the session's stored memory", which is also what an empty `history`
    (the SDK always sends `history: []`) comes to. Whether the session is this app's
    conversation is the turn's to check (409 otherwise).
    """
    client_history = [item.as_chat_message() for item in body.history or []]
    if not client_history:
        return None
    if session_id and await SessionService(db).has_messages(workspace_id, session_id):
        return None
    return client_history


async def _read_uploads(
    uploads: list[Upload], runtime: Runtime, workspace_id: str
) -> tuple[list[ImagePart], PreparedUploads]:
    """(every image, inline or fetched; the rest as headwater.uploads read it)."""
    images, others = [], []
    for upload in uploads:
        if _is_image(upload) and upload.type != "url":
            images.append(_image_part(upload))
        else:
            others.append(upload_item(upload))
    prepared = await prepare_uploads(runtime, workspace_id, others)
    return images + prepared.images, prepared


def upload_item(upload: Upload) -> UploadItem:
    """An upload read by headwater.uploads: an image URL is fetched, a file's text becomes context, audio is transcribed."""
    label = f"upload '{upload.name or upload.type}'"
    if upload.type == "url" and not _is_image(upload):
        raise InvalidInput(f"{label}: only image URLs are accepted")
    if not (upload.data or "").strip():
        raise InvalidInput(f"{label} has no data")
    kind = {"url": "url", "audio": "audio"}.get(upload.type, "file")
    return UploadItem(type=kind, data=upload.data or "", name=upload.name or None, mime=upload.mime or None)


def _is_image(upload: Upload) -> bool:
    if upload.type == "url":
        return not upload.mime or upload.mime.startswith("image/")
    return upload.type == "file" and (upload.mime.startswith("image/") or (upload.data or "").startswith("data:image/"))


def _image_part(upload: Upload) -> ImagePart:
    """An image sent inline (data URI or bare base64 typed by `mime`)."""
    label = f"upload '{upload.name or upload.type}'"
    data = (upload.data or "").strip()
    if not data:
        raise InvalidInput(f"{label} has no data")
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
    started = False
    async for part in reply_parts(turn):
        if part.type == "token":
            if not started:  # Flowise's `start` carries the first token and precedes its `token`
                started = True
                yield _frame("start", part.text)
            yield _frame("token", part.text)
        elif part.type == "error":
            yield _frame("error", part.text)
        else:
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
    messages = await SessionService(db).app_messages(
        principal.workspace_id, app.id, session_id=_session_filter(sessionId, chatId),
        start=_date_bound(startDate, "startDate", time.min), end=_date_bound(endDate, "endDate", time.max),
        descending=(sort or order) == "DESC",
    )
    return [_message_public(m) for m in messages]


@router.delete("/chatmessage/{app_id}")
async def delete_chat_messages(
    app_id: str, principal: AdminKey, db: DbSession,
    sessionId: str | None = None, chatId: str | None = None,
    startDate: str | None = None, endDate: str | None = None,
):
    """Without filters, every message of the app; the conversations' memory goes with them."""
    app = await AppService(db).get(principal.workspace_id, app_id)
    affected = await SessionService(db).delete_app_messages(
        principal.workspace_id, app.id, session_id=_session_filter(sessionId, chatId),
        start=_date_bound(startDate, "startDate", time.min), end=_date_bound(endDate, "endDate", time.max),
    )
    return {"raw": [], "affected": affected}  # TypeORM's DeleteResult, which Flowise returns


def _session_filter(session_id: str | None, chat_id: str | None) -> str | None:
    """Both name the session here (a reply's chatId is its sessionId), so two different ones are a mistake."""
    if session_id and chat_id and session_id != chat_id:
        raise InvalidInput("sessionId and chatId both name the conversation here; they differ")
    return session_id or chat_id


def _date_bound(value: str | None, name: str, day_edge: time) -> datetime | None:
    """An ISO 8601 date or datetime in UTC; a bare date means its start (startDate) or end (endDate), as in Flowise."""
    if not value:
        return None
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
