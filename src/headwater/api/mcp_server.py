"""`/mcp`: every app of the caller's workspace as an MCP tool (CONTRACTS §9), on the official `mcp` SDK.

Streamable HTTP, in the same process and app as the HTTP dialects. The SDK's
session manager serves both protocol eras (the initialize handshake with
`Mcp-Session-Id` sessions, and the 2026 per-request envelope); it runs in the
server's lifespan.

Auth is decided here, per HTTP request, before the SDK sees anything, with the
same rules as every route (api/deps): an API key in `X-API-Key` or
`Authorization: Bearer`, the key's rate limit, and the `chatbot` scope (the
scope that runs apps). A revoked key stops working on its next request, even
inside an open session; a session is also bound to the key that opened it.

A tools/call is a run like any other (services/app_tools): its id is in the
result's `_meta` (`headwater/run_id`), tokens and node progress go out as
progress notifications when the client sent a progressToken, and a client that
cancels (notifications/cancelled, or closing the request on the 2026 wire)
stops the run through `stop_run`. Every failure is a tool result with
`isError: true` and a plain message, never a trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.routing import Route

from headwater import __version__
from headwater.api.deps import RATE_LIMIT_STATE, _apply_rate_limit, _authenticate
from headwater.api.responses import FastJSONResponse
from headwater.engine import events as ev
from headwater.errors import Forbidden, HeadwaterError, RateLimited
from headwater.runtime import Runtime
from headwater.services.app_tools import ToolOutcome, ToolRun, app_tools, start_tool_run
from headwater.services.keys import Principal
from headwater.services.stopping import stop_run

log = logging.getLogger(__name__)

PATH = "/mcp"
PRINCIPAL_SCOPE_KEY = "headwater.principal"
RUN_ID_META = "headwater/run_id"
SESSION_ID_META = "headwater/session_id"
STATUS_META = "headwater/status"
REQUIRED_SCOPE = "chatbot"
# How long a cancelled call waits for its run to record the stop before giving up on it.
STOP_WAIT_SECONDS = 10.0


class McpServer:
    """The SDK server, its session manager, and the authenticating ASGI endpoint mounted at /mcp."""

    def __init__(self) -> None:
        self.server: Server[Any] = Server(
            "headwater", version=__version__,
            instructions="Each tool runs one Headwater app; the run id is in the result's _meta.",
            on_list_tools=_list_tools, on_call_tool=_call_tool,
        )
        self.sessions = StreamableHTTPSessionManager(app=self.server)

    def install(self, app) -> None:
        # An object, not a function: Starlette then hands it the raw ASGI call (the SDK streams).
        app.router.routes.append(Route(PATH, endpoint=_AsgiEndpoint(self._endpoint),
                                       methods=["GET", "POST", "DELETE"]))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def _endpoint(self, scope, receive, send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        request = Request(scope, receive)
        try:
            async with runtime.sessionmaker() as db:
                principal = await _authenticate(request, runtime, db)
            await _apply_rate_limit(request, runtime, principal)
            if not principal.has_scope(REQUIRED_SCOPE):
                raise Forbidden(f"this API key lacks the '{REQUIRED_SCOPE}' scope")
        except HeadwaterError as exc:
            await _refusal(scope, exc)(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        # The SDK binds a session to the credential that opened it: another key presenting
        # its Mcp-Session-Id is told the session does not exist.
        scope["user"] = AuthenticatedUser(AccessToken(
            token="", client_id=principal.key_id or "basic-admin", scopes=sorted(principal.scopes)))
        await self.sessions.handle_request(scope, receive, send)


class _AsgiEndpoint:
    def __init__(self, handle) -> None:
        self.handle = handle

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)


def _refusal(scope, exc: HeadwaterError) -> FastJSONResponse:
    headers = dict(scope.get("state", {}).get(RATE_LIMIT_STATE) or {})
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="headwater"'
    return FastJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _caller(ctx) -> tuple[Runtime, Principal]:
    request: Request = ctx.request
    return request.app.state.runtime, request.scope[PRINCIPAL_SCOPE_KEY]


async def _list_tools(ctx, params) -> types.ListToolsResult:
    runtime, principal = _caller(ctx)
    tools = await app_tools(runtime, principal.workspace_id)
    return types.ListToolsResult(tools=[
        types.Tool(name=t.name, title=t.title, description=t.description, input_schema=t.input_schema)
        for t in tools
    ])


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    runtime, principal = _caller(ctx)
    try:
        run = await start_tool_run(runtime, principal.workspace_id, params.name, dict(params.arguments or {}))
    except HeadwaterError as exc:
        return _tool_error(exc.detail)
    except Exception:
        log.exception("MCP tools/call %s could not start", params.name)
        return _tool_error("internal error")
    wants_progress = bool(ctx.meta) and ctx.meta.get("progress_token") is not None
    driving = asyncio.ensure_future(_drive(run, ctx.session if wants_progress else None))
    try:
        # Shielded: a cancelled call stops the run through stop_run (below), which lets the
        # run record its own end, partial output kept, rather than dropping its task.
        outcome = await asyncio.shield(driving)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await _stop(runtime, principal, run, driving)
        raise
    except Exception:
        log.exception("MCP tools/call %s failed (run %s)", params.name, run.run_id)
        return _tool_error("internal error", run.run_id)
    return _result(outcome)


async def _drive(run: ToolRun, session) -> ToolOutcome:
    if session is None:
        return await run.collect()
    progress = _Progress(session)
    finished: ev.RunFinished | None = None
    async for event in run.events():
        match event.payload:
            case ev.RunStarted(run_id=run_id):  # first, so a client can follow or stop the run by id
                await progress.report(f"run {run_id} started")
            case ev.Token(text=text):
                await progress.report(text)
            case ev.NodeStarted(node_id=node_id, node_type=node_type):
                await progress.report(f"[{node_id}] {node_type} started")
            case ev.NodeFinished(node_id=node_id, status=status):
                await progress.report(f"[{node_id}] {status}")
            case ev.RunFinished() as payload:
                finished = payload
    return run.outcome_of(finished)


class _Progress:
    """Progress notifications with an increasing count; a client gone away only ends the reporting."""

    def __init__(self, session) -> None:
        self.session = session
        self.count = 0

    async def report(self, message: str) -> None:
        if self.session is None:
            return
        self.count += 1
        try:
            await self.session.report_progress(self.count, None, message)
        except Exception:  # noqa: BLE001 - the stream is closed; the run itself goes on
            self.session = None


async def _stop(runtime: Runtime, principal: Principal, run: ToolRun, driving: asyncio.Future) -> None:
    try:
        await stop_run(runtime, principal.workspace_id, run.run_id)
    except HeadwaterError:  # not recorded yet (a quick turn) or already ended: end it here
        driving.cancel()
    except Exception:
        log.exception("stopping run %s after an MCP cancellation failed", run.run_id)
        driving.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(driving, STOP_WAIT_SECONDS)


def _meta(outcome: ToolOutcome) -> dict[str, Any]:
    meta = {RUN_ID_META: outcome.run_id, STATUS_META: outcome.status}
    if outcome.session_id:
        meta[SESSION_ID_META] = outcome.session_id
    return meta


def _result(outcome: ToolOutcome) -> types.CallToolResult:
    meta = _meta(outcome)
    if outcome.status == "succeeded":
        structured = dict(outcome.outputs)
        if outcome.session_id:
            structured.setdefault("session_id", outcome.session_id)
        text = outcome.text or (orjson.dumps(outcome.outputs).decode() if outcome.outputs else "")
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured,
                                    _meta=meta)
    if outcome.status == "failed":
        failure = outcome.error
        message = f"the run failed ({failure.code}): {failure.message}" if failure else "the run failed"
    elif outcome.status == "waiting":
        message = (f"the run is waiting for human input; answer it with POST /v1/runs/{outcome.run_id}/input "
                   f"and follow it with GET /v1/runs/{outcome.run_id}")
    else:
        message = f"the run was {outcome.status}"
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True, _meta=meta)


def _tool_error(message: str, run_id: str | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True,
                                _meta={RUN_ID_META: run_id} if run_id else None)
