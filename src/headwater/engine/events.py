"""Engine events (CONTRACTS §3): one typed stream per run that every dialect maps.

An `Event` is a run's `seq` (increasing by one per event within a run; it
doubles as the SSE event id), when it happened, and a typed payload: one
frozen dataclass per event type below. Dialects `match` on the payload types;
the store and the bus keep the payload's `data` (its JSON object, the form
CONTRACTS §3 gives) through the one codec at the end of this module.

Payload fields without a default are always in `data`; the others only when
set, so each type's JSON stays what it was before the payloads were typed.
A failure (`error` of node_finished and run_finished) is a `RunFailure`, kept
as its `to_data()` object.

Beyond CONTRACTS §3, an `agent` node reports its work: `agent_thought`,
`tool_call` (arguments, result or error, elapsed ms), `model_call` (tokens),
`agent_plan`, `agent_step` (progress through the plan) and, when it pauses for
a human, `agent_checkpoint` (what it needs to go on where it stopped).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from headwater.engine.failures import RunFailure
from headwater.store.models import utcnow

RUN_STARTED = "run_started"
NODE_STARTED = "node_started"
TOKEN = "token"
NODE_FINISHED = "node_finished"
CITATIONS = "citations"
HUMAN_INPUT_REQUIRED = "human_input_required"
RUN_FINISHED = "run_finished"
ERROR = "error"
AGENT_THOUGHT = "agent_thought"
TOOL_CALL = "tool_call"
MODEL_CALL = "model_call"
AGENT_PLAN = "agent_plan"
AGENT_STEP = "agent_step"
AGENT_CHECKPOINT = "agent_checkpoint"

JSONObject = dict[str, Any]


class EventPayload:
    """What happened; subclasses are the event types, each a frozen keyword-only dataclass."""

    __slots__ = ()
    TYPE: ClassVar[str]
    # (field name, always written) per subclass, filled by _payload below.
    _WIRE_FIELDS: ClassVar[tuple[tuple[str, bool], ...]] = ()
    _FAILURE_FIELDS: ClassVar[tuple[str, ...]] = ()

    @property
    def type(self) -> str:
        return self.TYPE

    def to_data(self) -> JSONObject:
        return {name: value.to_data() if isinstance(value, RunFailure) else value
                for name, always in self._WIRE_FIELDS if (value := getattr(self, name)) is not None or always}


_PAYLOAD_TYPES: dict[str, type[EventPayload]] = {}


def _payload(cls: type) -> type:
    """Make `cls` a frozen keyword-only dataclass and register it under its TYPE."""
    cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
    cls._WIRE_FIELDS = tuple((f.name, f.default is MISSING and f.default_factory is MISSING) for f in fields(cls))
    # Fields holding a RunFailure (kept as its JSON object); a tool call's `error` is plain text.
    cls._FAILURE_FIELDS = tuple(f.name for f in fields(cls) if "RunFailure" in str(f.type))
    _PAYLOAD_TYPES[cls.TYPE] = cls
    return cls


@_payload
class RunStarted(EventPayload):
    TYPE: ClassVar[str] = RUN_STARTED
    run_id: str
    app_id: str | None
    session_id: str | None
    message_id: str | None = None  # a chatbot turn: the id its answer gets
    kind: str | None = None  # a graph run: chatflow or workflow
    resumed: bool | None = None  # a graph run continuing after a pause or an interruption
    total_nodes: int | None = None


@_payload
class NodeStarted(EventPayload):
    TYPE: ClassVar[str] = NODE_STARTED
    node_id: str
    node_type: str
    model: str | None = None
    parent: str | None = None  # inside an iteration: the iteration node and the item's index
    index: int | None = None


@_payload
class Token(EventPayload):
    TYPE: ClassVar[str] = TOKEN
    node_id: str | None
    text: str


@_payload
class NodeFinished(EventPayload):
    TYPE: ClassVar[str] = NODE_FINISHED
    node_id: str
    node_type: str
    status: str  # succeeded | failed | cancelled
    outputs: Any
    elapsed_ms: int
    usage: JSONObject | None
    inputs: JSONObject | None = None
    error: RunFailure | None = None
    branch: str | None = None  # a condition node: the branch taken
    parent: str | None = None
    index: int | None = None


@_payload
class Citations(EventPayload):
    TYPE: ClassVar[str] = CITATIONS
    citations: list[JSONObject]
    node_id: str | None = None


@_payload
class HumanInputRequired(EventPayload):
    TYPE: ClassVar[str] = HUMAN_INPUT_REQUIRED
    node_id: str
    prompt: str


@_payload
class RunFinished(EventPayload):
    TYPE: ClassVar[str] = RUN_FINISHED
    status: str  # succeeded | failed | cancelled
    outputs: Any
    usage: JSONObject
    elapsed_ms: int
    error: RunFailure | None
    finish_reason: str | None = None  # a chatbot turn: why the model stopped


@_payload
class ErrorEvent(EventPayload):
    TYPE: ClassVar[str] = ERROR
    code: str
    message: str
    node_id: str | None = None

    @classmethod
    def of(cls, failure: RunFailure) -> "ErrorEvent":
        return cls(code=failure.code, message=failure.message, node_id=failure.node_id)


# -- an agent node's work (engine/nodes/agent.py) --------------------------------------------


@_payload
class AgentThought(EventPayload):
    """What the model said it is doing before it used tools."""

    TYPE: ClassVar[str] = AGENT_THOUGHT
    node_id: str
    step: int
    text: str


@_payload
class ToolCalled(EventPayload):
    """One tool call, once it is over: `result` when it worked, `error` when not (`cancelled` on a stop)."""

    TYPE: ClassVar[str] = TOOL_CALL
    node_id: str
    step: int
    call_id: str
    tool: str
    arguments: Any
    elapsed_ms: int
    result: str | None = None
    error: str | None = None


@_payload
class ModelCalled(EventPayload):
    """One model call of an agent: its tokens and time, and how many tools it asked for."""

    TYPE: ClassVar[str] = MODEL_CALL
    node_id: str
    step: int
    model: str
    usage: JSONObject
    elapsed_ms: int
    finish_reason: str | None = None
    tool_calls: int = 0


@_payload
class AgentPlan(EventPayload):
    """The steps an `actionplan` agent will carry out, in order."""

    TYPE: ClassVar[str] = AGENT_PLAN
    node_id: str
    steps: list[str]


@_payload
class AgentStep(EventPayload):
    """Progress through the plan: step `index` (1-based) of `total` is `running` or `done`."""

    TYPE: ClassVar[str] = AGENT_STEP
    node_id: str
    index: int
    total: int
    title: str
    status: str


@_payload
class AgentCheckpoint(EventPayload):
    """Everything an agent paused for human input needs to go on where it stopped (its conversation)."""

    TYPE: ClassVar[str] = AGENT_CHECKPOINT
    node_id: str
    state: JSONObject


@dataclass(frozen=True, slots=True)
class UnknownEvent(EventPayload):
    """A stored event of a type this version does not know: kept as it was, shown by no dialect."""

    event_type: str
    raw: JSONObject

    @property
    def type(self) -> str:
        return self.event_type

    def to_data(self) -> JSONObject:
        return self.raw


TERMINAL_PAYLOADS = (RunFinished,)


@dataclass(slots=True)
class Event:
    seq: int
    payload: EventPayload
    created_at: datetime = field(default_factory=utcnow)

    @property
    def type(self) -> str:
        return self.payload.type

    @property
    def data(self) -> JSONObject:
        return self.payload.to_data()

    def as_dict(self) -> JSONObject:
        return {"seq": self.seq, "type": self.type, "data": self.data, "created_at": self.created_at.isoformat()}


class EventLog:
    """Numbers a run's events and keeps those not yet written to the store."""

    def __init__(self, run_id: str, start_seq: int = 0):
        self.run_id = run_id
        self._seq = start_seq
        self._unsaved: list[Event] = []

    def emit(self, payload: EventPayload) -> Event:
        self._seq += 1
        event = Event(self._seq, payload)
        self._unsaved.append(event)
        return event

    def take_unsaved(self) -> list[Event]:
        events, self._unsaved = self._unsaved, []
        return events

    def restore_unsaved(self, events: list[Event]) -> None:
        """Put back a batch whose write failed, ahead of anything emitted since."""
        self._unsaved[:0] = events

    @property
    def last_seq(self) -> int:
        return self._seq


