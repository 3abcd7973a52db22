"""Waterflai's OpenAI-compatible route (CONTRACTS §4): `model` names a chatbot app.

The official `openai` SDK must work unmodified against `<server>/v1`, so the
request accepts the fields OpenAI defines (ignoring ones we have no use for)
and the responses carry exactly the shapes the SDK parses. Our one addition is
`conversation_id`: given, the server keeps the memory; absent, the client's
`messages` are the whole history, as with OpenAI itself.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import Any, Literal

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from headwater.api.deps import ChatbotKey, DbSession, RuntimeDep
from headwater.api.dialects.completions import chat_completion, finish_reason
from headwater.api.native.schemas import DialectRequest
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import run_id_header, sse_response
from headwater.engine import events as ev
from headwater.errors import InvalidInput
from headwater.providers.base import ChatMessage, GenerationParams, ImagePart
from headwater.services.apps import AppService
from headwater.services.chat import ChatService, TurnRequest
from headwater.uploads import prepare_uploads
from headwater.uploads.openai_parts import is_upload_part, upload_items

router = APIRouter(tags=["openai"])


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: dict[str, Any] | str | None = None


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(DialectRequest):
    # OpenAI clients send many optional fields (n, user, seed, logprobs...): accepted and ignored.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    conversation_id: str | None = Field(default=None, max_length=200)
    user: str | None = Field(default=None, max_length=200)


def _split_content(message: InputMessage) -> tuple[str, list[ImagePart]]:
    if message.content is None:
        return "", []
    if isinstance(message.content, str):
        return message.content, []
    texts, images = [], []
    for part in message.content:
        if is_upload_part(part):
            continue  # files, audio and image URLs: headwater.uploads reads them (last message only)
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image_url":
            url = part.image_url.get("url") if isinstance(part.image_url, dict) else part.image_url
            if not url or not (url.startswith("data:image/") or url.startswith("https://")):
                raise InvalidInput("image_url must be an https URL or a data:image/... URI")
            images.append(ImagePart(url=url))
        else:
            raise InvalidInput(f"content part type '{part.type}' is not supported")
    return "\n".join(texts), images


def _turn_inputs(body: ChatCompletionRequest) -> tuple[str, list[ImagePart], list[ChatMessage], str | None]:
    """Split the request into (new user message, its images, earlier turns, extra system text)."""
    last = body.messages[-1]
    if last.role != "user":
        raise InvalidInput("the last message must have role 'user'")
    message, images = _split_content(last)
    history: list[ChatMessage] = []
    system_parts: list[str] = []
    for item in body.messages[:-1]:
        text, _ = _split_content(item)
        if item.role in ("system", "developer"):
            system_parts.append(text)
        elif item.role in ("user", "assistant"):
            history.append(ChatMessage(role=item.role, content=text))
    return message, images, history, "\n\n".join(p for p in system_parts if p) or None


def _params(body: ChatCompletionRequest) -> GenerationParams:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    return GenerationParams(
        temperature=body.temperature, top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens, stop=stop,
    )


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, principal: ChatbotKey, db: DbSession, runtime: RuntimeDep):
    snapshot = await AppService(db).snapshot_for_run(principal.workspace_id, body.model)
    if snapshot.app.kind != "chatbot":
        raise InvalidInput(f"'{body.model}' is a {snapshot.app.kind} app; this route serves chatbot apps")
    await db.close()  # the turn opens its own sessions; don't hold this connection during generation
    message, images, history, extra_system = _turn_inputs(body)
    if uploads := await prepare_uploads(runtime, principal.workspace_id, upload_items(body.messages[-1].content)):
        message, images = uploads.question(message), images + uploads.images
        extra_system = "\n\n".join(p for p in (extra_system, uploads.context()) if p) or None
    turn = await ChatService(runtime).prepare(TurnRequest(
        workspace_id=principal.workspace_id, snapshot=snapshot, message=message, images=images,
        session_id=body.conversation_id, user_id=body.user,
        history=None if body.conversation_id else history,
        extra_system=extra_system, params=_params(body), source="openai",
    ))
    completion_id = f"chatcmpl-{turn.run_id}"
    created = int(time.time())
    if not body.stream:
        result = await turn.collect()
        if result.status == "failed":
            raise result.error.http_error(result.run_id)
        return FastJSONResponse(chat_completion(
            run_id=turn.run_id, created=created, model=body.model, text=result.text, reason=result.finish_reason,
            usage=result.usage.as_dict(), conversation_id=result.session_id, citations=result.citations,
        ), headers=run_id_header(turn.run_id))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return sse_response(_stream_chunks(turn, completion_id, created, body.model, include_usage), run_id=turn.run_id)


async def _stream_chunks(turn, completion_id: str, created: int, model: str, include_usage: bool):
    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        payload = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "conversation_id": turn.session_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            **extra,
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    failed = False
    async with aclosing(turn.events()) as events:
        async for event in events:
            match event.payload:
                case ev.RunStarted():  # the run is in the store now: a client may look it up by this id
                    yield chunk({"role": "assistant", "content": ""})
                case ev.Token(text=text):
                    yield chunk({"content": text})
                case ev.ErrorEvent(code=code, message=message):
                    # The openai SDK raises APIError on a chunk carrying "error": never a silent truncation.
                    failed = True
                    yield b"data: " + orjson.dumps({"error": {"message": message, "type": code}}) + b"\n\n"
                case ev.RunFinished(finish_reason=reason, usage=usage) if not failed:
                    yield chunk({}, finish_reason(reason))
                    if include_usage:
                        yield b"data: " + orjson.dumps({
                            "id": completion_id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": usage, "conversation_id": turn.session_id,
                        }) + b"\n\n"
    if not failed:
        yield b"data: [DONE]\n\n"


@router.get("/v1/models")
async def list_models(principal: ChatbotKey, db: DbSession):
    snapshots = await AppService(db).list_snapshots(principal.workspace_id, kind="chatbot")
    return {
        "object": "list",
        "data": [
            {"id": s.app.slug, "object": "model", "created": int(s.app.created_at.timestamp()),
             "owned_by": "headwater", "app_id": s.app.id, "name": s.app.name}
            for s in snapshots
        ],
    }
