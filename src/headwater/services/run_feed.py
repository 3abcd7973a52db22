"""Reading runs from any process: following one live, and how far one has come.

`follow()` is what every stream of an existing run uses (`GET /v1/runs/{id}/stream`,
Waterflai's `/v1/executions/{id}/stream`): the run's events from the store, then
from the bus, whichever process executes it. `progress()` summarises a run for
status polling (Waterflai's execution status).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from headwater.engine.bus import follow_run
from headwater.engine.events import Event, stored_event
from headwater.services.implied_graphs import run_graph
from headwater.services.run_trace import node_trace
from headwater.services.runs import TERMINAL_STATUSES, RunService, run_kind
from headwater.store.flow_models import FlowRunState
from headwater.store.job_models import Job
from headwater.store.models import AppVersion, Run, RunEvent

if TYPE_CHECKING:
    from headwater.runtime import Runtime


@dataclass(slots=True)
class FollowedRun:
    run_id: str
    kind: str  # chatbot | chatflow | workflow
    events: AsyncIterator[Event]


@dataclass(slots=True)
class RunProgress:
    run: Run
    kind: str
    completed_nodes: int
    total_nodes: int
    current_node: str | None
    attempts: int
    waiting: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        if self.run.status == "succeeded":
            return 1.0
        return round(self.completed_nodes / self.total_nodes, 3) if self.total_nodes else 0.0

    @property
    def created_at(self) -> datetime:
        return self.run.created_at


async def follow(runtime: "Runtime", workspace_id: str, run_id: str, after_seq: int = 0) -> FollowedRun:
    """The run's events after `after_seq` until it ends; 404 when it is not the workspace's."""
    async with runtime.sessionmaker() as db:
        run = await RunService(db).get(workspace_id, run_id)
        state = await db.get(FlowRunState, run.id)
        kind = await run_kind(db, run, state)

    async def load_after(seq: int) -> list[Event]:
        async with runtime.sessionmaker() as db:
            rows = await db.execute(
                select(RunEvent.seq, RunEvent.type, RunEvent.data, RunEvent.created_at)
                .where(RunEvent.run_id == run_id, RunEvent.seq > seq).order_by(RunEvent.seq)
            )
            return [stored_event(*row) for row in rows]

    async def has_ended() -> bool:
        async with runtime.sessionmaker() as db:
            status = await db.scalar(select(Run.status).where(Run.id == run_id))
        return status is None or status in TERMINAL_STATUSES

    return FollowedRun(run_id, kind, follow_run(runtime.bus, run_id, after_seq, load_after, has_ended))


async def last_seq(runtime: "Runtime", run_id: str) -> int:
    """The run's last event so far (0 before its first): where a follower that wants only what comes next starts."""
    async with runtime.sessionmaker() as db:
        stored = await db.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)) or 0
    return max(stored, await runtime.bus.last_seq(run_id))


async def progress(runtime: "Runtime", workspace_id: str, run_id: str) -> RunProgress:
    async with runtime.sessionmaker() as db:
        run = await RunService(db).get(workspace_id, run_id)
        state = await db.get(FlowRunState, run.id)
        kind = await run_kind(db, run, state)
        nodes = [n for n in await node_trace(db, run.id) if "parent" not in n]
        total = await _total_nodes(db, run, kind)
        job = await db.get(Job, state.job_id) if state is not None and state.job_id else None
    current = next((n["node_id"] for n in reversed(nodes) if n["status"] == "running"), None)
    waiting = list(state.waiting or []) if state is not None and run.status == "waiting" else []
    if current is None and waiting:
        current = waiting[0]["node_id"]
    return RunProgress(
        run=run, kind=kind,
        completed_nodes=sum(1 for n in nodes if n["status"] == "succeeded"), total_nodes=total,
        current_node=current, attempts=job.attempts if job is not None else 0, waiting=waiting,
    )


async def _total_nodes(db, run: Run, kind: str) -> int:
    if run.app_id is None:
        return 1
    version = await db.scalar(
        select(AppVersion).where(AppVersion.app_id == run.app_id, AppVersion.version == run.app_version)
    )
    if version is None:
        return 0
    graph = run_graph(kind, version)
    return len(graph.nodes) if graph is not None else 0
