"""How every run ends, whatever ended it: its last events, its record's final columns, its exchange.

A run's executor (services.flows: chatbot turns, chatflows, workflows, agents) and
a run ended by somebody else (services.run_end: stopped while queued or waiting,
or its executor died) both finish through `RunOutcome`: the same `error` +
`run_finished` events, the same final columns of the run record, and, for a
conversation, the same two messages (the user's, then the reply, written together
so a failed run leaves no half-written exchange).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater.engine import events as ev
from headwater.engine.failures import RunFailure
from headwater.store.models import new_id

# Statuses whose reply is kept in the conversation (a cancelled one marked partial).
EXCHANGE_STATUSES = ("succeeded", "cancelled")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: str  # succeeded | failed | cancelled
    outputs: dict[str, Any]
    usage: dict[str, int]
    elapsed_ms: int
    error: RunFailure | None = None
    finish_reason: str | None = None  # a model's, when the run is one model call

    def events(self) -> list[ev.EventPayload]:
        """The run's last events: what went wrong (when something did), then its end."""
        ended = ev.RunFinished(status=self.status, outputs=self.outputs, usage=self.usage,
                               elapsed_ms=self.elapsed_ms, error=self.error, finish_reason=self.finish_reason)
        return [ev.ErrorEvent.of(self.error), ended] if self.error is not None else [ended]

    def run_columns(self, now: datetime) -> dict[str, Any]:
        """The run record's final columns (its owner lets go: nothing executes it any more)."""
        return {"status": self.status, "outputs": self.outputs, "usage": self.usage,
                "error": self.error.to_data() if self.error else None, "elapsed_ms": self.elapsed_ms,
                "finished_at": now, "owner_id": None}

    @property
    def keeps_exchange(self) -> bool:
        return self.status in EXCHANGE_STATUSES


def with_partial_mark(outputs: dict[str, Any], status: str) -> dict[str, Any]:
    """A cancelled run's outputs, and a failed one's that had said something, say they are partial
    (what was produced before the stop or the failure is kept)."""
    partial = status == "cancelled" or (status == "failed" and bool(outputs.get("text")))
    return {**outputs, "partial": True} if partial else outputs


@dataclass(frozen=True, slots=True)
class Exchange:
    """One turn of a conversation: the user's message and the run's reply."""

    workspace_id: str
    session_id: str
    app_id: str | None
    run_id: str
    question: str
    asked_at: datetime
    reply_id: str | None = None  # when the caller handed the reply's id out in advance
    question_meta: dict[str, Any] | None = None

    def rows(self, outcome: RunOutcome, reply: str, now: datetime, *, model: str | None = None,
             citations: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The two `messages` rows of this exchange (the reply marked partial when the run was cancelled)."""
        common = {"workspace_id": self.workspace_id, "session_id": self.session_id, "app_id": self.app_id,
                  "run_id": self.run_id}
        reply_meta: dict[str, Any] = {"usage": outcome.usage}
        if model is not None:
            reply_meta["model"] = model
        if outcome.status == "cancelled":
            reply_meta["partial"] = True
        if citations:
            reply_meta["citations"] = citations
        return [
            {**common, "id": new_id(), "role": "user", "content": self.question, "meta": self.question_meta or {},
             "created_at": self.asked_at},
            {**common, "id": self.reply_id or new_id(), "role": "assistant", "content": reply, "meta": reply_meta,
             "created_at": now},
        ]
