"""Run records and their persisted event trace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine.events import Event
from headwater.errors import NotFound
from headwater.store.flow_models import FlowRunState
from headwater.store.models import App, Run, RunEvent

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
LIVE_STATUSES = ("queued", "running", "waiting")


@dataclass(slots=True)
class RunRecord:
    """What executing a run reads of its `runs` row: a plain copy, not an ORM object (building one
    costs ~30 µs, and a chat turn builds its record from the row it is about to insert)."""

    id: str
    workspace_id: str
    app_id: str | None
    session_id: str | None
    status: str
    created_at: datetime
    started_at: datetime | None = None
    elapsed_ms: int | None = None

    @classmethod
    def of(cls, run: Run) -> "RunRecord":
        return cls(run.id, run.workspace_id, run.app_id, run.session_id, run.status, run.created_at,
                   run.started_at, run.elapsed_ms)


def event_rows(run_id: str, events: list[Event]) -> list[dict[str, Any]]:
    """The `run_events` rows of a batch of a run's events (the store's side of the event codec)."""
    return [{"run_id": run_id, "seq": e.seq, "type": e.type, "data": e.data, "created_at": e.created_at}
            for e in events]


async def run_kind(db: AsyncSession, run: Run, state: FlowRunState | None) -> str:
    """The kind of app the run ran: its resumable state's, else its app's (a run executed by a request
    keeps no resumable state unless it paused)."""
    if state is not None:
        return state.kind
    kind = await db.scalar(select(App.kind).where(App.id == run.app_id)) if run.app_id else None
    return kind or "chatbot"


async def save_events(db: AsyncSession, run_id: str, events: list[Event]) -> None:
    """One multi-row INSERT for a batch: token streams produce many small events."""
    if events:
        await db.execute(insert(RunEvent), event_rows(run_id, events))


class RunService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def get(self, workspace_id: str, run_id: str) -> Run:
        run = await self.db.scalar(select(Run).where(Run.workspace_id == workspace_id, Run.id == run_id))
        if run is None:
            raise NotFound("run not found")
        return run

    async def events(self, workspace_id: str, run_id: str, after_seq: int = 0) -> list[RunEvent]:
        await self.get(workspace_id, run_id)
        rows = await self.db.scalars(
            select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.seq > after_seq).order_by(RunEvent.seq)
        )
        return list(rows)

    async def list(self, workspace_id: str, app_id: str | None = None, limit: int = 50) -> list[Run]:
        query = select(Run).where(Run.workspace_id == workspace_id)
        if app_id:
            query = query.where(Run.app_id == app_id)
        return list(await self.db.scalars(query.order_by(Run.created_at.desc()).limit(limit)))


def run_public(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "app_id": run.app_id,
        "app_version": run.app_version,
        "session_id": run.session_id,
        "status": run.status,
        "source": run.source,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "usage": run.usage,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "elapsed_ms": run.elapsed_ms,
    }
