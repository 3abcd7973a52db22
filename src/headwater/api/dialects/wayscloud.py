"""WAYSCloud's chatbot API (CONTRACTS §7, seeds/wayscloud-chatbot-api.txt): list bots, chat, chat as SSE.

A bot is a chatbot or chatflow app, named by id or slug. No `session_id` starts a
conversation; sending the returned one back continues it with the server-side
memory (and answers a chatflow that paused to ask a question). The stream is
`data:` lines only: `meta` first (session id, citations), then `token`s, then
`done`, or `error` instead of `done` when generation fails. `meta` goes out with
the first token (or error, or done): a chatflow's citations are known once its
retrieval node has run, which is before its reply starts.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.api.deps import ChatbotKey, DbSession, RuntimeDep
from headwater.api.dialects.bot_chat import (
    DialectTurn,
    citations_of,
    list_served_apps,
    load_served_app,
    reply_parts,
    start_turn,
)
from headwater.api.native.schemas import DialectRequest
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import run_id_header, sse_response
from headwater.runtime import Runtime
from headwater.services.chat import TurnRequest

router = APIRouter(prefix="/v1/chatbot/api", tags=["wayscloud"])


class ChatRequest(DialectRequest):
    # A dialect request: fields WAYSCloud clients may add beyond the seed are ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    bot_id: str = Field(min_length=1, max_length=200)
    message: str
    session_id: str | None = Field(default=None, min_length=1, max_length=200)


@router.get("/bots")
async def list_bots(principal: ChatbotKey, db: DbSession):
    return {"bots": [
        {"id": s.app.id, "slug": s.app.slug, "name": s.app.name, "description": s.app.description}
        for s in await list_served_apps(db, principal.workspace_id)
    ]}


@router.post("/chat")
async def chat(body: ChatRequest, principal: ChatbotKey, db: DbSession, runtime: RuntimeDep):
    started = time.perf_counter()
    turn = await _start(body, principal.workspace_id, db, runtime)
    result = await turn.collect()
    if result.error is not None:
        raise result.error.http_error(result.run_id)
    return FastJSONResponse({
        "session_id": result.session_id,
        "message_id": result.message_id,
        "response": result.text,
        "citations": citations_of(result),
        "tokens_input": result.usage.prompt_tokens,
        "tokens_output": result.usage.completion_tokens,
        "response_time_ms": int((time.perf_counter() - started) * 1000),
    }, headers=run_id_header(result.run_id))


@router.post("/chat/stream")
async def chat_stream(body: ChatRequest, principal: ChatbotKey, db: DbSession, runtime: RuntimeDep):
    turn = await _start(body, principal.workspace_id, db, runtime)
    return sse_response(_stream_events(turn), run_id=turn.run_id)


async def _start(body: ChatRequest, workspace_id: str, db: AsyncSession, runtime: Runtime) -> DialectTurn:
    snapshot = await load_served_app(db, workspace_id, body.bot_id)
    await db.close()  # the turn opens its own sessions; don't hold this connection during generation
    return await start_turn(runtime, TurnRequest(
        workspace_id=workspace_id, snapshot=snapshot, message=body.message, session_id=body.session_id,
        source="wayscloud",
    ))


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _stream_events(turn: DialectTurn):
    meta_sent = False
    async for part in reply_parts(turn):
        if not meta_sent:
            meta_sent = True
            yield _data({"type": "meta", "data": {"session_id": turn.session_id, "citations": citations_of(turn)}})
        if part.type == "token":
            yield _data({"type": "token", "content": part.text})
        elif part.type == "error":
            # The seed's error event replaces `done`: the client never mistakes a broken reply for a whole one.
            yield _data({"type": "error", "content": part.text})
        else:
            yield _data({"type": "done"})
