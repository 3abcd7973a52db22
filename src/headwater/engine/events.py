"""Engine events (CONTRACTS §3): one typed stream per run that every dialect maps.

Types: run_started, node_started, token, node_finished, citations,
human_input_required, run_finished, error. `seq` increases by one per event
within a run and doubles as the SSE event id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from headwater.store.models import utcnow

RUN_STARTED = "run_started"
NODE_STARTED = "node_started"
TOKEN = "token"
NODE_FINISHED = "node_finished"
CITATIONS = "citations"
HUMAN_INPUT_REQUIRED = "human_input_required"
RUN_FINISHED = "run_finished"
ERROR = "error"


@dataclass(slots=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "data": self.data, "created_at": self.created_at.isoformat()}


class EventLog:
    """Numbers a run's events and keeps those not yet written to the store."""

    def __init__(self, run_id: str, start_seq: int = 0):
        self.run_id = run_id
        self._seq = start_seq
        self._unsaved: list[Event] = []

    def emit(self, type_: str, data: dict[str, Any]) -> Event:
        self._seq += 1
        event = Event(self._seq, type_, data)
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


def encode_event(event: Event) -> bytes:
    """The bus's wire form of an event: its `as_dict()` as JSON (data is JSON already, as in the store)."""
    return orjson.dumps(event.as_dict())


def decode_event(raw: bytes) -> Event:
    """The inverse of `encode_event`; created_at comes back tz-aware (UTC when it was written naive)."""
    fields = orjson.loads(raw)
    created_at = datetime.fromisoformat(fields["created_at"])
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return Event(fields["seq"], fields["type"], fields["data"], created_at)
