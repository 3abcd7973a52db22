"""Where an agent paused for human input: its last checkpoint that the run's pause made durable.

An agent that asks the user emits an `agent_checkpoint` (its conversation and
progress) and pauses; the run then ends this segment `waiting` with a
`human_input_required` for the node, in one transaction. The checkpoint that
counts is the last one before the node's last `human_input_required`: a later one
belongs to a segment that crashed before its pause was recorded, and the answer
given is not an answer to its question.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.engine import events as ev
from headwater.store.models import RunEvent

if TYPE_CHECKING:
    from headwater.engine.context import NodeContext


async def load_checkpoint(ctx: "NodeContext") -> dict[str, Any] | None:
    async with ctx.run.runtime.sessionmaker() as db:
        rows = await db.execute(
            select(RunEvent.type, RunEvent.data)
            .where(RunEvent.run_id == ctx.run.run_id,
                   RunEvent.type.in_((ev.AGENT_CHECKPOINT, ev.HUMAN_INPUT_REQUIRED)))
            .order_by(RunEvent.seq)
        )
        latest: dict[str, Any] | None = None
        confirmed: dict[str, Any] | None = None
        for type_, data in rows:
            if data.get("node_id") != ctx.node_id:
                continue
            if type_ == ev.AGENT_CHECKPOINT:
                latest = data.get("state")
            else:
                confirmed = latest
    return confirmed
