"""Group commit for runs: every write a run makes (its start, its event batches, its end) goes through here.

One writer per process and database. Whatever runs start, checkpoint or finish
while a write is in flight go into the next transaction, one multi-row
statement per table. Alone, a run's write is committed at once (no timer, no
added latency); under load, N runs cost one transaction instead of 2N or 3N.
Being the only writer of these rows in the process also keeps the SQLite
connections from queueing on the database's write lock, where each waiter
sleeps and retries (up to 100 ms a nap) instead of being handed the lock.

Each `write()` returns when its own rows are committed. A failed batch is
retried item by item, so one bad item (a thread's turn that lost its race,
say) cannot lose the others' records. Within a batch, items are applied in
order per table: sessions, new runs (a run that starts and ends in the same
write is inserted finished), their resumable state, the items' start hooks,
messages, finished runs, state updates, session touches, events, end hooks.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from headwater.store.db import insert_ignoring_duplicates
from headwater.store.flow_models import FlowRunState
from headwater.store.models import ChatSession, Message, Run, RunEvent

# More writes in the same transaction, by the caller (a thread's journal): (db) -> None.
WriteHook = Callable[[AsyncSession], Awaitable[None]]


@dataclass(slots=True)
class RunWrite:
    """One run's rows for one transaction; every part is optional."""

    run_id: str
    new_session: dict[str, Any] | None = None  # a `sessions` row: the conversation this run starts
    start: dict[str, Any] | None = None  # the `runs` row
    state: dict[str, Any] | None = None  # its `flow_run_states` row
    on_start: WriteHook | None = None  # after the rows above
    events: list[dict[str, Any]] = field(default_factory=list)  # `run_events` rows
    end: dict[str, Any] | None = None  # the `runs` columns to set (its end, or a pause)
    state_update: dict[str, Any] | None = None  # `flow_run_states` columns to set
    touch_session: dict[str, Any] | None = None  # {"workspace_id", "id", "updated_at"}
    messages: list[dict[str, Any]] = field(default_factory=list)  # the exchange's `messages` rows
    on_end: WriteHook | None = None  # last: it may read the events written above

    def size(self) -> int:
        return 1 + len(self.events) + len(self.messages)

    def merged(self, later: "RunWrite") -> "RunWrite":
        """This write and a later one of the same run as one (a start not yet written, and what followed it)."""
        assert later.run_id == self.run_id
        hooks = [hook for hook in (self.on_end, later.on_start, later.on_end) if hook is not None]
        return RunWrite(
            run_id=self.run_id, new_session=self.new_session or later.new_session, start=self.start or later.start,
            state=self.state or later.state, on_start=self.on_start, events=self.events + later.events,
            end={**(self.end or {}), **(later.end or {})} or None,
            state_update={**(self.state_update or {}), **(later.state_update or {})} or None,
            touch_session=later.touch_session or self.touch_session, messages=self.messages + later.messages,
            on_end=_chain(hooks) if hooks else None,
        )


