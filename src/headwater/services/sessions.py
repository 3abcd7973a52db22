"""Conversations and their message history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import Conflict, NotFound
from headwater.store.db import insert_ignoring_duplicates
from headwater.store.models import ChatSession, Message, new_id, utcnow


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

    async def get_or_create(
        self, workspace_id: str, session_id: str | None, app_id: str | None, user_id: str | None = None
    ) -> ChatSession:
        """A given id that does not exist yet starts a session under that id (Flowise clients pick ids).

        409 when the id names another app's conversation (see `check_session_app`).
        """
        if session_id:
            found = await self.db.get(ChatSession, (workspace_id, session_id))
            if found is None:
                # Two first calls may name the same new conversation at once: whichever inserts
                # second keeps the other's row instead of failing on the key.
                now = utcnow()
                await self.db.execute(
                    insert_ignoring_duplicates(self.db.bind.dialect.name, ChatSession.__table__).values(
                        workspace_id=workspace_id, id=session_id, app_id=app_id, user_id=user_id,
                        created_at=now, updated_at=now,
                    )
                )
                found = await self.get(workspace_id, session_id)
            check_session_app(found.app_id, app_id)
            return found
        session = ChatSession(workspace_id=workspace_id, id=new_id(), app_id=app_id, user_id=user_id)
        self.db.add(session)
        await self.db.flush()
        return session

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

    async def recent_messages(self, workspace_id: str, session_id: str, limit: int) -> list[Row]:
        """The last `limit` messages as (role, content) rows, oldest first: the memory a model sees.

        Columns, not ORM objects: a long conversation is read on every turn of a chatflow.
        """
        if limit <= 0:
            return []
        rows = await self.db.execute(
            select(Message.role, Message.content)
            .where(Message.workspace_id == workspace_id, Message.session_id == session_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return list(reversed(rows.all()))

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
