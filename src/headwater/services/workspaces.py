"""Workspaces and the first-start bootstrap of the instance admin key."""

from __future__ import annotations

import sys

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.config import Settings
from headwater.errors import InvalidInput, NotFound
from headwater.services.keys import KeyService, hash_key
from headwater.store.models import ApiKey, Message, Workspace

DEFAULT_WORKSPACE_ID = "default"
ENV_ADMIN_KEY_NAME = "admin (HEADWATER_ADMIN_KEY)"
BOOTSTRAP_KEY_NAME = "admin (first start)"


class WorkspaceService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def create(self, name: str) -> tuple[Workspace, str]:
        workspace = Workspace(name=name)
        self.db.add(workspace)
        await self.db.flush()
        _, key = await KeyService(self.db).create(workspace.id, "admin", ["admin"])
        return workspace, key

    async def list(self) -> list[Workspace]:
        return list(await self.db.scalars(select(Workspace).order_by(Workspace.created_at)))

    async def delete(self, workspace_id: str) -> None:
        if workspace_id == DEFAULT_WORKSPACE_ID:
            raise InvalidInput("the default workspace cannot be deleted")
        # Messages carry no foreign key (sessions may be client-named); the rest cascades.
        await self.db.execute(delete(Message).where(Message.workspace_id == workspace_id))
        result = await self.db.execute(delete(Workspace).where(Workspace.id == workspace_id))
        if result.rowcount == 0:
            raise NotFound("workspace not found")


async def bootstrap(db: AsyncSession, settings: Settings) -> None:
    """Make sure the default workspace and an instance admin key exist.

    With HEADWATER_ADMIN_KEY set, that key is the admin key (a changed value
    replaces the old one). Otherwise the very first start creates a key and
    prints it once; it is never shown again.
    """
    if await db.get(Workspace, DEFAULT_WORKSPACE_ID) is None:
        db.add(Workspace(id=DEFAULT_WORKSPACE_ID, name="default"))
        await db.flush()
    keys = KeyService(db)
    if settings.admin_key is not None:
        wanted = settings.admin_key.get_secret_value()
        stale = await db.scalars(select(ApiKey).where(ApiKey.name == ENV_ADMIN_KEY_NAME))
        present = False
        for row in stale:
            if row.key_hash == hash_key(wanted):
                present = True
            else:
                await db.delete(row)
        if not present:
            await keys.create(
                DEFAULT_WORKSPACE_ID, ENV_ADMIN_KEY_NAME, ["admin"], is_instance_admin=True, plaintext=wanted
            )
    else:
        existing = await db.scalar(select(ApiKey.id).where(ApiKey.is_instance_admin.is_(True)).limit(1))
        if existing is None:
            _, key = await keys.create(DEFAULT_WORKSPACE_ID, BOOTSTRAP_KEY_NAME, ["admin"], is_instance_admin=True)
            # Printed, not logged: logs are kept and shipped, this must be seen once only.
            print(first_start_message(settings, key), file=sys.stderr, flush=True)
    await db.commit()


def first_start_message(settings: Settings, key: str) -> str:
    """The admin key, and one line to paste that gets a first answer from the embedded model
    (it creates the chatbot `hello` on it, then asks it; pasted again, the first part just fails)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"
    headers = f"-H 'X-API-Key: {key}' -H 'Content-Type: application/json'"
    create = '{"name": "Hello", "slug": "hello", "kind": "chatbot", "config": {"model": "local/gemma-3-270m"}}'
    ask = '{"model": "hello", "messages": [{"role": "user", "content": "What is the capital of France?"}]}'
    curl = f"curl -s {base}/v1/apps {headers} -d '{create}' >/dev/null; curl -s {base}/v1/chat/completions {headers} -d '{ask}'"
    return (
        f"\nHeadwater admin API key (shown once, store it now): {key}\n"
        f"Studio: {base}/studio (sign in with this key)\n"
        f"First answer from the embedded model:\n  {curl}\n"
    )
