"""The chat playground and workflows (CONTRACTS §6): a "workflow" is a conversation thread with an agent app.

Thin translation onto ThreadService. `start` opens a workflow (with `appId`, or the
workspace's default agent) or continues one (`workflowId`): the input starts a turn
in the background, or answers the question the workflow waits on. `workflowMode`
picks the agent's mode for the workflow's turns (the app's own mode otherwise).
`chatData` is the unified feed for polling: every item carries `id` and
`_createdAt`, and `afterTimestamp` returns exactly the items not seen yet when the
client sends back the greatest `_createdAt` it got, unchanged (the thread
journal's stamps; see services/thread_journal.py). Times are Unix seconds.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from headwater.api.deps import ChatbotKey, RuntimeDep
from headwater.api.native.schemas import StrictModel
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import run_id_header
from headwater.errors import InvalidInput
from headwater.runtime import Runtime
from headwater.services.thread_journal import LOG, MESSAGE, JournalRow, seconds_stamp
from headwater.services.threads import ThreadService, ThreadView, Turn

router = APIRouter(tags=["playground"])
DIALECT = "playground"
MODES = {"actionplan": "Actionplan", "react": "React"}
STATUS = {None: "completed", "queued": "running", "running": "running", "waiting": "waiting",
          "succeeded": "completed", "cancelled": "stopped", "failed": "error"}


class UserInput(StrictModel):
    input: str = Field(min_length=1, max_length=100_000)
    files: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)


class WorkflowUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=50)


def _service(runtime: Runtime) -> ThreadService:
    return ThreadService(runtime, DIALECT)


def _mode(given: str | None) -> str | None:
    if given is None or given == "":
        return None
    mode = given.strip().lower()
    if mode not in MODES:
        raise InvalidInput("workflowMode must be Actionplan or React")
    return mode


async def workflow_public(service: ThreadService, view: ThreadView) -> dict[str, Any]:
    thread = view.thread
    ids = await service.item_ids(thread.id)
    progress = await service.progress(view)
    public = {
        "id": thread.id, "userId": thread.user_id, "appId": thread.app_id,
        "status": STATUS.get(view.run_status, "running"), "mode": MODES.get(thread.mode or "", None),
        "name": thread.name, "description": thread.description, "tags": thread.tags, "metadata": thread.meta,
        "messageIds": ids[MESSAGE], "logIds": ids[LOG], "currentStep": progress.current_step,
        "progress": progress.progress, "runId": thread.active_run_id,
        "createdAt": thread.created_at.timestamp(), "updatedAt": thread.updated_at.timestamp(),
    }
    if view.run_status == "cancelled":
        public["stoppedAt"] = thread.updated_at.timestamp()
    return public


def message_public(row: JournalRow, workflow_id: str) -> dict[str, Any]:
    message = row.message
    assert message is not None
    meta = message.meta or {}
    return {"id": message.id, "workflowId": workflow_id, "role": message.role, "content": message.content,
            "files": meta.get("files", []), "runId": message.run_id, "question": bool(meta.get("question")),
            "timestamp": message.created_at.timestamp(), "_createdAt": row.created_at}


def item_public(row: JournalRow, workflow_id: str) -> dict[str, Any]:
    extra = {"messageId": row.item.message_id} if row.item.message_id else {}
    return {**row.item.data, **extra, "workflowId": workflow_id, "_createdAt": row.created_at}


# -- the playground ------------------------------------------------------------------------------


@router.post("/api/chat/playground/start")
async def start(body: UserInput, principal: ChatbotKey, runtime: RuntimeDep,
                workflowId: str | None = Query(default=None, max_length=200),  # noqa: N803 - the seed's names
                workflowMode: str | None = Query(default=None, max_length=20),  # noqa: N803
                appId: str | None = Query(default=None, max_length=200)):  # noqa: N803
    service = _service(runtime)
    mode = _mode(workflowMode)
    workspace_id = principal.workspace_id
    if workflowId:
        view = await service.get(workspace_id, workflowId)
        if appId and appId != view.thread.app_id:
            raise InvalidInput("a workflow keeps its app; start a new workflow for another")
        if mode and mode != view.thread.mode:
            await service.update(workspace_id, workflowId, {"mode": mode})
        turn = await _continue(service, workspace_id, view, body)
    else:
        app_id = appId or await service.default_agent(workspace_id)
        view = await service.create(
            workspace_id, app_id, name=body.input.strip()[:80], mode=mode, meta=body.metadata,
            user_id=principal.key_id, kinds=("agent",), pin_app_mode=True,
        )
        turn = await service.send(workspace_id, view.id, body.input, files=body.files)
    view = await service.get(workspace_id, view.id)
    return FastJSONResponse(await workflow_public(service, view), headers=run_id_header(turn.run_id))


async def _continue(service: ThreadService, workspace_id: str, view: ThreadView, body: UserInput) -> Turn:
    """A waiting workflow takes the input as the answer to its question; any other starts a new turn."""
    if view.run_status == "waiting":
        if body.files:
            raise InvalidInput("the workflow waits for an answer to its question: send it as text, without files")
        return await service.answer(workspace_id, view.id, body.input)
    return await service.send(workspace_id, view.id, body.input, files=body.files)


@router.post("/api/chat/playground/{workflow_id}/stop")
async def stop(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    view = await service.stop(principal.workspace_id, workflow_id)
    return await workflow_public(service, view)


@router.get("/api/chat/playground/{workflow_id}/chatData")
async def chat_data(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep,
                    afterTimestamp: float | None = None):  # noqa: N803 - the seed's name
    # Bounded above too: a stamp past the year 5000 overflowed the store's 64-bit integers (a 500).
    if afterTimestamp is not None and (not math.isfinite(afterTimestamp) or not 0 <= afterTimestamp < 1e11):
        raise InvalidInput("afterTimestamp must be a Unix time in seconds")
    after = seconds_stamp(afterTimestamp) if afterTimestamp else 0
    data = await _service(runtime).chat_data(principal.workspace_id, workflow_id, after)
    return {"messages": [message_public(row, workflow_id) for row in data.messages],
            "logs": [item_public(row, workflow_id) for row in data.logs],
            "stats": [item_public(row, workflow_id) for row in data.stats],
            "documents": [item_public(row, workflow_id) for row in data.documents]}


# -- workflows -----------------------------------------------------------------------------------


@router.get("/api/workflows/")
async def list_workflows(principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    return [await workflow_public(service, view) for view in await service.list(principal.workspace_id)]


@router.get("/api/workflows/{workflow_id}")
async def get_workflow(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    return await workflow_public(service, await service.get(principal.workspace_id, workflow_id))


@router.put("/api/workflows/{workflow_id}")
async def update_workflow(workflow_id: str, body: WorkflowUpdate, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    changes = body.model_dump(exclude_none=True)
    view = await service.update(principal.workspace_id, workflow_id, changes)
    return await workflow_public(service, view)


@router.delete("/api/workflows/{workflow_id}")
async def delete_workflow(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    await _service(runtime).delete(principal.workspace_id, workflow_id)
    return {"id": workflow_id, "message": "Workflow and associated data deleted successfully"}


@router.get("/api/workflows/{workflow_id}/status")
async def workflow_status(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    await service.refresh(workflow_id)
    view = await service.get(principal.workspace_id, workflow_id)
    progress = await service.progress(view)
    return {"id": workflow_id, "status": STATUS.get(view.run_status, "running"),
            "currentStep": progress.current_step, "progress": progress.progress,
            "updatedAt": view.thread.updated_at.timestamp()}


@router.get("/api/workflows/{workflow_id}/logs")
async def workflow_logs(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep,
                        logId: str | None = Query(default=None, max_length=100)):  # noqa: N803
    rows = await _service(runtime).items(principal.workspace_id, workflow_id, LOG, logId)
    return [item_public(row, workflow_id) for row in rows]


@router.get("/api/workflows/{workflow_id}/messages")
async def workflow_messages(workflow_id: str, principal: ChatbotKey, runtime: RuntimeDep,
                            messageId: str | None = Query(default=None, max_length=100)):  # noqa: N803
    rows = await _service(runtime).items(principal.workspace_id, workflow_id, MESSAGE, messageId)
    return [message_public(row, workflow_id) for row in rows]


@router.delete("/api/workflows/{workflow_id}/messages/{message_id}")
async def delete_message(workflow_id: str, message_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    await _service(runtime).delete_message(principal.workspace_id, workflow_id, message_id)
    return {"workflowId": workflow_id, "messageId": message_id, "message": "Message deleted successfully"}


@router.delete("/api/workflows/{workflow_id}/messages/{message_id}/files/{file_id}")
async def delete_file(workflow_id: str, message_id: str, file_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    await _service(runtime).delete_file(principal.workspace_id, workflow_id, message_id, file_id)
    return {"workflowId": workflow_id, "messageId": message_id, "fileId": file_id,
            "message": "File reference deleted successfully"}