# -- the codec: the one way events become JSON (store rows, bus messages) and back ------------

def payload_from(type_: str, data: JSONObject) -> EventPayload:
    """The typed payload of a stored event; unknown keys are dropped, a missing always-field reads None."""
    cls = _PAYLOAD_TYPES.get(type_)
    if cls is None:
        return UnknownEvent(type_, data)
    fields_ = {name: data.get(name) for name, always in cls._WIRE_FIELDS if always or name in data}
    for name in cls._FAILURE_FIELDS:
        if name in fields_:
            fields_[name] = RunFailure.from_data(fields_[name])
    return cls(**fields_)


def stored_event(seq: int, type_: str, data: JSONObject, created_at: datetime) -> Event:
    """An event as read back from a store row."""
    return Event(seq, payload_from(type_, data), created_at)


def encode_event(event: Event) -> bytes:
    """The bus's wire form of an event: its `as_dict()` as JSON (data is JSON already, as in the store)."""
    return orjson.dumps(event.as_dict())


def decode_event(raw: bytes) -> Event:
    """The inverse of `encode_event`; created_at comes back tz-aware (UTC when it was written naive)."""
    fields_ = orjson.loads(raw)
    created_at = datetime.fromisoformat(fields_["created_at"])
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return stored_event(fields_["seq"], fields_["type"], fields_["data"], created_at)
