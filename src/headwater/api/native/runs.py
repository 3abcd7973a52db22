"""Runs: start one (foreground, streamed, or in the background), answer a pause, stop, follow, read the trace.

`POST /v1/runs` is the native way to run any app, through the machinery every
dialect's execution routes use (FlowService: a chatbot runs as the graph its
config implies). `GET /v1/runs/{id}/stream` follows any run live and
`DELETE /v1/runs/{id}` stops any run, whichever process executes it.
"""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from headwater.api.deps import ChatbotKey, DbSession, RuntimeDep
from headwater.api.native.schemas import StrictModel
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import format_event, last_event_id_after, run_id_header, sse_response
from headwater.errors import InvalidInput
from headwater.services.apps import AppService
from headwater.services.flows import RUNNABLE_KINDS, FlowRequest, FlowService
from headwater.services.run_feed import follow
from headwater.services.run_trace import run_detail
from headwater.services.runs import RunService, run_public
from headwater.services.stopping import stop_run

router = APIRouter(prefix="/v1/runs", tags=["runs"])


class RunEventPublic(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class RunCreate(StrictModel):
    app_id: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    background: bool = False


class RunInput(StrictModel):
    message: str = Field(max_length=100_000)
    node_id: str | None = Field(default=None, max_length=64)
    background: bool = False


async def _detail(runtime, run_id: str, workspace_id: str) -> FastJSONResponse:
    """The run in full, named in `X-Run-Id` (the response of every route that ran it)."""
    async with runtime.sessionmaker() as db:
        detail = await run_detail(db, await RunService(db).get(workspace_id, run_id))
    return FastJSONResponse(detail, headers=run_id_header(run_id))


def _sse(events, run_id: str | None = None):
    async def frames():
        async with aclosing(events) as stream:
            async for event in stream:
                yield format_event(orjson.dumps(event.data), event=event.type, event_id=event.seq)

    return sse_response(frames(), run_id=run_id)


@router.post("")
async def create_run(body: RunCreate, principal: ChatbotKey, db: DbSession, runtime: RuntimeDep, stream: bool = False):
    if body.background and stream:
        raise InvalidInput("a run is either streamed or in the background, not both")
    snapshot = await AppService(db).snapshot_for_run(principal.workspace_id, body.app_id, body.version)
    await db.close()  # runs open their own sessions; don't hold this connection while they work
    kind = snapshot.app.kind
    if kind not in RUNNABLE_KINDS:
        raise InvalidInput(f"apps of kind '{kind}' are not run through /v1/runs")
    service = FlowService(runtime)
    request = FlowRequest(
        workspace_id=principal.workspace_id, snapshot=snapshot, inputs=body.inputs, source="native",
        session_id=body.session_id, user_id=body.user_id,
    )
    if body.background:
        run_id = await service.start_background(request)
        return FastJSONResponse({"id": run_id, "status": "queued"}, status_code=202, headers=run_id_header(run_id))
    execution = await service.start(request)
    if stream:
        return _sse(execution.events(), execution.run_id)
    await execution.collect()
    return await _detail(runtime, execution.run_id, principal.workspace_id)


@router.get("")
async def list_runs(principal: ChatbotKey, db: DbSession, app_id: str | None = None, limit: int = 50):
    return [run_public(r) for r in await RunService(db).list(principal.workspace_id, app_id, min(max(limit, 1), 500))]


@router.get("/{run_id}")
async def get_run(run_id: str, principal: ChatbotKey, db: DbSession):
    return await run_detail(db, await RunService(db).get(principal.workspace_id, run_id))


@router.get("/{run_id}/events", response_model=list[RunEventPublic])
async def list_run_events(run_id: str, principal: ChatbotKey, db: DbSession,
                          after: Annotated[int, Query(ge=0, le=2**62)] = 0):
    return await RunService(db).events(principal.workspace_id, run_id, after)


@router.post("/{run_id}/input")
async def answer_run(run_id: str, body: RunInput, principal: ChatbotKey, runtime: RuntimeDep, stream: bool = False):
    if body.background and stream:
        raise InvalidInput("a run is either streamed or in the background, not both")
    outcome = await FlowService(runtime).resume(
        principal.workspace_id, run_id, body.message, node_id=body.node_id, background=body.background,
    )
    if isinstance(outcome, str):
        return FastJSONResponse({"id": outcome, "status": "queued"}, status_code=202, headers=run_id_header(outcome))
    if stream:
        return _sse(outcome.events(), run_id)
    await outcome.collect()
    return await _detail(runtime, run_id, principal.workspace_id)


@router.get("/{run_id}/stream")
async def stream_run(run_id: str, principal: ChatbotKey, runtime: RuntimeDep,
                     last_event_id: str | None = Header(default=None)):
    """Any run's events as SSE (`id:` = seq): replayed from the start or after `Last-Event-ID`, then live."""
    followed = await follow(runtime, principal.workspace_id, run_id, last_event_id_after(last_event_id))
    return _sse(followed.events)


@router.delete("/{run_id}")
async def cancel_run(run_id: str, principal: ChatbotKey, runtime: RuntimeDep) -> Response:
    await stop_run(runtime, principal.workspace_id, run_id)
    return await _detail(runtime, run_id, principal.workspace_id)
