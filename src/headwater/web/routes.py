"""The Studio page, its assets, and signing in and out.

Public by design (tests/security/test_route_inventory.py lists them): `/` (a
redirect), the page shell `/studio`, its static assets, and the sign-in route,
which checks credentials itself. None of them reads or reveals workspace data.
Reading the session or signing out needs the cookie; signing out, being a
state change, also needs the CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field, model_validator
from starlette.responses import RedirectResponse, Response

from headwater.api.deps import DbSession, RuntimeDep
from headwater.api.native.schemas import StrictModel
from headwater.api.responses import FastJSONResponse
from headwater.errors import Forbidden, NotFound, RateLimited, Unauthorized
from headwater.services.keys import KeyService
from headwater.services.studio_sessions import (
    COOKIE_NAME,
    CSRF_HEADER,
    ActiveSession,
    StudioSessionService,
    admin_password_matches,
    admin_user_principal,
    csrf_token_for,
    csrf_token_matches,
)
from headwater.web.assets import assets, version_tag

router = APIRouter(tags=["studio"])

# The page runs only its own scripts and styles and talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff"}
IMMUTABLE = "public, max-age=31536000, immutable"


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/studio", status_code=307)


@router.get("/studio", include_in_schema=False)
async def studio_page(request: Request) -> Response:
    page = assets()["index.html"]
    html = page.body.replace(b"{{version}}", version_tag().encode())
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/studio/assets/{version}/{name}", include_in_schema=False)
async def studio_asset(version: str, name: str, request: Request) -> Response:
    asset = assets().get(name)
    if asset is None or name == "index.html":
        raise NotFound("no such Studio file")
    # The page links the current version; an old page asking for an old version gets
    # today's file, revalidated rather than cached for good.
    headers = {**ASSET_HEADERS, "ETag": asset.etag,
               "Cache-Control": IMMUTABLE if version == version_tag() else "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=asset.content_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.content_type, headers=headers)


class SignIn(StrictModel):
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=1000)
    api_key: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_way(self):
        if (self.api_key is None) == (self.password is None):
            raise ValueError("sign in with either 'username' and 'password' or 'api_key'")
        return self


def _same_origin(request: Request) -> bool:
    """A browser names the page that sent a POST in Origin: it must be this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser (or a same-origin GET): nothing to check
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _session_body(csrf_token: str, session: ActiveSession) -> dict:
    principal = session.principal
    return {
        "csrf_token": csrf_token, "method": session.method, "key_name": session.key_name,
        "workspace_id": principal.workspace_id, "scopes": sorted(principal.scopes),
        "is_instance_admin": principal.is_instance_admin, "expires_at": session.expires_at,
    }


@router.post("/studio/api/session", status_code=201, tags=["studio"])
async def sign_in(body: SignIn, request: Request, db: DbSession, runtime: RuntimeDep) -> Response:
    """Sign in to the Studio with the admin user and password or an admin-scope key; sets the session cookie."""
    if not _same_origin(request):
        raise Forbidden("sign-in from another site is refused")
    host = request.client.host if request.client else "unknown"
    decision = await runtime.rate_limiter.hit(f"studio-sign-in:{host}", runtime.settings.studio_sign_in_per_minute)
    if not decision.allowed:
        raise RateLimited("too many sign-in attempts; wait a minute", decision.reset_after)
    if body.api_key is not None:
        principal = await KeyService(db).authenticate(body.api_key.strip())
        if principal is None:
            raise Unauthorized("this API key is not valid (or was deleted)")
        if not principal.is_admin:
            raise Forbidden("the Studio needs a key with the admin scope")
    else:
        if not admin_password_matches(runtime.settings, body.username or "", body.password or ""):
            raise Unauthorized("wrong user name or password")
        principal = admin_user_principal()
    sessions = StudioSessionService(db, runtime.settings)
    opened = await sessions.open(principal)
    # Read back as every later request will see it (and with the key's name, for the page).
    session = await sessions.resolve(opened.token)
    if session is None:  # pragma: no cover - only if the key was deleted in between
        raise Unauthorized("this API key is not valid (or was deleted)")
    response = FastJSONResponse(_session_body(opened.csrf_token, session), status_code=201)
    _set_cookie(response, request, opened.token, opened.expires_at)
    return response


async def _current_session(request: Request, db: DbSession, runtime: RuntimeDep) -> tuple[str, ActiveSession]:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        raise Unauthorized("not signed in to the Studio")
    session = await StudioSessionService(db, runtime.settings).resolve(token)
    if session is None:
        raise Unauthorized("the Studio session has expired or was ended; sign in again")
    return token, session


CurrentSession = Annotated[tuple[str, ActiveSession], Depends(_current_session)]


@router.get("/studio/api/session", tags=["studio"])
async def read_session(current: CurrentSession) -> dict:
    """Who is signed in, and the CSRF token the page sends with every state-changing request."""
    token, session = current
    return _session_body(csrf_token_for(token), session)


@router.delete("/studio/api/session", status_code=204, tags=["studio"])
async def sign_out(request: Request, current: CurrentSession, db: DbSession, runtime: RuntimeDep) -> Response:
    token, _ = current
    if not csrf_token_matches(token, request.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or wrong CSRF token: send the X-CSRF-Token header that signing in to the Studio gave")
    await StudioSessionService(db, runtime.settings).close(token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def _set_cookie(response: Response, request: Request, token: str, expires_at: datetime) -> None:
    max_age = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        COOKIE_NAME, token, max_age=max_age, expires=max_age, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )
