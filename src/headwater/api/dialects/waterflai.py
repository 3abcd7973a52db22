"""Waterflai's execution routes (CONTRACTS §4): chatflows, workflows, and async executions.

Thin translation onto FlowService: `input_data` becomes the run's inputs (a
chatflow's message may be `query`, `message`, or `messages` as a string or an
OpenAI-style list whose last item is the user's turn); engine events become
Waterflai's `{"type", "timestamp", ...}` SSE objects. An execution id is the
run id, so `GET /v1/runs/{id}` shows the same run in full.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Header
from pydantic import ConfigDict, Field

from headwater.api.deps import ChatbotKey, DbSession, RuntimeDep
from headwater.api.dialects.completions import chat_completion, usage_object
from headwater.api.native.schemas import DialectRequest
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import format_event, last_event_id_after, run_id_header, sse_response
from headwater.engine import events as ev
from headwater.engine.events import Event
from headwater.errors import InvalidInput
from headwater.providers.base import ChatMessage
from headwater.services.apps import GRAPH_KINDS, AppService, AppSnapshot
from headwater.services.flows import FlowRequest, FlowResult, FlowService
from headwater.services.run_feed import follow, progress
from headwater.services.run_trace import node_trace
from headwater.services.stopping import stop_run

router = APIRouter(tags=["waterflai"])

EXECUTION_STATUS = {"queued": "PENDING", "running": "RUNNING", "waiting": "RUNNING", "succeeded": "COMPLETED",
                    "failed": "FAILED", "cancelled": "CANCELLED"}
_CONTROL_KEYS = ("messages", "message", "conversation_id", "user_id")


class ExecutionRequest(DialectRequest):
    model_config = ConfigDict(extra="ignore")

    input_data: dict[str, Any] = Field(default_factory=dict)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise InvalidInput("message content must be a string or a list of content parts")


def _split_messages(items: list[Any]) -> tuple[str, list[ChatMessage]]:
    if not items or not all(isinstance(m, dict) for m in items):
        raise InvalidInput("messages must be a non-empty list of {role, content}")
    if items[-1].get("role", "user") != "user":
        raise InvalidInput("the last message must have role 'user'")
    history = [ChatMessage(role=m["role"], content=_text_of(m.get("content")))
               for m in items[:-1] if m.get("role") in ("user", "assistant")]
    return _text_of(items[-1].get("content")), history


def flow_request(workspace_id: str, snapshot: AppSnapshot, input_data: dict[str, Any]) -> FlowRequest:
    message: str | None = None
    history: list[ChatMessage] | None = None
    for key in ("query", "messages", "message"):
        value = input_data.get(key)
        if isinstance(value, str):
            message = value
            break
        if isinstance(value, list):
            message, history = _split_messages(value)
            break
    conversation_id = input_data.get("conversation_id")
    user_id = input_data.get("user_id")
    for name, value in (("conversation_id", conversation_id), ("user_id", user_id)):
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise InvalidInput(f"{name} must be a string of at most 200 characters")
    inputs = {k: v for k, v in input_data.items() if k not in _CONTROL_KEYS}
    if message is not None:
        inputs["query"] = message
    return FlowRequest(
        workspace_id=workspace_id, snapshot=snapshot, inputs=inputs, source="waterflai", message=message,
        session_id=conversation_id, user_id=user_id, history=None if conversation_id else history,
    )


async def _snapshot(db, principal, app_id: str, kind: str | None) -> AppSnapshot:
    snapshot = await AppService(db).snapshot_for_run(principal.workspace_id, app_id)
    if kind is not None and snapshot.app.kind != kind:
        raise InvalidInput(f"'{app_id}' is a {snapshot.app.kind} app; this route runs {kind} apps")
    if snapshot.app.kind not in GRAPH_KINDS:
        raise InvalidInput(f"'{app_id}' is a {snapshot.app.kind} app; executions run chatflows and workflows")
    await db.close()
    return snapshot


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def waterflai_event(event: Event, kind: str) -> dict[str, Any] | None:
    """One engine event as a Waterflai stream object (None: not shown in this dialect)."""
    base = {"timestamp": _now()}
    match event.payload:
        case ev.RunStarted(run_id=run_id):
            return {"type": "execution_started", "execution_id": run_id, **base}
        case ev.NodeStarted() as started:
            return {"type": "node_started", **_node_fields(started), **base}
        case ev.NodeFinished() as finished:
            return {"type": "node_completed", **_node_fields(finished), "status": finished.status,
                    "outputs": finished.outputs, "elapsed_ms": finished.elapsed_ms, **base}
        case ev.Token(node_id=node_id, text=text):
            return {"type": "token", "content": text, "node_id": node_id, **base}
        case ev.Citations(citations=citations):
            return {"type": "citations", "citations": citations, **base}
        case ev.HumanInputRequired(node_id=node_id, prompt=prompt):
            return {"type": "human_input_required", "node_id": node_id, "prompt": prompt, **base}
        case ev.ErrorEvent(code=code, message=message):
            return {"type": "error", "message": message, "code": code, **base}
        case ev.RunFinished(status="failed"):
            return None  # the `error` object before it said what went wrong
        case ev.RunFinished(status="cancelled"):
            return {"type": "error", "message": "execution was cancelled", "code": "cancelled", **base}
        case ev.RunFinished() as finished:
            outputs = finished.outputs or {}
            output = outputs.get("text", "") if kind == "chatflow" else outputs
            return {"type": "execution_completed", "status": "completed", "output": output,
                    "usage": finished.usage, "elapsed_ms": finished.elapsed_ms, **base}
    return None


def _node_fields(node: ev.NodeStarted | ev.NodeFinished) -> dict[str, Any]:
    fields: dict[str, Any] = {"node_id": node.node_id, "node_type": node.node_type}
    if node.parent is not None:
        fields["parent"], fields["index"] = node.parent, node.index
    return fields


async def _frames(events, kind: str):
    async with aclosing(events) as stream:
        async for event in stream:
            payload = waterflai_event(event, kind)
            if payload is not None:
                yield format_event(orjson.dumps(payload), event_id=event.seq)


# -- synchronous execution ---------------------------------------------------------------------


def _chat_completion(result: FlowResult, snapshot: AppSnapshot) -> dict[str, Any]:
    return chat_completion(
        run_id=result.run_id, created=int(time.time()), model=snapshot.app.slug, text=result.text, reason="stop",
        usage=result.usage, conversation_id=result.session_id, execution_id=result.run_id, status=result.status,
        **({"waiting_for": result.waiting} if result.waiting else {}),
    )


@router.post("/execute_chatflow/{app_id}/execute")
async def execute_chatflow(app_id: str, body: ExecutionRequest, principal: ChatbotKey, db: DbSession,
                           runtime: RuntimeDep):
    snapshot = await _snapshot(db, principal, app_id, "chatflow")
    execution = await FlowService(runtime).start(flow_request(principal.workspace_id, snapshot, body.input_data))
    result = await execution.collect()
    if result.status == "failed":
        raise result.error.http_error(result.run_id)
    return FastJSONResponse(_chat_completion(result, snapshot), headers=run_id_header(result.run_id))


@router.post("/execute_chatflow/{app_id}/stream_execute")
async def stream_chatflow(app_id: str, body: ExecutionRequest, principal: ChatbotKey, db: DbSession,
                          runtime: RuntimeDep):
    snapshot = await _snapshot(db, principal, app_id, "chatflow")
    execution = await FlowService(runtime).start(flow_request(principal.workspace_id, snapshot, body.input_data))
    return sse_response(_frames(execution.events(), "chatflow"), run_id=execution.run_id)


@router.post("/execute_workflow/{app_id}/execute")
async def execute_workflow(app_id: str, body: ExecutionRequest, principal: ChatbotKey, db: DbSession,
                           runtime: RuntimeDep):
    snapshot = await _snapshot(db, principal, app_id, "workflow")
    execution = await FlowService(runtime).start(flow_request(principal.workspace_id, snapshot, body.input_data))
    result = await execution.collect()
    async with runtime.sessionmaker() as session:
        nodes = await node_trace(session, result.run_id)
    return FastJSONResponse({
        "execution_id": result.run_id, "status": _lower_status(result.status), "outputs": result.outputs,
        "node_results": nodes, "usage": usage_object(result.usage), "elapsed_ms": result.elapsed_ms,
        **({"error": result.error.to_data()} if result.error else {}),
        **({"waiting_for": result.waiting} if result.waiting else {}),
    }, headers=run_id_header(result.run_id))


def _lower_status(status: str) -> str:
    return {"succeeded": "completed"}.get(status, status)


@router.post("/execute_workflow/{app_id}/stream_execute")
async def stream_workflow(app_id: str, body: ExecutionRequest, principal: ChatbotKey, db: DbSession,
                          runtime: RuntimeDep):
    snapshot = await _snapshot(db, principal, app_id, "workflow")
    execution = await FlowService(runtime).start(flow_request(principal.workspace_id, snapshot, body.input_data))
    return sse_response(_frames(execution.events(), "workflow"), run_id=execution.run_id)


# -- asynchronous executions -------------------------------------------------------------------


@router.post("/v1/executions/{app_id}/async", status_code=202)
async def start_execution(app_id: str, body: ExecutionRequest, principal: ChatbotKey, db: DbSession,
                          runtime: RuntimeDep):
    snapshot = await _snapshot(db, principal, app_id, None)
    run_id = await FlowService(runtime).start_background(
        flow_request(principal.workspace_id, snapshot, body.input_data)
    )
    base = f"/v1/executions/{run_id}"
    return FastJSONResponse(
        {"execution_id": run_id, "status": "PENDING", "status_url": base, "stream_url": f"{base}/stream",
         "cancel_url": base},
        status_code=202, headers=run_id_header(run_id),
    )


@router.get("/v1/executions/{execution_id}")
async def execution_status(execution_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    found = await progress(runtime, principal.workspace_id, execution_id)
    run, status = found.run, EXECUTION_STATUS.get(found.run.status, "RUNNING")
    return {
        "execution_id": run.id, "status": status, "progress": found.fraction,
        "current_node": found.current_node, "completed_nodes": found.completed_nodes,
        "total_nodes": found.total_nodes, "final_output": run.outputs,
        "error_message": (run.error or {}).get("message"), "created_at": run.created_at,
        "started_at": run.started_at, "completed_at": run.finished_at,
        "retry_count": max(0, found.attempts - 1), "waiting_for": found.waiting,
    }


@router.get("/v1/executions/{execution_id}/stream")
async def stream_execution(execution_id: str, principal: ChatbotKey, runtime: RuntimeDep,
                           last_event_id: str | None = Header(default=None)):
    followed = await follow(runtime, principal.workspace_id, execution_id, last_event_id_after(last_event_id))
    return sse_response(_frames(followed.events, "workflow" if followed.kind == "workflow" else "chatflow"))


@router.delete("/v1/executions/{execution_id}")
async def cancel_execution(execution_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    await stop_run(runtime, principal.workspace_id, execution_id)
    found = await progress(runtime, principal.workspace_id, execution_id)
    return {"execution_id": execution_id, "status": EXECUTION_STATUS.get(found.run.status, "RUNNING")}
