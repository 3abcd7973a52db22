"""Conversations and their message history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import NotFound
from headwater.store.db import insert_ignoring_duplicates
from headwater.store.models import ChatSession, Message, new_id, utcnow


class SessionService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def get_or_create(
        self, workspace_id: str, session_id: str | None, app_id: str | None, user_id: str | None = None
    ) -> ChatSession:
        """A given id that does not exist yet starts a session under that id (Flowise clients pick ids)."""
        if session_id:
            found = await self.db.get(ChatSession, (workspace_id, session_id))
            if found is not None:
                return found
            # Two first calls may name the same new conversation at once: whichever inserts
            # second keeps the other's row instead of failing on the key.
            now = utcnow()
            await self.db.execute(
                insert_ignoring_duplicates(self.db.bind.dialect.name, ChatSession.__table__).values(
                    workspace_id=workspace_id, id=session_id, app_id=app_id, user_id=user_id,
                    created_at=now, updated_at=now,
                )
            )
            return await self.get(workspace_id, session_id)
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

    async def recent_messages(self, workspace_id: str, session_id: str, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first: the memory a model sees."""
        if limit <= 0:
            return []
        rows = await self.db.scalars(
            select(Message)
            .where(Message.workspace_id == workspace_id, Message.session_id == session_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return list(reversed(list(rows)))

    async def messages(self, workspace_id: str, session_id: str) -> list[Message]:
        await self.get(workspace_id, session_id)
        rows = await self.db.scalars(
            select(Message)
            .where(Message.workspace_id == workspace_id, Message.session_id == session_id)
            .order_by(Message.created_at, Message.id)
        )
        return list(rows)
