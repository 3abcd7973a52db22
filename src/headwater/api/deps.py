"""Request dependencies: who is calling (auth), rate limits, and a database session.

Authorisation is decided per route by these dependencies, never by matching
path prefixes, so no spelling of a path (case, slashes, encoding) can skip it.
No request header other than the credentials themselves grants anything.

Credentials, first found wins: an API key (`X-API-Key` or Bearer), the admin
user's Basic auth, then the Studio's session cookie, which only the routes of
`api/studio_routes.py` accept, resolves to the same Principal as the admin key
or user that signed in, and on a state-changing request must come with the
session's CSRF token (403 without it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.api.studio_routes import accepts_studio_cookie
from headwater.errors import Forbidden, RateLimited, Unauthorized
from headwater.runtime import Runtime
from headwater.services.keys import KeyService, Principal
from headwater.services.studio_sessions import (
    COOKIE_NAME,
    CSRF_HEADER,
    SAFE_METHODS,
    StudioSessionService,
    admin_password_matches,
    admin_user_principal,
    csrf_token_matches,
)

RATE_LIMIT_STATE = "rate_limit_headers"


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool,
    # a thread hop on every request for one attribute read.
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_db(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.sessionmaker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]


def _credentials(request: HTTPConnection) -> tuple[str, str] | None:
    """('key', secret), ('basic', 'user:password') or ('studio', session token) from the request, if any."""
    api_key = request.headers.get("x-api-key")  # Starlette headers ignore case: X-API-KEY works too
    if api_key:
        return "key", api_key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "key", value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            return "basic", base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    session_token = request.cookies.get(COOKIE_NAME)
    if session_token and accepts_studio_cookie(request):
        return "studio", session_token
    return None


async def _authenticate(request: HTTPConnection, runtime: Runtime, db: AsyncSession) -> Principal:
    credentials = _credentials(request)
    if credentials is None:
        raise Unauthorized("missing credentials: send X-API-Key or Authorization: Bearer <key>")
    kind, secret = credentials
    if kind == "basic":
        principal = _basic_admin(runtime, secret)
    elif kind == "studio":
        return await _studio_session(request, runtime, db, secret)
    else:
        principal = await KeyService(db).authenticate(secret)
    if principal is None:
        raise Unauthorized("invalid or revoked credentials")
    return principal


def _basic_admin(runtime: Runtime, user_password: str) -> Principal | None:
    user, _, password = user_password.partition(":")
    return admin_user_principal() if admin_password_matches(runtime.settings, user, password) else None


async def _studio_session(request: HTTPConnection, runtime: Runtime, db: AsyncSession, token: str) -> Principal:
    # Checked before the session is even looked up: a forged cross-site request costs no query.
    # (A WebSocket opens with a GET: it reads, as the safe methods do.)
    if request.scope.get("method", "GET") not in SAFE_METHODS and not csrf_token_matches(token, request.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or wrong CSRF token: send the X-CSRF-Token header that signing in to the Studio gave")
    session = await StudioSessionService(db, runtime.settings).resolve(token)
    if session is None:
        raise Unauthorized("the Studio session has expired or was ended; sign in again")
    return session.principal


async def _apply_rate_limit(request: HTTPConnection, runtime: Runtime, principal: Principal) -> None:
    bucket = principal.key_id or "basic-admin"
    decision = await runtime.rate_limiter.hit(bucket, principal.rate_limit)
    request.scope.setdefault("state", {})[RATE_LIMIT_STATE] = decision.headers()
    request.scope["state"]["key_id"] = bucket  # for the access log: which key, never the key
    if not decision.allowed:
        raise RateLimited(f"rate limit of {decision.limit} requests per minute exceeded", decision.reset_after)


async def get_principal(request: Request, runtime: RuntimeDep, db: DbSession) -> Principal:
    principal = await _authenticate(request, runtime, db)
    await _apply_rate_limit(request, runtime, principal)
    return principal


async def get_optional_principal(request: Request, runtime: RuntimeDep, db: DbSession) -> Principal | None:
    """The caller when credentials are sent, None when none are: for routes that also serve public apps.

    Credentials that are sent but wrong are still 401, so a bad or revoked key never
    quietly degrades to anonymous. Anonymous callers share one rate-limit window per
    client address (the route decides what, if anything, they may reach).
    """
    if "x-api-key" not in request.headers and "authorization" not in request.headers:
        host = request.client.host if request.client else "unknown"
        await _apply_rate_limit(request, runtime, Principal(workspace_id="", scopes=frozenset(), key_id=f"anonymous:{host}"))
        return None
    return await get_principal(request, runtime, db)


def has_credentials(connection: HTTPConnection) -> bool:
    return _credentials(connection) is not None


async def connection_principal(connection: HTTPConnection, runtime: Runtime, scope: str,
                               api_key: str | None = None) -> Principal:
    """The caller of a connection the dependencies cannot serve (a WebSocket), with the same checks.

    By the connection's credentials, or by `api_key` when it sent one in a message
    (browsers cannot set headers on a WebSocket). Rate-limited and scope-checked like a request.
    """
    async with runtime.sessionmaker() as db:
        if api_key is None:
            principal = await _authenticate(connection, runtime, db)
        else:
            principal = await KeyService(db).authenticate(api_key.strip())
            if principal is None:
                raise Unauthorized("invalid or revoked credentials")
    await _apply_rate_limit(connection, runtime, principal)
    if not principal.has_scope(scope):
        raise Forbidden(f"this API key lacks the '{scope}' scope")
    return principal


def require_scope(scope: str):
    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.has_scope(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope")
        return principal

    return dependency


async def get_instance_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_instance_admin:
        raise Forbidden("only the instance admin may manage workspaces")
    return principal


AnyKey = Annotated[Principal, Depends(get_principal)]
# None for a caller without credentials; the route must then check the object is public.
OptionalKey = Annotated[Principal | None, Depends(get_optional_principal)]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]
ChatbotKey = Annotated[Principal, Depends(require_scope("chatbot"))]
InstanceAdmin = Annotated[Principal, Depends(get_instance_admin)]
