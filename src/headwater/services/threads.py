"""Conversation threads: a session of an app that runs its turns in the background (FlowGen chats, playground workflows).

A thread is a session (same id) of a chatbot, chatflow or agent app, plus a
`threads` row. Its messages are the session's messages; its logs the agent events
of its runs; its stats one per finished turn; its documents the files of its
messages; all listed by the thread's journal (services/thread_journal.py).

A turn is a background run (the job queue: it survives the request, runs in any
worker, resumes after a restart) started with `FlowService` on the thread's session,
so memory, human-input pauses and stops work as for every run. One turn at a time:
the run's own transaction claims the thread (`active_run_id`) and refuses (409)
while the previous turn is queued, running or waiting. The thread's status is its
active run's. Every dialect filters by workspace and by its own dialect, so another
workspace's thread (or the other dialect's) is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine import events as ev
from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.services import thread_journal
from headwater.services.apps import AppService
from headwater.services.chatbot_config import DEFAULT_MODEL
from headwater.services.flows import FlowRequest, FlowService
from headwater.services.runs import LIVE_STATUSES, RunRecord
from headwater.services.stopping import stop_run
from headwater.services.thread_journal import DOCUMENT, LOG, MESSAGE, JournalRow
from headwater.store.models import App, ChatSession, Message, Run, RunEvent, new_id, utcnow
from headwater.store.thread_models import Thread, ThreadItem

if TYPE_CHECKING:
    from headwater.runtime import Runtime

THREAD_KINDS = ("chatbot", "chatflow", "agent")
DEFAULT_AGENT_SLUG = "default-agent"
DEFAULT_AGENT_CONFIG = {"mode": "actionplan", "model": DEFAULT_MODEL, "tools": ["calculator", "http_request",
                                                                                 "human_input"]}


@dataclass(slots=True)
class ThreadView:
    thread: Thread
    run_status: str | None  # the active run's, None before the first turn
    app_kind: str

    @property
    def id(self) -> str:
        return self.thread.id

    @property
    def live(self) -> bool:
        return self.run_status in LIVE_STATUSES


@dataclass(slots=True)
class Turn:
    run_id: str
    message_id: str


@dataclass(slots=True)
class ChatData:
    messages: list[JournalRow] = field(default_factory=list)
    logs: list[JournalRow] = field(default_factory=list)
    stats: list[JournalRow] = field(default_factory=list)
    documents: list[JournalRow] = field(default_factory=list)


@dataclass(slots=True)
class StepProgress:
    current_step: str | None
    progress: int | None  # percent, None when not known (no plan)


class ThreadService:
    def __init__(self, runtime: "Runtime", dialect: str):
        self.runtime = runtime
        self.dialect = dialect

    # -- threads -----------------------------------------------------------------------------

    async def create(self, workspace_id: str, app_ref: str, *, name: str = "", description: str = "",
                     tags: list[str] | None = None, mode: str | None = None, meta: dict[str, Any] | None = None,
                     user_id: str | None = None, kinds: tuple[str, ...] = THREAD_KINDS,
                     pin_app_mode: bool = False) -> ThreadView:
        """A new thread with the app. `mode` fixes the agent's mode for its turns; with `pin_app_mode` and
        no mode, the app's mode of now is fixed (otherwise each turn uses the app's mode of its time)."""
        async with self.runtime.sessionmaker() as db:
            snapshot = await AppService(db).snapshot(workspace_id, app_ref)
            app = snapshot.app
            if app.kind not in kinds:
                raise InvalidInput(f"'{app_ref}' is a {app.kind} app; this conversation needs "
                                   f"{' or '.join(f'a {kind}' for kind in kinds)} app")
            if mode is None and pin_app_mode and app.kind == "agent":
                mode = (snapshot.version.config or {}).get("mode")
            thread = Thread(id=new_id(), workspace_id=workspace_id, app_id=app.id, dialect=self.dialect,
                            name=name or app.name, description=description, tags=list(tags or []), mode=mode,
                            meta=dict(meta or {}), user_id=user_id, last_stamp=0, journal_seq=0)
            db.add(ChatSession(workspace_id=workspace_id, id=thread.id, app_id=app.id, user_id=user_id))
            db.add(thread)
            await db.commit()
            return ThreadView(thread, None, app.kind)

    async def get(self, workspace_id: str, thread_id: str) -> ThreadView:
        async with self.runtime.sessionmaker() as db:
            return await self._view(db, workspace_id, thread_id)

    async def _view(self, db: AsyncSession, workspace_id: str, thread_id: str) -> ThreadView:
        views = await self._views(db, workspace_id, Thread.id == thread_id)
        if not views:
            raise NotFound("conversation not found")
        return views[0]

    async def list(self, workspace_id: str) -> list[ThreadView]:
        async with self.runtime.sessionmaker() as db:
            return await self._views(db, workspace_id)

    async def _views(self, db: AsyncSession, workspace_id: str, *conditions) -> list[ThreadView]:
        rows = await db.execute(
            select(Thread, Run.status, App.kind)
            .join(App, App.id == Thread.app_id)
            .outerjoin(Run, Run.id == Thread.active_run_id)
            .where(Thread.workspace_id == workspace_id, Thread.dialect == self.dialect, *conditions)
            .order_by(Thread.created_at)
        )
        return [ThreadView(thread, status, kind) for thread, status, kind in rows]

    async def update(self, workspace_id: str, thread_id: str, changes: dict[str, Any]) -> ThreadView:
        async with self.runtime.sessionmaker() as db:
            await self._view(db, workspace_id, thread_id)
            await db.execute(update(Thread).where(Thread.id == thread_id).values(**changes, updated_at=utcnow()))
            await db.commit()
            return await self._view(db, workspace_id, thread_id)

    async def delete(self, workspace_id: str, thread_id: str) -> None:
        """The thread and everything it showed: messages, runs (their events: the logs), journal, session."""
        view = await self.get(workspace_id, thread_id)
        await self._stop_if_live(workspace_id, view)
        async with self.runtime.sessionmaker() as db:
            # Runs before the thread's row, in the order a run's end takes them (its row, then the thread's).
            await db.execute(delete(Run).where(Run.workspace_id == workspace_id, Run.session_id == thread_id))
            if await thread_journal.open_journal(db, thread_id) is None:
                return
            await db.execute(delete(Message).where(Message.workspace_id == workspace_id,
                                                   Message.session_id == thread_id))
            await db.execute(delete(ThreadItem).where(ThreadItem.thread_id == thread_id))
            await db.execute(delete(Thread).where(Thread.id == thread_id))
            await db.execute(delete(ChatSession).where(ChatSession.workspace_id == workspace_id,
                                                       ChatSession.id == thread_id))
            await db.commit()
        ThreadSignals.of(self.runtime).notify(thread_id)

    # -- turns -------------------------------------------------------------------------------

    async def send(self, workspace_id: str, thread_id: str, message: str, *,
                   files: list[dict[str, Any]] | None = None) -> Turn:
        """Start a turn with the user's message (in the background); 409 while a turn is going on."""
        if not message.strip():
            raise InvalidInput("the message is empty")
        view = await self.get(workspace_id, thread_id)
        if view.live:
            raise Conflict(_busy(view.run_status))
        async with self.runtime.sessionmaker() as db:
            snapshot = await AppService(db).snapshot_for_run(workspace_id, view.thread.app_id)
        message_id = new_id()
        files = [_file(f) for f in files or ()]

        async def claim_and_record(db: AsyncSession, run: RunRecord) -> None:
            journal = await thread_journal.open_journal(db, thread_id)
            if journal is None:
                raise NotFound("conversation not found")
            if journal.active_run_id is not None:
                status = await db.scalar(select(Run.status).where(Run.id == journal.active_run_id))
                if status in LIVE_STATUSES:
                    raise Conflict(_busy(status))
                await journal.catch_up()  # what the last turn logged that nobody journaled yet
            journal.active_run_id, journal.journal_seq = run.id, 0
            await journal.add_message(message_id=message_id, role="user", content=message, run_id=run.id,
                                      app_id=run.app_id, files=files)
            await journal.close()

        inputs = {"mode": view.thread.mode} if view.thread.mode else {}
        run_id = await FlowService(self.runtime).start_background(FlowRequest(
            workspace_id=workspace_id, snapshot=snapshot, inputs=inputs, source=self.dialect, message=message,
            session_id=thread_id, user_id=view.thread.user_id, thread_id=thread_id,
        ), also=claim_and_record)
        ThreadSignals.of(self.runtime).notify(thread_id)
        return Turn(run_id, message_id)

    async def answer(self, workspace_id: str, thread_id: str, message: str) -> Turn:
        """The user's answer to the question the turn waits on; the run goes on where it paused."""
        view = await self.get(workspace_id, thread_id)
        if view.run_status != "waiting" or view.thread.active_run_id is None:
            raise Conflict("the conversation is not waiting for input")
        message_id = new_id()

        async def record(db: AsyncSession, run: RunRecord) -> None:
            journal = await thread_journal.open_journal(db, thread_id)
            if journal is None or journal.active_run_id != run.id:
                raise Conflict("the conversation is not waiting for input")
            await journal.catch_up()
            await journal.add_message(message_id=message_id, role="user", content=message, run_id=run.id,
                                      app_id=run.app_id, meta={"answer": True})
            await journal.close()

        await FlowService(self.runtime).resume(workspace_id, view.thread.active_run_id, message, background=True,
                                               also=record)
        ThreadSignals.of(self.runtime).notify(thread_id)
        return Turn(view.thread.active_run_id, message_id)

    async def stop(self, workspace_id: str, thread_id: str) -> ThreadView:
        """Stop the turn going on (model call and tools cancelled; the partial reply is kept); 409 when none is."""
        view = await self.get(workspace_id, thread_id)
        if not view.live:
            raise Conflict("nothing is running in this conversation")
        await self._stop_if_live(workspace_id, view)
        await self.refresh(thread_id)
        ThreadSignals.of(self.runtime).notify(thread_id)
        return await self.get(workspace_id, thread_id)

    async def _stop_if_live(self, workspace_id: str, view: ThreadView) -> None:
        if view.live and view.thread.active_run_id:
            try:
                await stop_run(self.runtime, workspace_id, view.thread.active_run_id)
            except Conflict:  # it ended meanwhile
                pass

    # -- what the thread shows ---------------------------------------------------------------

    async def refresh(self, thread_id: str) -> None:
        """Journal the running turn's new logs, if it has any (a read then costs no write)."""
        async with self.runtime.sessionmaker() as db:
            row = (await db.execute(select(Thread.active_run_id, Thread.journal_seq)
                                    .where(Thread.id == thread_id))).first()
            if row is None or not await thread_journal.has_unjournaled_logs(db, row.active_run_id, row.journal_seq):
                return
            journal = await thread_journal.open_journal(db, thread_id)
            if journal is not None:
                await journal.catch_up()
                await journal.close()
                await db.commit()

    async def chat_data(self, workspace_id: str, thread_id: str, after_stamp: int = 0) -> ChatData:
        await self.get(workspace_id, thread_id)
        await self.refresh(thread_id)
        data = ChatData()
        async with self.runtime.sessionmaker() as db:
            for row in await thread_journal.read_items(db, thread_id, after_stamp=after_stamp):
                getattr(data, {MESSAGE: "messages", LOG: "logs", "stat": "stats", DOCUMENT: "documents"}[
                    row.item.kind]).append(row)
        return data

    async def items(self, workspace_id: str, thread_id: str, kind: str, after_id: str | None = None
                    ) -> list[JournalRow]:
        """Messages or logs in order; with `after_id` only those after that item (404 when it is not one)."""
        await self.get(workspace_id, thread_id)
        if kind == LOG:
            await self.refresh(thread_id)
        async with self.runtime.sessionmaker() as db:
            after = 0
            if after_id is not None:
                after = await db.scalar(select(ThreadItem.stamp).where(
                    ThreadItem.thread_id == thread_id, ThreadItem.kind == kind, ThreadItem.id == after_id))
                if after is None:
                    raise NotFound(f"{kind} not found")
            return await thread_journal.read_items(db, thread_id, after_stamp=after, kinds=(kind,))

    async def item_ids(self, thread_id: str) -> dict[str, list[str]]:
        async with self.runtime.sessionmaker() as db:
            rows = await db.execute(select(ThreadItem.kind, ThreadItem.id).where(
                ThreadItem.thread_id == thread_id, ThreadItem.kind.in_((MESSAGE, LOG))).order_by(ThreadItem.stamp))
            found: dict[str, list[str]] = {MESSAGE: [], LOG: []}
            for kind, item_id in rows:
                found[kind].append(item_id)
            return found

    async def progress(self, view: ThreadView) -> StepProgress:
        """Where the turn is in its plan: the current step's title and the share of steps done."""
        run_id = view.thread.active_run_id
        if run_id is None:
            return StepProgress(None, None)
        async with self.runtime.sessionmaker() as db:
            data = await db.scalar(select(RunEvent.data).where(RunEvent.run_id == run_id,
                                                                RunEvent.type == ev.AGENT_STEP)
                                   .order_by(RunEvent.seq.desc()).limit(1))
        if view.run_status == "succeeded":
            return StepProgress(data["title"] if data else None, 100)
        if data is None:
            return StepProgress(None, 0 if view.live else None)
        done = data["index"] - (0 if data["status"] == "done" else 1)
        return StepProgress(data["title"], round(100 * done / max(1, data["total"])))

    async def delete_message(self, workspace_id: str, thread_id: str, message_id: str) -> None:
        await self.get(workspace_id, thread_id)
        async with self.runtime.sessionmaker() as db:
            if await thread_journal.open_journal(db, thread_id) is None:
                raise NotFound("conversation not found")
            found = await db.execute(delete(Message).where(
                Message.workspace_id == workspace_id, Message.session_id == thread_id, Message.id == message_id))
            if found.rowcount != 1:
                raise NotFound("message not found")
            await db.execute(delete(ThreadItem).where(ThreadItem.thread_id == thread_id,
                                                      ThreadItem.message_id == message_id))
            await db.commit()

    async def delete_file(self, workspace_id: str, thread_id: str, message_id: str, file_id: str) -> None:
        await self.get(workspace_id, thread_id)
        async with self.runtime.sessionmaker() as db:
            if await thread_journal.open_journal(db, thread_id) is None:
                raise NotFound("conversation not found")
            message = await db.scalar(select(Message).where(
                Message.workspace_id == workspace_id, Message.session_id == thread_id, Message.id == message_id))
            if message is None:
                raise NotFound("message not found")
            files = list((message.meta or {}).get("files") or [])
            kept = [f for f in files if f.get("id") != file_id]
            if len(kept) == len(files):
                raise NotFound("file not found")
            message.meta = {**message.meta, "files": kept}
            await db.execute(delete(ThreadItem).where(
                ThreadItem.thread_id == thread_id, ThreadItem.id == thread_journal.document_key(message_id, file_id)))
            await db.commit()

    # -- the playground's default agent ------------------------------------------------------

    async def default_agent(self, workspace_id: str) -> str:
        """The workspace's default agent app (created on first use, on the default model): its id."""
        async with self.runtime.sessionmaker() as db:
            apps = AppService(db)
            try:
                app = await apps.get(workspace_id, DEFAULT_AGENT_SLUG)
            except NotFound:
                try:
                    created = await apps.create(workspace_id, name="Default agent", kind="agent",
                                                slug=DEFAULT_AGENT_SLUG, config=DEFAULT_AGENT_CONFIG)
                    return created.app.id
                except (Conflict, IntegrityError):  # created by a concurrent first call
                    await db.rollback()
                    app = await apps.get(workspace_id, DEFAULT_AGENT_SLUG)
            if app.kind != "agent":
                raise Conflict(f"the app '{DEFAULT_AGENT_SLUG}' is not an agent; pass appId")
            return app.id


