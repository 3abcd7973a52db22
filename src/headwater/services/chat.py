"""One turn of a chatbot app: memory in, model call, streamed events out, everything recorded.

`ChatService.prepare()` does all that can fail on bad input (unknown model,
images for a text-only model) before anything is written, then records the
run as `running`. `ChatTurn.events()` streams the engine events of CONTRACTS §3
and, however the stream ends (finished, failed, cancelled by a disconnecting
client), writes the outcome. The history gets the user message and the reply
together, so a failed turn leaves no half-written exchange behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, update

from headwater.engine import events as ev
from headwater.engine.events import Event, EventLog
from headwater.errors import HeadwaterError, InvalidInput
from headwater.providers.base import (
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ImagePart,
    ProviderError,
    Usage,
)
from headwater.runtime import Runtime
from headwater.services.apps import AppSnapshot
from headwater.services.chatbot_config import ChatbotConfig
from headwater.services.runs import save_events
from headwater.services.sessions import SessionService
from headwater.store.models import ChatSession, Message, Run, new_id, utcnow

log = logging.getLogger(__name__)
LLM_NODE_ID = "llm"


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
    error: dict[str, Any] | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


class ChatService:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def prepare(self, request: TurnRequest) -> "ChatTurn":
        if not request.message.strip() and not request.images:
            raise InvalidInput("the message is empty")
        config = ChatbotConfig.model_validate(request.snapshot.version.config)
        async with self.runtime.sessionmaker() as db:
            provider, model = await self.runtime.provider_service(db).resolve(request.workspace_id, config.model)
            if request.images and not provider.accepts_images:
                raise InvalidInput(f"model '{config.model}' does not accept images")
            sessions = SessionService(db)
            session = await sessions.get_or_create(
                request.workspace_id, request.session_id, request.snapshot.app.id, request.user_id
            )
            if request.history is not None:
                history = request.history
            else:
                stored = await sessions.recent_messages(request.workspace_id, session.id, config.memory_window)
                history = [ChatMessage(role=m.role, content=m.content) for m in stored]  # type: ignore[arg-type]
            run = Run(
                workspace_id=request.workspace_id,
                app_id=request.snapshot.app.id,
                app_version=request.snapshot.version.version,
                session_id=session.id,
                status="running",
                source=request.source,
                inputs={"message": request.message, "images": len(request.images)},
                started_at=utcnow(),
            )
            db.add(run)
            await db.flush()
            turn = ChatTurn(self.runtime, request, config, provider, model, run, session, history)
            await save_events(db, run.id, turn.log.take_unsaved())
            await db.commit()
        return turn


class ChatTurn:
    def __init__(
        self, runtime: Runtime, request: TurnRequest, config: ChatbotConfig, provider: ChatProvider,
        model: str, run: Run, session: ChatSession, history: list[ChatMessage],
    ):
        self.runtime = runtime
        self.request = request
        self.config = config
        self.provider = provider
        self.model = model
        self.run_id = run.id
        self.session_id = session.id
        self.message_id = new_id()
        self.history = history
        self.started = time.perf_counter()
        self.started_at = run.started_at
        self.log = EventLog(run.id)
        self.first = self.log.emit(
            ev.RUN_STARTED,
            {"run_id": run.id, "app_id": run.app_id, "session_id": session.id, "message_id": self.message_id},
        )
        self._finished = False

    def prompt(self) -> list[ChatMessage]:
        system = "\n\n".join(p for p in (self.config.system_prompt, self.request.extra_system) if p)
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages.extend(m for m in self.history if m.role != "system" or m.content)
        messages.append(ChatMessage(role="user", content=self.request.message, images=self.request.images))
        return messages

    def params(self) -> GenerationParams:
        given = self.request.params
        return GenerationParams(
            temperature=given.temperature if given.temperature is not None else self.config.temperature,
            top_p=given.top_p,
            max_tokens=given.max_tokens or self.config.max_tokens,
            stop=given.stop,
        )

    async def events(self) -> AsyncIterator[Event]:
        """Engine events, ending with run_finished; the run is recorded however the stream ends."""
        yield self.first
        yield self.log.emit(ev.NODE_STARTED, {"node_id": LLM_NODE_ID, "node_type": "llm", "model": self.config.model})
        parts: list[str] = []
        usage = Usage()
        finish_reason = "stop"
        status, error = "succeeded", None
        try:
            async for delta in self.provider.stream_chat(self.model, self.prompt(), self.params()):
                if delta.text:
                    parts.append(delta.text)
                    yield self.log.emit(ev.TOKEN, {"node_id": LLM_NODE_ID, "text": delta.text})
                if delta.usage is not None:
                    usage = delta.usage
                if delta.finish_reason:
                    finish_reason = delta.finish_reason
        except ProviderError as exc:
            status, error = "failed", {"code": "provider_error", "message": exc.detail, "status": exc.status}
        except HeadwaterError as exc:
            status, error = "failed", {"code": "invalid_input", "message": exc.detail}
        except (asyncio.CancelledError, GeneratorExit):
            await self._finish_shielded("cancelled", "".join(parts), usage, "cancelled", None)
            raise
        except Exception:  # a bug must still end the run and the stream cleanly
            log.exception("chat turn %s failed", self.run_id)
            status, error = "failed", {"code": "internal_error", "message": "internal error"}
        text = "".join(parts)
        node_status = "succeeded" if status == "succeeded" else "failed"
        yield self.log.emit(
            ev.NODE_FINISHED,
            {"node_id": LLM_NODE_ID, "status": node_status, "outputs": {"text": text},
             "elapsed_ms": self._elapsed_ms(), "usage": usage.as_dict()},
        )
        if error is not None:
            yield self.log.emit(ev.ERROR, {"code": error["code"], "message": error["message"]})
        final = await self._finish_shielded(status, text, usage, finish_reason, error)
        yield final

    async def collect(self) -> TurnResult:
        text_parts: list[str] = []
        final: Event | None = None
        async for event in self.events():
            if event.type == ev.TOKEN:
                text_parts.append(event.data["text"])
            elif event.type == ev.RUN_FINISHED:
                final = event
        assert final is not None
        data = final.data
        return TurnResult(
            run_id=self.run_id, session_id=self.session_id, message_id=self.message_id,
            status=data["status"], text="".join(text_parts), usage=_usage_from(data["usage"]),
            finish_reason=data.get("finish_reason", "stop"), elapsed_ms=data["elapsed_ms"], error=data.get("error"),
        )

    def _elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    async def _finish_shielded(
        self, status: str, text: str, usage: Usage, finish_reason: str, error: dict[str, Any] | None
    ) -> Event:
        # Shielded: a client that disconnects must not stop us recording what happened.
        return await asyncio.shield(self._finish(status, text, usage, finish_reason, error))

    async def _finish(
        self, status: str, text: str, usage: Usage, finish_reason: str, error: dict[str, Any] | None
    ) -> Event:
        if self._finished:
            raise RuntimeError("turn finished twice")
        self._finished = True
        elapsed_ms = self._elapsed_ms()
        outputs = {"text": text, "finish_reason": finish_reason}
        if status == "cancelled":
            outputs["partial"] = True
        final = self.log.emit(
            ev.RUN_FINISHED,
            {"status": status, "outputs": outputs, "usage": usage.as_dict(), "elapsed_ms": elapsed_ms,
             "finish_reason": finish_reason, "error": error},
        )
        now = utcnow()
        async with self.runtime.sessionmaker() as db:
            if status in ("succeeded", "cancelled"):
                await db.execute(insert(Message), self._message_rows(text, usage, status, now))
            await db.execute(
                update(Run).where(Run.id == self.run_id).values(
                    status=status, outputs=outputs, usage=usage.as_dict(), error=error,
                    finished_at=now, elapsed_ms=elapsed_ms,
                )
            )
            await db.execute(
                update(ChatSession)
                .where(ChatSession.workspace_id == self.request.workspace_id, ChatSession.id == self.session_id)
                .values(updated_at=now)
            )
            await save_events(db, self.run_id, self.log.take_unsaved())
            await db.commit()
        return final

    def _message_rows(self, text: str, usage: Usage, status: str, now) -> list[dict[str, Any]]:
        common = {"workspace_id": self.request.workspace_id, "session_id": self.session_id,
                  "app_id": self.request.snapshot.app.id, "run_id": self.run_id}
        reply_meta: dict[str, Any] = {"usage": usage.as_dict(), "model": self.config.model}
        if status == "cancelled":
            reply_meta["partial"] = True
        return [
            {**common, "id": new_id(), "role": "user", "content": self.request.message,
             "meta": {"images": len(self.request.images)} if self.request.images else {},
             "created_at": self.started_at},
            {**common, "id": self.message_id, "role": "assistant", "content": text, "meta": reply_meta,
             "created_at": now},
        ]


def _usage_from(data: dict[str, int]) -> Usage:
    return Usage(prompt_tokens=data.get("prompt_tokens", 0), completion_tokens=data.get("completion_tokens", 0))
