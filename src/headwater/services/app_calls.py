"""One app calling another of its workspace (the agent's `run_app` tool): a run of its own, in the foreground.

The called app runs as any run does (recorded, followable, stoppable by id) but in
the caller's task: stopping the caller cancels it too. `depth` counts the apps
above it, so an agent cannot call apps (or itself through another) without end.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from headwater.errors import InvalidInput

if TYPE_CHECKING:
    from headwater.runtime import Runtime

SOURCE = "agent"


async def call_app(runtime: "Runtime", workspace_id: str, caller_app_id: str, target: str, message: str,
                   inputs: dict[str, Any], depth: int) -> str:
    """The called app's answer as text (a workflow's outputs as JSON); InvalidInput when it cannot be called."""
    from headwater.services.apps import AppService
    from headwater.services.flows import FlowRequest, FlowService

    async with runtime.sessionmaker() as db:
        snapshot = await AppService(db).snapshot_for_run(workspace_id, target)
    if snapshot.app.id == caller_app_id:
        raise InvalidInput("an app cannot call itself")
    execution = await FlowService(runtime).start(FlowRequest(
        workspace_id=workspace_id, snapshot=snapshot, inputs={"query": message, **inputs}, source=SOURCE,
        message=message or None, call_depth=depth,
    ))
    outcome = await execution.collect()
    if outcome.status == "waiting":
        raise InvalidInput(f"app '{target}' asks for human input, which an app call cannot give")
    if outcome.status != "succeeded":
        raise InvalidInput(f"app '{target}' {outcome.status}: {outcome.error.message if outcome.error else ''}")
    if snapshot.app.kind == "workflow":
        return json.dumps(outcome.outputs, ensure_ascii=False, default=str)
    return outcome.text
