"""Every run, whatever its app (chatbot, chatflow, workflow, agent): start, stream, pause for a human,
resume, cancel, recover.

`FlowService.start()` / `start_background()` do everything that can fail on bad
input (graph, required inputs, empty message) before a run exists. One function,
`_execute()`, then runs (or continues) it, whoever calls: a request in the
foreground (`FlowExecution.events()` / `collect()`), or the durable job queue in
the background (`flow_run` jobs, which a restarted server recovers). Every write
goes through the process's run writer (services/run_writer.py), which commits it
together with other runs' writes.

A background run is recorded, with its resumable `FlowRunState`, before its job
is queued. A foreground run's record is written by its recorder: before its first
event when streamed, else with its first write (a quick run starts and ends in one
transaction); its `FlowRunState` only if it pauses, since nothing but an answer
resumes a run that a request executes (a dead request's run ends `interrupted`).

Every execution starts from what the store says: the run's persisted
`node_finished` events are its checkpoint, so a node that finished before a
pause or a crash is never run again, and its outputs are put back for the
nodes after it. A run ends in one transaction that writes its last events, its
status and outputs and, for a conversation, the user's message and the reply.

Apps without a graph of their own (chatbots, agents) run as the graph their
config implies (services/implied_graphs.py) and are conversational like a
chatflow. A run of a conversation thread (`thread_id`) leaves its messages to the
thread's journal (services/thread_journal.py), which writes them in the run's own
transactions: the caller's `also` at the start or at an answer, and the journal's
hook when the run pauses or ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from headwater import telemetry
from headwater.engine import events as ev
from headwater.engine.context import RunState
from headwater.engine.events import Event
from headwater.engine.graph import CompiledGraph
from headwater.engine.execution import END_OF_STREAM, RunTask
from headwater.engine.recorder import RunRecorder
from headwater.engine.failures import RunFailure
from headwater.engine.runner import GraphScheduler, NodeError, NodeOutcome
from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.queue.handlers import JobHeldElsewhere
from headwater.providers.base import ChatMessage, ChatProvider
from headwater.runtime import Runtime
from headwater.services import thread_journal
from headwater.services.apps import GRAPH_KINDS, AppSnapshot
from headwater.services.implied_graphs import IMPLIED_KINDS, run_graph
from headwater.services.run_end import end_unattended_run
from headwater.services.run_outcome import Exchange, RunOutcome, with_partial_mark
from headwater.services.runs import TERMINAL_STATUSES, RunRecord, RunService
from headwater.services.run_writer import RunWrite, RunWriter
from headwater.services.sessions import session_memory
from headwater.store.flow_models import FlowRunState
from headwater.store.models import AppVersion, Run, RunEvent, new_id, utcnow

log = logging.getLogger(__name__)
FLOW_JOB_KIND = "flow_run"
CANCEL_WAIT_SECONDS = 5.0
RUNNABLE_KINDS = GRAPH_KINDS + IMPLIED_KINDS
# Kinds whose runs are turns of a conversation: a session, the message as `sys.query`, a reply.
CONVERSATIONAL_KINDS = ("chatflow",) + IMPLIED_KINDS
# More writes for the transaction that records a run (or its answer): (db, run) -> None.
AlsoWrite = Callable[[AsyncSession, RunRecord], Awaitable[None]]


@dataclass(slots=True)
class FlowRequest:
    workspace_id: str
    snapshot: AppSnapshot
    inputs: dict[str, Any]
    source: str
    message: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    # Earlier turns sent by the client (stateless style); None means "the session's memory".
    history: list[ChatMessage] | None = None
    files: list[Any] = field(default_factory=list)
    # The id a chatflow's reply gets in the session history, when the caller must know it in advance.
    reply_message_id: str | None = None
    # An app called by another (an agent's run_app tool): how many apps are above it.
    call_depth: int = 0
    # The conversation thread (FlowGen chat, playground workflow) this run is a turn of.
    thread_id: str | None = None
    # The caller's generation parameters (OpenAI's temperature, top_p, max_tokens, stop, as a dict
    # of those set): they override a `caller_params` llm node's (a chatbot's model call).
    params: dict[str, Any] | None = None
    # Models the caller already resolved (`<provider>/<model>` → client, model), so the run does not
    # resolve them again: a chatbot's, checked before its turn starts.
    resolved_models: dict[str, tuple[ChatProvider, str]] | None = None


@dataclass(slots=True)
class FlowResult:
    run_id: str
    session_id: str | None
    status: str
    outputs: dict[str, Any]
    text: str
    usage: dict[str, int]
    error: RunFailure | None
    elapsed_ms: int | None
    waiting: list[dict[str, Any]]
    finish_reason: str | None = None  # the reply's model call's, when it made one


@dataclass(slots=True)
class _Loaded:
    run: RunRecord
    # From the run's resumable state (`FlowRunState`): the app's kind, `sys`, the start node's
    # checked inputs, human answers given, the nodes that wait for one.
    kind: str
    sys: dict[str, Any]
    inputs: dict[str, Any]
    answers: dict[str, str]
    waiting: list[dict[str, Any]]
    graph: CompiledGraph
    known: dict[str, NodeOutcome]
    last_seq: int
    # A foreground run's record, not written yet (see engine.recorder).
    pending_start: RunWrite | None = None
    # A foreground run's resumable state: written only if the run pauses (nothing resumes a run
    # executed by a request otherwise), so a chat turn does not write it at all.
    unwritten_state: dict[str, Any] | None = None
    resolved_models: dict[str, tuple[ChatProvider, str]] | None = None


@dataclass(slots=True)
class _Conversation:
    id: str | None
    new_row: dict[str, Any] | None  # the `sessions` row when the run starts the conversation
    history: list[dict[str, str]]


def message_of(request: FlowRequest) -> str | None:
    if request.message is not None:
        return request.message
    for key in ("query", "message"):
        value = request.inputs.get(key)
        if isinstance(value, str):
            return value
    return None


class FlowService:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    # -- starting ------------------------------------------------------------------------------

    async def _prepare(self, request: FlowRequest, background: bool, also: AlsoWrite | None = None) -> _Loaded:
        app, version = request.snapshot.app, request.snapshot.version
        if app.kind not in RUNNABLE_KINDS:
            raise InvalidInput(f"'{app.slug}' is a {app.kind} app, not a chatflow, workflow or agent")
        graph = run_graph(app.kind, version)
        if graph is None:
            raise InvalidInput("this app has no graph")
        message = message_of(request)
        conversational = app.kind in CONVERSATIONAL_KINDS
        if conversational and not (message or "").strip() and not request.files:
            raise InvalidInput(f"a {app.kind} needs a message (input 'query' or 'message')")
        start_node = graph.nodes[graph.entries[0]]
        inputs = start_node.accept_inputs(request.inputs, message)
        job_id = new_id() if background else None
        conversation = await self._conversation(request, app.kind, graph.history_window)
        now = utcnow()
        run_id = new_id()
        run_row = dict(
            id=run_id, workspace_id=request.workspace_id, app_id=app.id, app_version=version.version,
            session_id=conversation.id, status="queued" if background else "running", source=request.source,
            inputs=_recorded_inputs(request.inputs, message, conversational), created_at=now,
            started_at=None if background else now,
            owner_id=None if background else self.runtime.owner_id,
            lease_until=None if background else self.runtime.lease_until(now),
        )
        state_row = dict(
            run_id=run_id, workspace_id=request.workspace_id, kind=app.kind, inputs=inputs, job_id=job_id,
            sys={
                "run_id": run_id, "app_id": app.id, "session_id": conversation.id, "user_id": request.user_id,
                "query": message if conversational else (message or ""), "history": conversation.history,
                "history_given": request.history is not None,
                "files": list(request.files), "params": request.params,
                # Kept with the run, so a reply saved after a pause or a restart still gets it.
                "reply_message_id": request.reply_message_id or new_id(),
                "call_depth": request.call_depth, "thread_id": request.thread_id,
            },
            answers={}, waiting=[], created_at=now, updated_at=now,
        )
        run = RunRecord(run_id, request.workspace_id, app.id, conversation.id, run_row["status"], now,
                        run_row["started_at"])
        start = RunWrite(
            run_id, new_session=conversation.new_row, start=run_row, state=state_row if background else None,
            on_start=(lambda db: also(db, run)) if also is not None else None,
        )
        loaded = _Loaded(run, app.kind, state_row["sys"], inputs, {}, [], graph, {}, 0)
        if not background:  # written by the run's recorder: at once when streamed, else with its first write
            loaded.pending_start, loaded.unwritten_state = start, state_row
            loaded.resolved_models = request.resolved_models
            return loaded
        await RunWriter.of(self.runtime.engine).write(start)
        await self.runtime.jobs.enqueue(FLOW_JOB_KIND, {"run_id": run_id}, workspace_id=request.workspace_id,
                                        job_id=job_id)
        return loaded

    async def start(self, request: FlowRequest) -> "FlowExecution":
        prepared = await self._prepare(request, background=False)
        return FlowExecution(self, prepared.run.id, prepared.run.session_id, preloaded=prepared)

    async def start_background(self, request: FlowRequest, also: AlsoWrite | None = None) -> str:
        prepared = await self._prepare(request, background=True, also=also)
        return prepared.run.id

    async def _conversation(self, request: FlowRequest, kind: str, window: int) -> "_Conversation":
        """The session the run belongs to (None for a workflow run without one) and the memory it reads."""
        if kind not in CONVERSATIONAL_KINDS and not request.session_id:
            return _Conversation(None, None, [])
        app_id = request.snapshot.app.id
        found, stored = None, []
        if request.session_id:
            window = 0 if request.history is not None else window
            async with self.runtime.engine.connect() as connection:
                found, stored = await session_memory(connection, request.workspace_id, request.session_id,
                                                     app_id, window)
        history = stored if request.history is None else [
            {"role": m.role, "content": m.content} for m in request.history]
        if found is not None:
            return _Conversation(found, None, history)
        # A new conversation, under the client's id when it gave one (Flowise clients pick ids).
        now = utcnow()
        row = {"workspace_id": request.workspace_id, "id": request.session_id or new_id(), "app_id": app_id,
               "user_id": request.user_id, "created_at": now, "updated_at": now}
        return _Conversation(row["id"], row, history)

    # -- human input, cancel -------------------------------------------------------------------

    async def resume(
        self, workspace_id: str, run_id: str, message: str, *, node_id: str | None = None, background: bool = False,
        also: AlsoWrite | None = None,
    ) -> "FlowExecution | str":
        """Answer a waiting run; it continues from the paused node (foreground handle, or run id if background)."""
        job_id = new_id() if background else None
        async with self.runtime.sessionmaker() as db:
            run = await RunService(db).get(workspace_id, run_id)
            state = await db.get(FlowRunState, run_id)
            if run.status != "waiting" or state is None:
                raise Conflict(f"run is {run.status}, not waiting for input")
            waiting = list(state.waiting or [])
            chosen = node_id or (waiting[0]["node_id"] if waiting else None)
            if chosen is None or all(w["node_id"] != chosen for w in waiting):
                raise InvalidInput(f"the run is not waiting for input at node '{chosen}'")
            claimed = await db.execute(
                update(Run).where(Run.id == run_id, Run.status == "waiting")
                .values(status="queued" if background else "running",
                        owner_id=None if background else self.runtime.owner_id,
                        lease_until=None if background else self.runtime.lease_until())
            )
            if claimed.rowcount != 1:
                raise Conflict("run is no longer waiting for input")
            state.answers = {**(state.answers or {}), chosen: message}
            state.waiting = [w for w in waiting if w["node_id"] != chosen]
            state.updated_at = utcnow()
            if job_id:
                state.job_id = job_id
            if also is not None:
                await also(db, RunRecord.of(run))
            await db.commit()
            session_id = run.session_id
        if background:
            await self.runtime.jobs.enqueue(FLOW_JOB_KIND, {"run_id": run_id}, workspace_id=workspace_id, job_id=job_id)
            return run_id
        return FlowExecution(self, run_id, session_id)

    # -- executing -----------------------------------------------------------------------------

    async def execute_background(self, run_id: str) -> None:
        """The `flow_run` job: idempotent, continues whatever the store says is left to do."""
        await self._execute(run_id, sink=None, foreground=False)

    async def _load(self, run_id: str) -> _Loaded | None:
        async with self.runtime.sessionmaker() as db:
            run = await db.get(Run, run_id)
            if run is None or run.status in TERMINAL_STATUSES or run.status == "waiting":
                return None
            state = await db.get(FlowRunState, run_id)
            version = await db.scalar(
                select(AppVersion).where(AppVersion.app_id == run.app_id, AppVersion.version == run.app_version)
            )
            graph = run_graph(state.kind, version) if state is not None and version is not None else None
            unrunnable = graph is None
            if not unrunnable:
                rows = await db.execute(
                    select(RunEvent.type, RunEvent.data).where(
                        RunEvent.run_id == run_id,
                        RunEvent.type.in_((ev.NODE_FINISHED, ev.HUMAN_INPUT_REQUIRED)),
                    ).order_by(RunEvent.seq)
                )
                known = replay_outcomes(rows)
                last_seq = await db.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)) or 0
        if unrunnable:  # its app (or that version) was deleted meanwhile
            await end_unattended_run(self.runtime, run_id, "failed",
                                     RunFailure("app_missing", "the app of this run no longer exists", 409))
            return None
        return _Loaded(RunRecord.of(run), state.kind, state.sys or {}, state.inputs or {}, state.answers or {},
                       state.waiting or [], graph, known, last_seq)

    async def _execute(self, run_id: str, sink: asyncio.Queue | None, foreground: bool,
                       preloaded: _Loaded | None = None, streamed: bool = True) -> FlowResult | None:
        try:
            loaded = preloaded or await self._load(run_id)
        except Exception:
            if sink is not None:
                sink.put_nowait(END_OF_STREAM)
            raise
        if loaded is None:
            if sink is not None:
                sink.put_nowait(END_OF_STREAM)
            return None
        run = loaded.run
        if not foreground and not await self._claim(run_id):
            if sink is not None:
                sink.put_nowait(END_OF_STREAM)
            raise JobHeldElsewhere(run_id)
        recorder = RunRecorder(self.runtime, run_id, loaded.last_seq, sink, pending_start=loaded.pending_start,
                               resumable=not foreground, live=streamed)
        state = RunState(
            self.runtime, run_id, run.workspace_id, run.app_id or "", loaded.kind, recorder,
            sys=dict(loaded.sys), inputs=dict(loaded.inputs), answers=dict(loaded.answers),
            live=streamed,
        )
        if loaded.resolved_models:
            state.models.update(loaded.resolved_models)
        control = self.runtime.control
        started = time.perf_counter()
        try:
            async with control.register(run_id, asyncio.current_task(), foreground=foreground):  # type: ignore[arg-type]
                if streamed and recorder.pending_start is not None:
                    # A streaming client may look the run up (or stop it) by id as soon as it starts.
                    await recorder.durable()
                recorder.start()
                return await self._execute_registered(loaded, state, foreground, started)
        finally:
            await recorder.close()
            recorder.end_stream()

    async def _claim(self, run_id: str) -> bool:
        """Become the run's owner, unless another live executor holds it (a job delivered twice)."""
        now = utcnow()
        async with self.runtime.sessionmaker() as db:
            claimed = await db.execute(
                update(Run).where(
                    Run.id == run_id, Run.status.in_(("queued", "running")),
                    or_(Run.owner_id.is_(None), Run.owner_id == self.runtime.owner_id,
                        Run.lease_until.is_(None), Run.lease_until < now),
                ).values(owner_id=self.runtime.owner_id, lease_until=self.runtime.lease_until(now))
            )
            await db.commit()
        return claimed.rowcount == 1

    @telemetry.traced_flow_run
    async def _execute_registered(self, loaded: _Loaded, state: RunState, foreground: bool,
                                  started: float) -> FlowResult:
        run, graph, recorder = loaded.run, loaded.graph, state.recorder
        run_id = run.id
        recorder.emit(ev.RunStarted(
            run_id=run_id, app_id=run.app_id, session_id=run.session_id, kind=loaded.kind,
            resumed=loaded.last_seq > 0, total_nodes=len(graph.nodes),
        ))
        if run.status != "running" or run.started_at is None:  # queued until now
            await recorder.durable(also=_mark_running(run_id))
        paused: list[tuple[str, str]] = []
        error: RunFailure | None = None
        try:
            timeout = _run_timeout(graph, self.runtime.settings.flow_run_timeout_seconds)
            async with asyncio.timeout(timeout):
                paused = await GraphScheduler(graph, state, {"sys": state.sys}, loaded.known).execute()
        except NodeError as exc:
            error = exc.failure
        except TimeoutError:
            error = RunFailure("timeout", f"run did not finish within {timeout:g}s", 504)
        except asyncio.CancelledError:
            if foreground or await _settle(self.runtime.control.cancel_requested(run_id)):
                await _settle(self._finish(state, loaded, "cancelled", None, [], started))
            else:  # a shutdown interrupted a background run: keep it resumable by the next process
                await _settle(recorder.durable())
            raise
        except Exception:
            log.exception("run %s crashed", run_id)
            error = RunFailure("internal_error", "internal error", 500)
        status = "failed" if error else ("waiting" if paused else "succeeded")
        return await _settle(self._finish(state, loaded, status, error, paused, started))

    async def _finish(
        self, state: RunState, loaded: _Loaded, status: str, error: RunFailure | None,
        paused: list[tuple[str, str]], started: float,
    ) -> FlowResult:
        recorder, run = state.recorder, loaded.run
        elapsed_ms = (run.elapsed_ms or 0) + int((time.perf_counter() - started) * 1000)
        outputs = self._outputs(state, status)
        usage = state.usage.as_dict()
        now = utcnow()
        waiting = [{"node_id": nid, "prompt": prompt} for nid, prompt in paused]
        if status == "waiting":  # not an end: the run goes on when the questions are answered
            final = [recorder.emit(ev.HumanInputRequired(node_id=nid, prompt=prompt), deliver=False)
                     for nid, prompt in paused]
            columns: dict[str, Any] = {"status": status, "outputs": outputs, "usage": usage, "error": None,
                                       "elapsed_ms": elapsed_ms, "owner_id": None}
            exchange_rows: list[dict[str, Any]] = []
        else:
            outcome = RunOutcome(status=status, outputs=outputs, usage=usage, elapsed_ms=elapsed_ms, error=error,
                                 finish_reason=state.finish_reason)
            final = [recorder.emit(payload, deliver=False) for payload in outcome.events()]
            columns = outcome.run_columns(now)
            exchange_rows = self._exchange_rows(state, run, outcome, now)

        thread_end = None
        if state.sys.get("thread_id"):  # a thread's turn: its messages are the thread journal's
            async def thread_end(db: AsyncSession) -> None:
                await thread_journal.record_run_end(db, state.sys, run, status, outputs, usage, elapsed_ms, waiting)
        # What the run waits for changes when it pauses, or when it goes on after a pause.
        state_changed = bool(waiting) or bool(loaded.waiting)
        state_insert = None
        if loaded.unwritten_state is not None:
            if waiting:  # a run that pauses is resumed from this row
                state_insert = {**loaded.unwritten_state, "waiting": waiting, "updated_at": now}
            state_changed = False
        await recorder.durable(rows=RunWrite(
            run.id, end=columns, state=state_insert,
            state_update={"waiting": waiting, "updated_at": now} if state_changed else None,
            messages=exchange_rows,
            touch_session={"workspace_id": run.workspace_id, "id": run.session_id, "updated_at": now}
            if exchange_rows else None,
            on_end=thread_end,
        ))
        recorder.deliver(final)
        return FlowResult(
            run_id=run.id, session_id=run.session_id, status=status, outputs=outputs, text=outputs.get("text", ""),
            usage=usage, error=error, elapsed_ms=elapsed_ms, waiting=waiting, finish_reason=state.finish_reason,
        )

    @staticmethod
    def _outputs(state: RunState, status: str) -> dict[str, Any]:
        if status in ("succeeded", "waiting"):
            reply = "".join(state.reply_parts)
        else:
            reply = "".join(state.streamed)
        outputs: dict[str, Any] = dict(state.end_outputs)
        if state.kind in CONVERSATIONAL_KINDS:
            outputs["text"] = reply  # a chatflow's reply; a workflow's `end` outputs are its own
        elif state.reply_parts:
            outputs.setdefault("text", "".join(state.reply_parts))
        if state.citations:
            outputs["citations"] = state.citations
        return with_partial_mark(outputs, status)

    @staticmethod
    def _exchange_rows(state: RunState, run: RunRecord, outcome: RunOutcome, now) -> list[dict[str, Any]]:
        """A conversational run's turn in its conversation (a workflow run is not one; a thread's turn is
        written by the thread's journal)."""
        if (state.kind not in CONVERSATIONAL_KINDS or not run.session_id or not outcome.keeps_exchange
                or state.sys.get("thread_id")):
            return []
        exchange = Exchange(
            workspace_id=run.workspace_id, session_id=run.session_id, app_id=run.app_id, run_id=run.id,
            question=state.sys.get("query") or "", asked_at=run.created_at, reply_id=state.sys.get("reply_message_id"),
            question_meta={"images": images} if (images := _image_count(state.sys.get("files"))) else None,
        )
        return exchange.rows(outcome, outcome.outputs.get("text", ""), now, model=state.reply_model,
                             citations=outcome.outputs.get("citations"))

    async def result(self, run_id: str) -> FlowResult:
        async with self.runtime.sessionmaker() as db:
            run = await db.get(Run, run_id)
            state = await db.get(FlowRunState, run_id)
        if run is None:
            raise NotFound("run not found")
        return FlowResult(
            run_id=run.id, session_id=run.session_id, status=run.status, outputs=run.outputs or {},
            text=(run.outputs or {}).get("text", ""), usage=run.usage or {}, error=RunFailure.from_data(run.error),
            elapsed_ms=run.elapsed_ms, waiting=list(state.waiting or []) if state else [],
        )


