"""Studio sessions: the web page's cookie stands for the admin credential that signed in, never for more.

A session is a random token in an httpOnly, SameSite=Strict cookie; the store
keeps only its SHA-256 (as with API keys), so a copy of the database opens no
session. Sessions live in the database rather than in a signed cookie so that
signing out ends one for good, deleting the API key behind one ends it at once
(foreign key, and checked on every request), and every API process of a
scale-out deployment sees the same sessions without sharing a signing secret.

Each request resolves the cookie to the same `Principal` as the credential
behind it: the admin key's own (workspace, scopes, rate limit) or the admin
user's. The CSRF token is derived from the session token (HMAC), so it needs no
storage and changes with every sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.config import Settings
from headwater.services.keys import Principal, hash_key
from headwater.services.workspaces import DEFAULT_WORKSPACE_ID
from headwater.store.models import ApiKey, utcnow
from headwater.store.studio_models import StudioSession

COOKIE_NAME = "hw_studio"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_LABEL = b"headwater studio csrf v1"


def admin_user_principal() -> Principal:
    """Who the admin user (HEADWATER_ADMIN_USER / PASSWORD) is: instance admin of the default workspace."""
    return Principal(workspace_id=DEFAULT_WORKSPACE_ID, scopes=frozenset({"admin"}), is_instance_admin=True)


def admin_password_matches(settings: Settings, user: str, password: str) -> bool:
    if settings.admin_password is None:
        return False
    user_ok = hmac.compare_digest(user.encode(), settings.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.admin_password.get_secret_value().encode())
    return user_ok and password_ok


def csrf_token_for(session_token: str) -> str:
    digest = hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_token_matches(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token_for(session_token).encode(), presented.encode())


def _password_check(session_token: str, settings: Settings) -> str | None:
    if settings.admin_password is None:
        return None
    material = f"{settings.admin_user}:{settings.admin_password.get_secret_value()}".encode()
    return hmac.new(session_token.encode(), material, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str
    csrf_token: str
    expires_at: datetime
    principal: Principal
    method: str  # "password" or "api_key"


@dataclass(frozen=True, slots=True)
class ActiveSession:
    principal: Principal
    expires_at: datetime
    method: str
    key_name: str | None


class StudioSessionService:
    def __init__(self, db: AsyncSession, settings: Settings):
        self.db = db
        self.settings = settings

    async def open(self, principal: Principal) -> OpenedSession:
        """A new session for a principal that just proved itself (admin password, or an admin key)."""
        now = utcnow()
        await self.db.execute(delete(StudioSession).where(StudioSession.expires_at < now))
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(hours=self.settings.studio_session_hours)
        by_password = principal.key_id is None
        self.db.add(StudioSession(
            token_hash=hash_key(token), workspace_id=principal.workspace_id, api_key_id=principal.key_id,
            password_check=_password_check(token, self.settings) if by_password else None,
            created_at=now, expires_at=expires_at,
        ))
        await self.db.commit()
        return OpenedSession(token, csrf_token_for(token), expires_at, principal,
                             "password" if by_password else "api_key")

    async def resolve(self, token: str) -> ActiveSession | None:
        """The live session of a cookie token, with the principal of the credential behind it now."""
        row = (await self.db.execute(
            select(StudioSession, ApiKey)
            .outerjoin(ApiKey, ApiKey.id == StudioSession.api_key_id)
            .where(StudioSession.token_hash == hash_key(token))
        )).first()
        if row is None:
            return None
        session, key = row
        if not hmac.compare_digest(session.token_hash, hash_key(token)) or session.expires_at <= utcnow():
            return None
        if session.api_key_id is not None:
            # The key as it is now: a deleted key (or one without the admin scope) opens nothing.
            if key is None or "admin" not in (key.scopes or []) or key.workspace_id != session.workspace_id:
                return None
            principal = Principal(
                workspace_id=key.workspace_id, scopes=frozenset(key.scopes), key_id=key.id,
                rate_limit=key.rate_limit, is_instance_admin=key.is_instance_admin,
            )
            return ActiveSession(principal, session.expires_at, "api_key", key.name)
        expected = _password_check(token, self.settings)
        if expected is None or session.password_check is None:
            return None
        if not hmac.compare_digest(expected, session.password_check):
            return None  # the admin password changed since this sign-in
        return ActiveSession(admin_user_principal(), session.expires_at, "password", None)

    async def close(self, token: str) -> None:
        await self.db.execute(delete(StudioSession).where(StudioSession.token_hash == hash_key(token)))
        await self.db.commit()
