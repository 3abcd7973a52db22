"""The journal of a conversation thread: what it shows, stamped in the order it became visible.

A thread shows messages (the session's rows), logs (its agent runs' thoughts, tool
calls, plan and steps), stats (one per finished turn) and documents (files of
messages). Clients poll them by time (`chatData?afterTimestamp=`), so a poll must
never return an item twice nor miss one, even for items written in the same
millisecond or by writers in other processes whose clocks disagree.

Why a journal with a per-thread clock: every item gets a `stamp` in the very
transaction that makes it visible, from the thread's own clock
(`threads.last_stamp`: microseconds since the epoch, at least the wall clock and
+1 over the last item), taken under the thread's row lock (the first statement of
the transaction updates the thread row; SQLite serialises writers anyway). So
stamps are unique per thread and commit order is stamp order: once a reader has
seen stamp S, every item it has not seen yet is committed later and stamped above
S. `afterTimestamp` is then an exact cursor: the stamp in seconds, as `_createdAt`
(a float of microsecond resolution, exactly representable at today's times).
Ordering by (created_at, id) instead would need a composite cursor the API cannot
carry, and would still miss an item committed late with an earlier time.

Who writes: the thread service, when a turn starts (the user's message, in the
run's own transaction) and when the user answers a pause; FlowService's end of a
run segment (`record_run_end`: the question of a pause, or the reply and the
turn's stats, in the transaction that records the run's status); and readers,
which journal the running turn's new log events on their way (`catch_up`), so
logs show while a run goes on without the engine knowing about threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine import events as ev
from headwater.services.runs import RunRecord
from headwater.store.models import Message, RunEvent, new_id, utcnow
from headwater.store.thread_models import Thread, ThreadItem

MESSAGE, LOG, STAT, DOCUMENT = "message", "log", "stat", "document"
LOG_EVENT_TYPES = (ev.AGENT_THOUGHT, ev.TOOL_CALL, ev.AGENT_PLAN, ev.AGENT_STEP, ev.HUMAN_INPUT_REQUIRED, ev.ERROR)
PREVIEW_CHARS = 300


def now_stamp() -> int:
    return time.time_ns() // 1000


def stamp_seconds(stamp: int) -> float:
    """A stamp as `_createdAt`: seconds, exact to the microsecond (the inverse of `seconds_stamp`)."""
    return stamp / 1_000_000


def seconds_stamp(seconds: float) -> int:
    return round(seconds * 1_000_000)


class Journal:
    """The journal of one thread inside a transaction that holds the thread's row lock (see `open_journal`)."""

    def __init__(self, db: AsyncSession, thread_id: str, workspace_id: str, last_stamp: int, journal_seq: int,
                 active_run_id: str | None):
        self.db = db
        self.thread_id = thread_id
        self.workspace_id = workspace_id
        self.last_stamp = last_stamp
        self.journal_seq = journal_seq
        self.active_run_id = active_run_id
        self._rows: list[dict[str, Any]] = []

    def _stamp(self) -> int:
        self.last_stamp = max(self.last_stamp + 1, now_stamp())
        return self.last_stamp

    def _add(self, kind: str, item_id: str, *, run_id: str | None = None, message_id: str | None = None,
             data: dict[str, Any] | None = None) -> None:
        self._rows.append({"thread_id": self.thread_id, "id": item_id, "kind": kind, "stamp": self._stamp(),
                           "run_id": run_id, "message_id": message_id, "data": data or {}})

    async def add_message(self, *, message_id: str, role: str, content: str, run_id: str | None, app_id: str | None,
                          meta: dict[str, Any] | None = None, files: list[dict[str, Any]] | None = None) -> None:
        """A message of the conversation (a session row) and, after it, a document per attached file."""
        meta = dict(meta or {})
        if files:
            meta["files"] = files
        await self.db.execute(insert(Message).values(
            id=message_id, workspace_id=self.workspace_id, session_id=self.thread_id, app_id=app_id, run_id=run_id,
            role=role, content=content, meta=meta, created_at=utcnow(),
        ))
        self._add(MESSAGE, message_id, run_id=run_id, message_id=message_id)
        for file in files or ():
            self._add(DOCUMENT, document_key(message_id, file["id"]), run_id=run_id, message_id=message_id,
                      data=file)

    async def catch_up(self) -> None:
        """Journal the active run's log events not journaled yet (committed ones, in seq order)."""
        if self.active_run_id is None:
            return
        rows = await self.db.execute(
            select(RunEvent.seq, RunEvent.type, RunEvent.data, RunEvent.created_at)
            .where(RunEvent.run_id == self.active_run_id, RunEvent.seq > self.journal_seq,
                   RunEvent.type.in_(LOG_EVENT_TYPES))
            .order_by(RunEvent.seq)
        )
        for seq, type_, data, created_at in rows:
            rendered = log_entry(self.active_run_id, seq, ev.payload_from(type_, data), created_at.timestamp())
            if rendered is not None:
                self._add(LOG, rendered["id"], run_id=self.active_run_id, data=rendered)
            self.journal_seq = seq

    async def close(self) -> None:
        """Write the items and the thread's clock and position (still inside the caller's transaction)."""
        if self._rows:
            await self.db.execute(insert(ThreadItem), self._rows)
            self._rows = []
        await self.db.execute(update(Thread).where(Thread.id == self.thread_id).values(
            last_stamp=self.last_stamp, journal_seq=self.journal_seq, active_run_id=self.active_run_id,
            updated_at=utcnow()))


