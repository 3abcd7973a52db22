"""Run records and their node-by-node traces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from headwater.api.deps import ChatbotKey, DbSession
from headwater.services.runs import RunService, run_public

router = APIRouter(prefix="/v1/runs", tags=["runs"])


class RunEventPublic(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


@router.get("")
async def list_runs(principal: ChatbotKey, db: DbSession, app_id: str | None = None, limit: int = 50):
    return [run_public(r) for r in await RunService(db).list(principal.workspace_id, app_id, min(max(limit, 1), 500))]


@router.get("/{run_id}")
async def get_run(run_id: str, principal: ChatbotKey, db: DbSession):
    return run_public(await RunService(db).get(principal.workspace_id, run_id))


@router.get("/{run_id}/events", response_model=list[RunEventPublic])
async def list_run_events(run_id: str, principal: ChatbotKey, db: DbSession, after: int = 0):
    return await RunService(db).events(principal.workspace_id, run_id, after)
