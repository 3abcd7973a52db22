"""Request dependencies: who is calling (auth), rate limits, and a database session.

Authorisation is decided per route by these dependencies, never by matching
path prefixes, so no spelling of a path (case, slashes, encoding) can skip it.
No request header other than the credentials themselves grants anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import Forbidden, RateLimited, Unauthorized
from headwater.runtime import Runtime
from headwater.services.keys import KeyService, Principal
from headwater.services.workspaces import DEFAULT_WORKSPACE_ID

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


def _credentials(request: Request) -> tuple[str, str] | None:
    """('key', secret) or ('basic', 'user:password') from the request, if any."""
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
    return None


async def _authenticate(request: Request, runtime: Runtime, db: AsyncSession) -> Principal:
    credentials = _credentials(request)
    if credentials is None:
        raise Unauthorized("missing credentials: send X-API-Key or Authorization: Bearer <key>")
    kind, secret = credentials
    if kind == "basic":
        principal = _basic_admin(runtime, secret)
    else:
        principal = await KeyService(db).authenticate(secret)
    if principal is None:
        raise Unauthorized("invalid or revoked credentials")
    return principal


def _basic_admin(runtime: Runtime, user_password: str) -> Principal | None:
    settings = runtime.settings
    if settings.admin_password is None:
        return None
    user, _, password = user_password.partition(":")
    user_ok = hmac.compare_digest(user.encode(), settings.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.admin_password.get_secret_value().encode())
    if not (user_ok and password_ok):
        return None
    return Principal(workspace_id=DEFAULT_WORKSPACE_ID, scopes=frozenset({"admin"}), is_instance_admin=True)


async def _apply_rate_limit(request: Request, runtime: Runtime, principal: Principal) -> None:
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
