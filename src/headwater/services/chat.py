"""One chat turn with a chatbot or chatflow app: how the chat dialects (OpenAI, WAYSCloud, Flowise) serve them.

A turn is a run like any other (services/flows.py): a chatbot runs as the graph
its config implies (start → (retrieval) → llm → answer, services/implied_graphs.py),
a chatflow as its own. `ChatService.prepare()` maps a chat message (`TurnRequest`)
onto the flow service:
- the conversation is the one the client names (continued, or started under its
  id) or a new one; a client that sends its own history (stateless OpenAI style)
  gets exactly that history to the model;
- a chatbot's model is checked before anything is written (an unknown model, or
  images for a text-only one, is the caller's mistake, not a failed run);
- when the conversation's chatflow run waits at a human_input node, the message
  is the answer and that run continues (`FlowService.resume`);
- images and the text of attached files reach the run as `sys.files`, shaped as
  OpenAI content parts: `{"type": "image_url", "image_url": {"url": <data: URI>}}`
  per image and `{"type": "text", "text": ...}` for the files' text (already fenced
  as data). A chatbot's model gets them; a chatflow's templates decide;
- the reply's message id is fixed before the run starts, so the turn can name the
  assistant message that the run stores in the history when it ends.

`ChatTurn` relays the run's engine events. When the run pauses, the prompt of
the node the next message answers is the turn's reply: it follows the
`human_input_required` event as a `token` event, so every dialect streams and
returns it like any reply (the stored trace keeps the `human_input_required`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine import events as ev
from headwater.engine.events import Event
from headwater.engine.failures import CANCELLED, RunFailure
from headwater.errors import InvalidInput
from headwater.providers.base import ChatMessage, ChatProvider, GenerationParams, ImagePart, Usage
from headwater.runtime import Runtime
from headwater.services.apps import AppSnapshot
from headwater.services.implied_graphs import CHATBOT_MODEL_NODE, run_graph
from headwater.services.flows import FlowExecution, FlowRequest, FlowService
from headwater.store.flow_models import FlowRunState
from headwater.store.models import Run, new_id

# Between what the flow already said in this turn and the question it pauses on.
PAUSE_SEPARATOR = "\n\n"


@dataclass(slots=True)
class TurnRequest:
    workspace_id: str
    snapshot: AppSnapshot
    message: str
    source: str
    session_id: str | None = None
    user_id: str | None = None
    images: list[ImagePart] = field(default_factory=list)
    # Earlier turns sent by the client (stateless OpenAI style); None means "use the session's memory".
    history: list[ChatMessage] | None = None
    extra_system: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(slots=True)
class TurnResult:
    run_id: str
    session_id: str
    message_id: str
    status: str
    text: str
    usage: Usage
    finish_reason: str
    elapsed_ms: int
    error: RunFailure | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


class ChatService:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def prepare(self, request: TurnRequest) -> "ChatTurn":
        """Start (or, for a conversation waiting for an answer, continue) a run; nothing is written if this raises."""
        kind = request.snapshot.app.kind
        if not request.message.strip() and not (kind == "chatbot" and request.images):
            raise InvalidInput("the message is empty")
        service = FlowService(self.runtime)
        resolved_models = None
        if kind == "chatbot":
            resolved_models = await self._check_model(request)
        elif request.session_id and can_ask(request.snapshot.version.graph):
            async with self.runtime.sessionmaker() as db:
                waiting = await _waiting_run(db, request.workspace_id, request.snapshot.app.id, request.session_id)
            if waiting is not None:
                if request.images or request.extra_system:
                    raise InvalidInput("this conversation is waiting for an answer to its question: send it as "
                                       "text, without uploads")
                run_id, reply_message_id = waiting
                execution = await service.resume(request.workspace_id, run_id, request.message)
                return ChatTurn(execution, reply_message_id, resumed=True)  # type: ignore[arg-type]
        reply_message_id = new_id()
        execution = await service.start(FlowRequest(
            workspace_id=request.workspace_id, snapshot=request.snapshot, inputs={}, source=request.source,
            message=request.message, session_id=request.session_id, user_id=request.user_id,
            history=request.history, files=flow_files(request), reply_message_id=reply_message_id,
            params=caller_params(request.params), resolved_models=resolved_models,
        ))
        return ChatTurn(execution, reply_message_id)

    async def _check_model(self, request: TurnRequest) -> dict[str, tuple[ChatProvider, str]]:
        """The chatbot's model exists (and takes images, when the message has some): checked before any write.
        Returns it resolved, for the run."""
        graph = run_graph("chatbot", request.snapshot.version)
        model = graph.nodes[CHATBOT_MODEL_NODE].config.model  # type: ignore[union-attr]  # a chatbot has one
        async with self.runtime.sessionmaker() as db:  # no statement at all while the provider is cached
            resolved = await self.runtime.provider_service(db).resolve(request.workspace_id, model)
        if request.images and not resolved[0].accepts_images:
            raise InvalidInput(f"model '{model}' does not accept images")
        return {model: resolved}


def caller_params(params: GenerationParams) -> dict[str, Any] | None:
    """The generation parameters a chat client set, as a chatbot's model call takes them (`sys.params`)."""
    given = {"temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
             "stop": params.stop}
    return {name: value for name, value in given.items() if value is not None} or None