class FlowExecution:
    """A run executed by the request that holds this handle; closing the stream cancels the run."""

    def __init__(self, service: FlowService, run_id: str, session_id: str | None,
                 preloaded: _Loaded | None = None):
        self.service = service
        self.run_id = run_id
        self.session_id = session_id
        self._preloaded = preloaded
        self._task: RunTask[FlowResult | None] | None = None

    def events(self) -> AsyncIterator[Event]:
        """The run's events as they happen (closing the stream cancels the run)."""
        return self._task_for(streamed=True).events()

    @property
    def result(self) -> FlowResult | None:
        return self._task.result if self._task is not None else None

    async def collect(self) -> FlowResult:
        """The run to its end (or pause), for a caller that does not stream: nothing is relayed, and the
        model may answer in one piece; a quick run is recorded in one transaction."""
        return await self._task_for(streamed=False).outcome() or await self.service.result(self.run_id)

    def _task_for(self, streamed: bool) -> RunTask[FlowResult | None]:
        preloaded, self._preloaded = self._preloaded, None
        # A partial, not a lambda: a closure over `self` held by `self._task` would make every run a
        # reference cycle, left for the garbage collector instead of being freed at once.
        self._task = RunTask(partial(self.service._execute, self.run_id, foreground=True, preloaded=preloaded,
                                     streamed=streamed), name=f"run:{self.run_id}")
        return self._task