async def open_journal(db: AsyncSession, thread_id: str) -> Journal | None:
    """Lock the thread's row (the transaction's first write) and read its journal position; None if it is gone."""
    row = (await db.execute(
        update(Thread).where(Thread.id == thread_id).values(last_stamp=Thread.last_stamp)
        .returning(Thread.workspace_id, Thread.last_stamp, Thread.journal_seq, Thread.active_run_id)
    )).first()
    if row is None:
        return None
    return Journal(db, thread_id, row.workspace_id, row.last_stamp, row.journal_seq, row.active_run_id)


def document_key(message_id: str, file_id: str) -> str:
    return f"{message_id}:{file_id}"


# -- the hooks of a run's own transactions -------------------------------------------------------


async def record_run_end(db: AsyncSession, sys: dict[str, Any], run: RunRecord, status: str, outputs: dict[str, Any],
                         usage: dict[str, int], elapsed_ms: int, waiting: list[dict[str, Any]]) -> None:
    """A turn's segment ended: journal its last logs, then its question (paused) or its reply and stats."""
    journal = await open_journal(db, sys["thread_id"])
    if journal is None or journal.active_run_id != run.id:  # the thread was deleted, or moved on (a stale executor)
        return
    await journal.catch_up()
    common = {"run_id": run.id, "app_id": run.app_id}
    if status == "waiting":
        for item in waiting:
            await journal.add_message(message_id=new_id(), role="assistant", content=str(item.get("prompt") or ""),
                                      meta={"question": True, "node_id": item.get("node_id")}, **common)
    else:
        if status in ("succeeded", "cancelled"):
            meta: dict[str, Any] = {"usage": usage}
            if status == "cancelled":
                meta["partial"] = True
            if outputs.get("citations"):
                meta["citations"] = outputs["citations"]
            await journal.add_message(message_id=sys.get("reply_message_id") or new_id(), role="assistant",
                                      content=str(outputs.get("text", "")), meta=meta, **common)
        counts = dict((await db.execute(
            select(RunEvent.type, func.count()).where(RunEvent.run_id == run.id,
                                                      RunEvent.type.in_((ev.MODEL_CALL, ev.TOOL_CALL)))
            .group_by(RunEvent.type)
        )).all())
        journal._add(STAT, f"{run.id}:stats", run_id=run.id, data={
            "id": f"{run.id}:stats", "runId": run.id, "status": status,
            "promptTokens": usage.get("prompt_tokens", 0), "completionTokens": usage.get("completion_tokens", 0),
            "totalTokens": usage.get("total_tokens", 0), "elapsedMs": elapsed_ms,
            "modelCalls": counts.get(ev.MODEL_CALL, 0), "toolCalls": counts.get(ev.TOOL_CALL, 0),
        })
    await journal.close()


