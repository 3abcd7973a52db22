"""Conversations and their messages (chatbot keys may read them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from headwater.api.deps import ChatbotKey, DbSession
from headwater.services.sessions import SessionService

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class SessionPublic(BaseModel):
    id: str
    app_id: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class MessagePublic(BaseModel):
    id: str
    session_id: str
    app_id: str | None
    run_id: str | None
    role: str
    content: str
    meta: dict[str, Any]
    created_at: datetime


@router.get("", response_model=list[SessionPublic])
async def list_sessions(principal: ChatbotKey, db: DbSession, app_id: str | None = None):
    return await SessionService(db).list(principal.workspace_id, app_id)


@router.get("/{session_id}/messages", response_model=list[MessagePublic])
async def list_messages(session_id: str, principal: ChatbotKey, db: DbSession):
    return await SessionService(db).messages(principal.workspace_id, session_id)