async def _settle(awaitable):
    """Await to the end even if this task is cancelled (again) meanwhile: a run's outcome must be recorded."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    result = task.result()
    if cancelled:
        raise asyncio.CancelledError()
    return result


def _mark_running(run_id: str):
    async def mark(db: AsyncSession) -> None:
        await db.execute(update(Run).where(Run.id == run_id, Run.status.in_(("queued", "running")))
                         .values(status="running"))
        await db.execute(update(Run).where(Run.id == run_id, Run.started_at.is_(None)).values(started_at=utcnow()))

    return mark


def _image_count(files: list[Any] | None) -> int:
    return sum(1 for part in files or () if isinstance(part, dict) and part.get("type") == "image_url")


def _run_timeout(graph: CompiledGraph, default: float) -> float:
    return graph.run_timeout or default


def _recorded_inputs(inputs: dict[str, Any], message: str | None, conversational: bool) -> dict[str, Any]:
    recorded = dict(inputs)
    if conversational and message is not None:
        recorded.setdefault("query", message)
    return recorded


def replay_outcomes(rows) -> dict[str, NodeOutcome]:
    """From persisted events: which top-level nodes finished (with outputs) or wait for input."""
    known: dict[str, NodeOutcome] = {}
    for type_, data in rows:
        match ev.payload_from(type_, data):
            case ev.HumanInputRequired(node_id=node_id):
                if node_id not in known or known[node_id].status != "succeeded":
                    known[node_id] = NodeOutcome("waiting")
            case ev.NodeFinished(parent=None, status="succeeded") as finished:
                known[finished.node_id] = NodeOutcome("succeeded", finished.outputs or {}, finished.branch,
                                                      finished.usage)
    return known


__all__ = ["FlowService", "FlowRequest", "FlowResult", "FlowExecution", "FLOW_JOB_KIND"]