def log_entry(run_id: str, seq: int, payload: ev.EventPayload, at: float) -> dict[str, Any] | None:
    """One log of the thread from one engine event (None: not a log)."""
    base = {"id": f"{run_id}:{seq}", "runId": run_id, "seq": seq, "timestamp": at, "level": "info"}
    match payload:
        case ev.AgentThought(node_id=node_id, step=step, text=text):
            return {**base, "type": "thought", "nodeId": node_id, "step": step, "message": text}
        case ev.ToolCalled() as call:
            outcome = f"error: {call.error}" if call.error else (call.result or "")
            return {**base, "type": "tool_call", "nodeId": call.node_id, "step": call.step,
                    "level": "error" if call.error else "info",
                    "message": f"{call.tool}: {outcome[:PREVIEW_CHARS]}", "tool": call.tool,
                    "arguments": call.arguments, "result": call.result, "error": call.error,
                    "elapsedMs": call.elapsed_ms}
        case ev.AgentPlan(node_id=node_id, steps=steps):
            listed = "\n".join(f"{n}. {step}" for n, step in enumerate(steps, start=1))
            return {**base, "type": "plan", "nodeId": node_id, "message": f"Plan:\n{listed}", "steps": steps}
        case ev.AgentStep(node_id=node_id, index=index, total=total, title=title, status=status):
            return {**base, "type": "step", "nodeId": node_id, "message": f"Step {index}/{total} {status}: {title}",
                    "step": index, "total": total, "title": title, "status": status}
        case ev.HumanInputRequired(node_id=node_id, prompt=prompt):
            return {**base, "type": "human_input", "nodeId": node_id, "message": prompt}
        case ev.ErrorEvent(code=code, message=message):
            return {**base, "type": "error", "level": "error", "code": code, "message": message}
    return None


class ItemRow(NamedTuple):
    id: str
    kind: str
    stamp: int
    run_id: str | None
    message_id: str | None
    data: dict[str, Any]


class MessageRow(NamedTuple):
    id: str
    role: str
    content: str
    meta: dict[str, Any]
    run_id: str | None
    created_at: datetime


@dataclass(slots=True)
class JournalRow:
    """An item as read back: the journal row, and for a message its session row."""

    item: ItemRow
    message: MessageRow | None

    @property
    def created_at(self) -> float:
        return stamp_seconds(self.item.stamp)


_items, _messages = ThreadItem.__table__, Message.__table__
# Columns, not ORM objects: a poll of a long thread reads a thousand rows.
_READ_ITEMS = (
    select(_items.c.id, _items.c.kind, _items.c.stamp, _items.c.run_id, _items.c.message_id, _items.c.data,
           _messages.c.id.label("m_id"), _messages.c.role, _messages.c.content, _messages.c.meta,
           _messages.c.run_id.label("m_run_id"), _messages.c.created_at)
    .select_from(_items.outerjoin(_messages, and_(_items.c.kind == MESSAGE, _messages.c.id == _items.c.message_id)))
    .order_by(_items.c.stamp)
)


async def read_items(db: AsyncSession, thread_id: str, *, after_stamp: int = 0, kinds: tuple[str, ...] | None = None
                     ) -> list[JournalRow]:
    """The thread's items stamped after `after_stamp`, in stamp order (messages with their rows)."""
    query = _READ_ITEMS.where(_items.c.thread_id == thread_id, _items.c.stamp > after_stamp)
    if kinds is not None:
        query = query.where(_items.c.kind.in_(kinds))
    rows = []
    for r in await db.execute(query):
        message = (MessageRow(r.m_id, r.role, r.content, r.meta or {}, r.m_run_id, _aware(r.created_at))
                   if r.m_id is not None else None)
        rows.append(JournalRow(ItemRow(r.id, r.kind, r.stamp, r.run_id, r.message_id, r.data or {}), message))
    return rows


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def has_unjournaled_logs(db: AsyncSession, active_run_id: str | None, journal_seq: int) -> bool:
    if active_run_id is None:
        return False
    found = await db.scalar(
        select(RunEvent.seq).where(RunEvent.run_id == active_run_id, RunEvent.seq > journal_seq,
                                   RunEvent.type.in_(LOG_EVENT_TYPES)).limit(1)
    )
    return found is not None