def can_ask(graph: dict[str, Any] | None) -> bool:
    """Whether the app (this version of it) has a human_input node, so a conversation of it may be waiting.

    Only those apps pay for looking: a run left waiting by an earlier version that asked
    is not answered by a version that no longer asks (a new run starts instead).
    """
    return any(node.get("type") == "human_input" for node in (graph or {}).get("nodes", []))


def flow_files(request: TurnRequest) -> list[dict[str, Any]]:
    """The message's images and attached files' text as `sys.files` (see the module docstring)."""
    files: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image.url}} for image in request.images]
    if request.extra_system:
        files.append({"type": "text", "text": request.extra_system})
    return files


async def _waiting_run(db: AsyncSession, workspace_id: str, app_id: str, session_id: str) -> tuple[str, str] | None:
    """(run id, reply message id) of this app's run in the conversation that waits for input, if any."""
    row = (await db.execute(
        select(Run.id, FlowRunState.sys)
        .join(FlowRunState, FlowRunState.run_id == Run.id)
        .where(Run.workspace_id == workspace_id, Run.session_id == session_id, Run.app_id == app_id,
               Run.status == "waiting")
        .order_by(Run.created_at.desc())
        .limit(1)
    )).first()
    if row is None:
        return None
    return row.id, (row.sys or {}).get("reply_message_id") or new_id()


class ChatTurn:
    """One chat turn served by a run (satisfies api.dialects.bot_chat.DialectTurn)."""

    def __init__(self, execution: FlowExecution, message_id: str, *, resumed: bool = False):
        self.execution = execution
        # An answer to the run's question: the turn's reply is what the run says from there on.
        self.resumed = resumed
        self.run_id = execution.run_id
        self.session_id: str = execution.session_id  # type: ignore[assignment]  # a conversation's run has one
        self.message_id = message_id
        # Grows as the run's retrieval nodes report them: complete once the stream has ended.
        self.citations: list[dict[str, Any]] = []

    async def events(self) -> AsyncIterator[Event]:
        """The run's engine events; a pause adds its question as the reply's last token."""
        replied = asked = False
        async with aclosing(self.execution.events()) as events:
            async for event in events:
                if isinstance(event.payload, ev.Citations):
                    self.citations.extend(event.payload.citations or [])
                yield event
                match event.payload:
                    case ev.Token():
                        replied = True
                    case ev.HumanInputRequired(node_id=node_id, prompt=prompt) if not asked:
                        asked = True  # a parallel branch's question comes once this one is answered
                        prompt = str(prompt or "")
                        text = PAUSE_SEPARATOR + prompt if replied else prompt
                        yield Event(event.seq, ev.Token(node_id=node_id, text=text), event.created_at)

    async def collect(self) -> TurnResult:
        """The whole turn, for a caller that does not stream (the model may answer in one piece)."""
        if self.resumed:  # the run's outputs hold the whole reply, this turn's part is in its events
            text = "".join([event.payload.text async for event in self.events()
                            if isinstance(event.payload, ev.Token)])
            result = self.execution.result or await self.execution.service.result(self.run_id)
        else:
            result = await self.execution.collect()
            text = result.text
            if result.waiting:  # the question the run pauses on is the turn's reply (see `events`)
                prompt = str(result.waiting[0].get("prompt") or "")
                text = text + PAUSE_SEPARATOR + prompt if text else prompt
        self.citations = list(result.outputs.get("citations") or [])
        usage = result.usage or {}
        return TurnResult(
            run_id=self.run_id, session_id=self.session_id, message_id=self.message_id, status=result.status,
            text=text,
            usage=Usage(prompt_tokens=usage.get("prompt_tokens", 0),
                        completion_tokens=usage.get("completion_tokens", 0)),
            finish_reason=result.finish_reason or "stop", elapsed_ms=result.elapsed_ms or 0,
            error=_turn_error(result.status, result.error), citations=self.citations,
        )


def _turn_error(status: str, error: RunFailure | None) -> RunFailure | None:
    """A run's failure as its turn reports it; a run stopped by a user fails the turn too."""
    return CANCELLED if error is None and status == "cancelled" else error
