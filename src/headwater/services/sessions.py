"""Conversations and their message history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, bindparam, delete, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from headwater.errors import Conflict, NotFound
from headwater.store.models import ChatSession, Message


def check_session_app(session_app_id: str | None, app_id: str | None) -> None:
    """409 when a named session is another app's conversation.

    Session ids may be picked by clients (Flowise `sessionId: "123"`), so without this
    check one app's caller (possibly anonymous, on a public app) could continue, and
    read through the model, another app's conversation.
    """
    if session_app_id != app_id:
        raise Conflict("this session id belongs to a conversation with another app; use a different one")


class SessionService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def get(self, workspace_id: str, session_id: str) -> ChatSession:
        found = await self.db.get(ChatSession, (workspace_id, session_id))
        if found is None:
            raise NotFound("session not found")
        return found

    async def list(self, workspace_id: str, app_id: str | None = None, limit: int = 100) -> list[ChatSession]:
        query = select(ChatSession).where(ChatSession.workspace_id == workspace_id)
        if app_id:
            query = query.where(ChatSession.app_id == app_id)
        return list(await self.db.scalars(query.order_by(ChatSession.updated_at.desc()).limit(limit)))

    async def has_messages(self, workspace_id: str, session_id: str) -> bool:
        """Whether the session remembers anything (a session that does not exist remembers nothing)."""
        found = await self.db.scalar(
            select(Message.id).where(Message.workspace_id == workspace_id, Message.session_id == session_id).limit(1)
        )
        return found is not None

    async def messages(self, workspace_id: str, session_id: str) -> list[Message]:
        await self.get(workspace_id, session_id)
        rows = await self.db.scalars(
            select(Message)
            .where(Message.workspace_id == workspace_id, Message.session_id == session_id)
            .order_by(Message.created_at, Message.id)
        )
        return list(rows)

    async def app_messages(
        self, workspace_id: str, app_id: str, *, session_id: str | None = None,
        start: datetime | None = None, end: datetime | None = None, descending: bool = False,
    ) -> list[Message]:
        """An app's messages across its conversations (or one of them), by time, within [start, end]."""
        query = _app_message_filter(select(Message), workspace_id, app_id, session_id, start, end)
        if descending:
            query = query.order_by(Message.created_at.desc(), Message.id.desc())
        else:
            query = query.order_by(Message.created_at, Message.id)
        return list(await self.db.scalars(query))

    async def delete_app_messages(
        self, workspace_id: str, app_id: str, *, session_id: str | None = None,
        start: datetime | None = None, end: datetime | None = None,
    ) -> int:
        """Forget an app's messages (the conversations' memory goes with them); returns how many."""
        result = await self.db.execute(
            _app_message_filter(delete(Message), workspace_id, app_id, session_id, start, end)
        )
        await self.db.commit()
        return result.rowcount


def _app_message_filter(statement, workspace_id: str, app_id: str, session_id: str | None,
                        start: datetime | None, end: datetime | None):
    statement = statement.where(Message.workspace_id == workspace_id, Message.app_id == app_id)
    if session_id is not None:
        statement = statement.where(Message.session_id == session_id)
    if start is not None:
        statement = statement.where(Message.created_at >= start)
    if end is not None:
        statement = statement.where(Message.created_at <= end)
    return statement


def _memory_query():
    messages = Message.__table__
    recent = (
        select(messages.c.role, messages.c.content, messages.c.created_at, messages.c.id)
        .where(messages.c.workspace_id == bindparam("workspace_id"), messages.c.session_id == bindparam("session_id"))
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(bindparam("window", type_=Integer))
        .subquery("recent")
    )
    sessions = ChatSession.__table__
    return (
        select(sessions.c.id, sessions.c.app_id, recent.c.role, recent.c.content, recent.c.created_at,
               recent.c.id.label("message_id"))
        .select_from(sessions.outerjoin(recent, true()))
        .where(sessions.c.workspace_id == bindparam("workspace_id"), sessions.c.id == bindparam("session_id"))
    )


# The session row and its last `window` messages in one query: no row = no such session.
_MEMORY_QUERY = _memory_query()


async def session_memory(
    db: AsyncConnection, workspace_id: str, session_id: str | None, app_id: str, window: int
) -> tuple[str | None, list[dict[str, str]]]:
    """(the session's id if it exists, its last `window` messages oldest first as {role, content}).

    A Core connection and one query: this runs on every turn of every conversation.
    409 when the session is another app's conversation (see `check_session_app`).
    """
    if not session_id:
        return None, []
    rows = (await db.execute(
        _MEMORY_QUERY, {"workspace_id": workspace_id, "session_id": session_id, "window": window}
    )).all()
    if not rows:
        return None, []
    check_session_app(rows[0].app_id, app_id)
    found = [row for row in rows if row.message_id is not None]
    found.sort(key=lambda row: (row.created_at, row.message_id))
    return rows[0].id, [{"role": row.role, "content": row.content} for row in found]