def _busy(status: str | None) -> str:
    if status == "waiting":
        return "the conversation is waiting for an answer to its question; send it as input"
    return "a turn of this conversation is still running; wait for it or stop it"


def _file(given: dict[str, Any]) -> dict[str, Any]:
    """A file attached to a message, as the thread keeps it (an id of its own when it came without one)."""
    if not isinstance(given, dict):
        raise InvalidInput("each file must be an object")
    file = {k: v for k, v in given.items() if k in ("id", "name", "type", "mime", "size", "url")}
    file_id = str(file.get("id") or new_id())
    if len(file_id) > 60:
        raise InvalidInput("a file id may have at most 60 characters")
    return {**file, "id": file_id}


class ThreadSignals:
    """Wakes this process's WebSocket followers of a thread when a turn starts, is answered or stops.

    A follower holds a `watch()` for as long as it follows: a notice that comes while it is busy
    is kept (the event stays set), so it is never lost between a look at the thread and the next
    wait. Followers in other processes notice within their polling interval instead.
    """

    _by_runtime: "weakref.WeakKeyDictionary[Any, ThreadSignals]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}

    @classmethod
    def of(cls, runtime: "Runtime") -> "ThreadSignals":
        signals = cls._by_runtime.get(runtime.engine)
        if signals is None:
            signals = cls._by_runtime[runtime.engine] = cls()
        return signals

    def notify(self, thread_id: str) -> None:
        for event in self._watchers.get(thread_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, thread_id: str) -> Iterator[asyncio.Event]:
        """An event set by every notice about the thread; clear it before looking, wait on it after."""
        event = asyncio.Event()
        self._watchers.setdefault(thread_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(thread_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[thread_id]


__all__ = ["ThreadService", "ThreadView", "ThreadSignals", "ChatData", "Turn", "StepProgress"]
