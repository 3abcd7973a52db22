"""Apps as tools (the MCP server's business rules): which apps a key may call, their schemas, one call.

Every app of the caller's workspace is a tool named by its slug, unless its
config says `"mcp": false`. The input schema comes from the app: a chatbot
takes `message` (and `session_id`), a workflow or chatflow the inputs its start
node declares (a chatflow also `message`), an agent `input`. A call runs the
app through the same service as every dialect (FlowService), so
it is one run with a trace, stoppable like any other.

Bad arguments are `InvalidInput` raised before any run exists; a run that
fails is an outcome with `status="failed"`; the transport layer (api/mcp_server)
turns both into tool errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from headwater.engine import events as ev
from headwater.engine.events import Event
from headwater.engine.failures import RunFailure
from headwater.errors import InvalidInput, NotFound
from headwater.runtime import Runtime
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.flows import FlowExecution, FlowRequest, FlowService

SOURCE = "mcp"
_JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array"}
_SESSION_ID = {"type": "string", "maxLength": 200,
               "description": "Continue this conversation (the session_id of an earlier result)."}


@dataclass(frozen=True, slots=True)
class AppTool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    kind: str


@dataclass(slots=True)
class ToolOutcome:
    """How a call's run ended, in the terms a tool result needs."""

    run_id: str
    session_id: str | None
    status: str  # succeeded | failed | cancelled | waiting
    text: str
    outputs: dict[str, Any] = field(default_factory=dict)
    error: RunFailure | None = None


def offered(snapshot: AppSnapshot) -> bool:
    return (snapshot.version.config or {}).get("mcp") is not False


def tool_of(snapshot: AppSnapshot) -> AppTool:
    app = snapshot.app
    return AppTool(name=app.slug, title=app.name, description=app.description or app.name, input_schema=input_schema(snapshot),
                   kind=app.kind)


def input_schema(snapshot: AppSnapshot) -> dict[str, Any]:
    kind = snapshot.app.kind
    if kind == "chatbot":
        return _object({"message": {"type": "string", "description": "The user's message."},
                        "session_id": _SESSION_ID}, ["message"])
    if kind == "agent":
        return _object({"input": {"type": "string", "description": "The task or question for the agent."}},
                       ["input"])
    properties: dict[str, Any] = {}
    required: list[str] = []
    if kind == "chatflow":
        properties["message"] = {"type": "string", "description": "The user's message."}
        required.append("message")
    for spec in _start_inputs(snapshot):
        name = spec.get("name")
        if not isinstance(name, str) or (kind == "chatflow" and name == "query"):
            continue  # a chatflow's `query` is its message
        prop: dict[str, Any] = {}
        if spec.get("type", "string") in _JSON_TYPES:
            prop["type"] = spec.get("type", "string")
        if spec.get("description"):
            prop["description"] = spec["description"]
        if spec.get("default") is not None:
            prop["default"] = spec["default"]
        properties[name] = prop
        if spec.get("required") and spec.get("default") is None:
            required.append(name)
    if kind == "chatflow":
        properties["session_id"] = _SESSION_ID
    return _object(properties, required)


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _start_inputs(snapshot: AppSnapshot) -> list[dict[str, Any]]:
    for node in (snapshot.version.graph or {}).get("nodes", []):
        if isinstance(node, dict) and node.get("type") == "start":
            return [spec for spec in node.get("inputs", []) if isinstance(spec, dict)]
    return []


async def app_tools(runtime: Runtime, workspace_id: str) -> list[AppTool]:
    async with runtime.sessionmaker() as db:
        snapshots = await AppService(db).list_snapshots(workspace_id)
    return [tool_of(s) for s in snapshots if offered(s)]


class ToolRun:
    """One started call: its run id is known (and the run recorded) before it executes."""

    def __init__(self, kind: str, run_id: str, session_id: str | None, handle: FlowExecution):
        self.kind = kind
        self.run_id = run_id
        self.session_id = session_id
        self._handle: FlowExecution = handle

    def events(self) -> AsyncIterator[Event]:
        return self._handle.events()

    async def collect(self) -> ToolOutcome:
        """The whole run without progress (a quick run is written in one transaction)."""
        result = await self._handle.collect()
        status = "waiting" if result.waiting else result.status
        return self._outcome(status, result.outputs, result.error)

    def outcome_of(self, finished: ev.RunFinished | None) -> ToolOutcome:
        """The outcome of a streamed run from its run_finished (None: paused for human input)."""
        if finished is None:
            return self._outcome("waiting", {}, None)
        return self._outcome(finished.status, finished.outputs or {}, finished.error)

    def _outcome(self, status: str, outputs: dict[str, Any], error: RunFailure | None) -> ToolOutcome:
        outputs = dict(outputs or {})
        text = outputs.get("text") if isinstance(outputs.get("text"), str) else ""
        return ToolOutcome(self.run_id, self.session_id, status, text, outputs, error)


async def start_tool_run(runtime: Runtime, workspace_id: str, name: str, arguments: dict[str, Any]) -> ToolRun:
    """Check the arguments and start the app's run; InvalidInput/NotFound before any run exists."""
    async with runtime.sessionmaker() as db:
        try:
            snapshot = await AppService(db).snapshot_for_run(workspace_id, name)
        except NotFound:
            snapshot = None
    if snapshot is None or snapshot.app.slug != name or not offered(snapshot):
        raise NotFound(f"unknown tool '{name}'")
    kind = snapshot.app.kind
    session_id = _optional_string(arguments, "session_id")
    if kind == "agent":
        inputs = {"input": _required_string(arguments, "input")}
        message = inputs["input"]
    else:
        inputs = {k: v for k, v in arguments.items() if k not in ("message", "session_id")}
        message = _required_string(arguments, "message") if kind in ("chatbot", "chatflow") else None
    execution = await FlowService(runtime).start(FlowRequest(
        workspace_id=workspace_id, snapshot=snapshot, inputs=inputs, source=SOURCE, message=message,
        session_id=session_id,
    ))
    return ToolRun(kind, execution.run_id, execution.session_id, execution)


def _required_string(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if value is None:
        raise InvalidInput(f"input '{name}' is required")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"input '{name}' must be a non-empty string")
    return value


def _optional_string(arguments: dict[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > 200):
        raise InvalidInput(f"input '{name}' must be a string of at most 200 characters")
    return value