class RunWriter:
    _by_engine: "WeakKeyDictionary[AsyncEngine, RunWriter]" = WeakKeyDictionary()

    def __init__(self, engine: AsyncEngine):
        # Weak, or the registry entry (keyed weakly by this engine) would never go away.
        self._engine = weakref.ref(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.pending: list[tuple[RunWrite, asyncio.Future]] = []
        self.draining: asyncio.Task | None = None

    @classmethod
    def of(cls, engine: AsyncEngine) -> "RunWriter":
        writer = cls._by_engine.get(engine)
        if writer is None:
            writer = cls._by_engine[engine] = cls(engine)
        return writer

    async def write(self, item: RunWrite) -> None:
        """Queue the item and return when it is committed (raises what its transaction raised)."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.draining is None or self.draining.done():
            self.draining = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self.pending:
            batch = self._next_batch()
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                for item, future in batch:
                    try:
                        await self._write([item])
                    except Exception as single:
                        _settle(future, single)
                    else:
                        _settle(future, None)
            else:
                for _, future in batch:
                    _settle(future, None)

    def _next_batch(self) -> list[tuple[RunWrite, asyncio.Future]]:
        # Bounded, because the statements' parameters are prepared on the event loop: a
        # thousand long streams ending together must not stall every other stream for that long.
        rows = count = 0
        for count, (item, _) in enumerate(self.pending, start=1):
            rows += item.size()
            if rows >= _BATCH_ROWS:
                break
        batch, self.pending = self.pending[:count], self.pending[count:]
        return batch

    async def _write(self, items: list[RunWrite]) -> None:
        # A run that starts and ends in one write is inserted finished: one statement, not two.
        run_rows = [_full_row(_runs, {**item.start, **(item.end or {})}) for item in items if item.start is not None]
        hooked = any(item.on_start is not None or item.on_end is not None for item in items)
        # A Core connection unless a hook needs the ORM: about a tenth of a millisecond less, every run.
        async with (self._sessions() if hooked else self._engine().connect()) as db:
            # Keyed, so two first calls naming the same new conversation both succeed.
            new_sessions = list({(s["workspace_id"], s["id"]): s for s in
                                 (item.new_session for item in items) if s is not None}.values())
            if new_sessions:
                # Another batch may have created the same client-named session meanwhile: keep it.
                await db.execute(insert_ignoring_duplicates(self._engine().dialect.name, _sessions), new_sessions)
            if run_rows:
                await db.execute(insert(_runs), run_rows)
            # A state inserted in this write is inserted as it ends up (no UPDATE after the INSERT).
            if states := [_full_row(_states, {**item.state, **(item.state_update or {})})
                          for item in items if item.state is not None]:
                await db.execute(insert(_states), states)
            for item in items:
                if item.on_start is not None:
                    await item.on_start(db)
            if messages := [row for item in items for row in item.messages]:
                await db.execute(insert(Message.__table__), messages)
            ends = [{"b_id": item.run_id, **item.end} for item in items if item.end is not None and item.start is None]
            for group in _by_columns(ends):
                await db.execute(_UPDATE_RUN, group)
            updates = [{"b_run_id": item.run_id, **item.state_update} for item in items
                       if item.state_update and item.state is None]
            for group in _by_columns(updates):
                await db.execute(_UPDATE_STATE, group)
            touches = [{"b_workspace_id": t["workspace_id"], "b_id": t["id"], "updated_at": t["updated_at"]}
                       for t in (item.touch_session for item in items) if t is not None]
            if touches:
                await db.execute(_TOUCH_SESSION, touches)
            if events := [row for item in items for row in item.events]:
                await db.execute(insert(RunEvent.__table__), events)
            for item in items:
                if item.on_end is not None:
                    await item.on_end(db)
            await db.commit()


def _chain(hooks: list[WriteHook]) -> WriteHook:
    async def run_all(db: AsyncSession) -> None:
        for hook in hooks:
            await hook(db)

    return run_all


def _by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by the columns they set: one executemany needs the same keys in every set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():  # the waiting caller was cancelled; its rows are written all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


_runs, _sessions, _states = Run.__table__, ChatSession.__table__, FlowRunState.__table__
# Executed with one parameter set per row; the SET clause is the other keys of each set.
_UPDATE_RUN = update(_runs).where(_runs.c.id == bindparam("b_id"))
_UPDATE_STATE = update(_states).where(_states.c.run_id == bindparam("b_run_id"))
_TOUCH_SESSION = update(_sessions).where(
    _sessions.c.workspace_id == bindparam("b_workspace_id"), _sessions.c.id == bindparam("b_id")
)
_BATCH_ROWS = 2000


def _full_row(table, row: dict[str, Any]) -> dict[str, Any]:
    """Every row of one multi-row INSERT must name the same columns: those without a default and
    not given (a run still going has its end's empty) are named as NULL."""
    return {**_NULLABLE[table.name], **row}


_NULLABLE = {table.name: {c.name: None for c in table.columns if c.default is None and c.nullable}
             for table in (_runs, _states)}
