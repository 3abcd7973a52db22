"""Every failure leaves the server as `{"detail": "<message>"}` with a fitting status, never a trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from headwater.api.responses import FastJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater.api.deps import RATE_LIMIT_STATE
from headwater.api.sse import run_id_header
from headwater.errors import HeadwaterError, RateLimited

log = logging.getLogger("headwater.api")


def _response(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> FastJSONResponse:
    merged = dict(request.scope.get("state", {}).get(RATE_LIMIT_STATE) or {})
    merged.update(headers or {})
    return FastJSONResponse({"detail": detail}, status_code=status, headers=merged)


def describe_validation_error(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{location}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    async def _headwater(request: Request, exc: HeadwaterError):
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))} if isinstance(exc, RateLimited) else None
        if exc.status_code == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="headwater"'}
        if exc.run_id is not None:
            headers = {**(headers or {}), **run_id_header(exc.run_id)}
        return _response(request, exc.status_code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _response(request, 422, describe_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _response(request, exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(request, 500, "internal server error")
