"""API keys: generated once, shown once, stored as a SHA-256 hash, revocable at once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import NotFound
from headwater.store.config_cache import NOT_A_CONFIG_CHANGE, cache_of
from headwater.store.models import ApiKey, utcnow

KEY_PREFIX = "hw_"
VISIBLE_PREFIX_LENGTH = 10
SCOPES = ("admin", "chatbot", "knowledge")
# last_used_at is informative; writing it on every request would double the write load.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the workspace they act for and what they may do there."""

    workspace_id: str
    scopes: frozenset[str]
    key_id: str | None = None
    rate_limit: int | None = None
    is_instance_admin: bool = False

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


class KeyService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def create(
        self,
        workspace_id: str,
        name: str,
        scopes: list[str],
        rate_limit: int | None = None,
        *,
        is_instance_admin: bool = False,
        plaintext: str | None = None,
    ) -> tuple[ApiKey, str]:
        key = plaintext or generate_key()
        row = ApiKey(
            workspace_id=workspace_id,
            name=name,
            prefix=key[:VISIBLE_PREFIX_LENGTH],
            key_hash=hash_key(key),
            scopes=sorted(set(scopes)),
            rate_limit=rate_limit,
            is_instance_admin=is_instance_admin,
        )
        self.db.add(row)
        await self.db.flush()
        return row, key

    async def list(self, workspace_id: str) -> list[ApiKey]:
        result = await self.db.scalars(
            select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.created_at)
        )
        return list(result)

    async def revoke(self, workspace_id: str, key_id: str) -> None:
        # Deleting the row revokes the key at once: the commit empties every process's
        # key cache (store/config_cache.py), so the next request looks the key up again.
        result = await self.db.execute(
            delete(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.id == key_id)
        )
        if result.rowcount == 0:
            raise NotFound("API key not found")

    async def authenticate(self, presented: str) -> Principal | None:
        """The key's principal, from the store or from the cache that any change to the keys empties."""
        digest = hash_key(presented)
        found = await cache_of(self.db.bind).get(("api_key", digest), lambda: self._lookup(digest))
        if found is None:
            return None
        await self._touch(found)
        return found.principal

    async def _lookup(self, digest: str) -> "_KnownKey | None":
        # One indexed SELECT of the columns needed (no ORM object).
        row = (await self.db.execute(_AUTH_QUERY, {"digest": digest})).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return _KnownKey(
            Principal(
                workspace_id=row.workspace_id,
                scopes=frozenset(row.scopes),
                key_id=row.id,
                rate_limit=row.rate_limit,
                is_instance_admin=row.is_instance_admin,
            ),
            row.last_used_at,
        )

    async def _touch(self, known: "_KnownKey") -> None:
        now = utcnow()
        if known.last_used_at is not None and now - known.last_used_at <= LAST_USED_RESOLUTION:
            return
        known.last_used_at = now
        await self.db.execute(
            update(ApiKey).where(ApiKey.id == known.principal.key_id).values(last_used_at=now),
            execution_options=NOT_A_CONFIG_CHANGE,
        )
        await self.db.commit()


@dataclass(slots=True)
class _KnownKey:
    principal: Principal
    last_used_at: datetime | None


# Built once, on the table's columns: a plain Core select skips the ORM's per-statement
# compile step (about a third of this statement's cost).
_keys = ApiKey.__table__
_AUTH_QUERY = select(
    _keys.c.id, _keys.c.workspace_id, _keys.c.key_hash, _keys.c.scopes, _keys.c.rate_limit,
    _keys.c.is_instance_admin, _keys.c.last_used_at,
).where(_keys.c.key_hash == bindparam("digest"))

