"""A run as its callers read it: the record plus the node-by-node trace built from its events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine import events as ev
from headwater.services.runs import run_kind, run_public
from headwater.store.flow_models import FlowRunState
from headwater.store.models import Run, RunEvent

_TRACE_TYPES = (ev.NODE_STARTED, ev.NODE_FINISHED, ev.HUMAN_INPUT_REQUIRED)


async def node_trace(db: AsyncSession, run_id: str) -> list[dict[str, Any]]:
    """One entry per node execution (iteration items included, with parent/index), in start order."""
    rows = await db.execute(
        select(RunEvent.type, RunEvent.data, RunEvent.created_at)
        .where(RunEvent.run_id == run_id, RunEvent.type.in_(_TRACE_TYPES))
        .order_by(RunEvent.seq)
    )
    entries: dict[tuple, dict[str, Any]] = {}
    for type_, data, created_at in rows:
        payload = ev.payload_from(type_, data)
        # A human_input_required event names no iteration item: pauses happen at the top level only.
        key = (payload.node_id, getattr(payload, "parent", None), getattr(payload, "index", None))
        entry = entries.get(key)
        if entry is None or (isinstance(payload, ev.NodeStarted) and entry["status"] != "waiting"):
            entry = entries[key] = {
                "node_id": payload.node_id, "node_type": getattr(payload, "node_type", None), "status": "running",
                "started_at": created_at, "finished_at": None, "elapsed_ms": None,
                "inputs": {}, "outputs": {}, "usage": None, "error": None,
            }
            if key[1] is not None:
                entry["parent"], entry["index"] = key[1], key[2]
        match payload:
            case ev.HumanInputRequired(prompt=prompt):
                entry["status"] = "waiting"
                entry["inputs"] = {"prompt": prompt}
            case ev.NodeFinished():
                entry.update(
                    status=payload.status, finished_at=created_at, elapsed_ms=payload.elapsed_ms,
                    inputs=payload.inputs or {}, outputs=payload.outputs or {}, usage=payload.usage,
                    error=payload.error,
                )
                if payload.branch is not None:
                    entry["branch"] = payload.branch
    return list(entries.values())


async def run_detail(db: AsyncSession, run: Run) -> dict[str, Any]:
    detail = run_public(run)
    state = await db.get(FlowRunState, run.id)
    detail["kind"] = await run_kind(db, run, state)
    detail["waiting"] = list(state.waiting or []) if state is not None and run.status == "waiting" else []
    detail["nodes"] = await node_trace(db, run.id)
    return detail
