"""FlowGen's chats (CONTRACTS §5): a chat is a conversation thread with a chatbot, chatflow or agent app.

Thin translation onto ThreadService: a message starts a turn that runs in the
background (202 at once; 409 while a turn is going on), `/input` answers the
question a paused turn waits on, and the chat's status is its current turn's:
ready (none yet), running, wait_for_human_input, completed, error. A stopped turn
reads `completed` (its partial reply is kept); FlowGen has no stopped state.

`GET /chats/{id}/ws` is the seed's wished-for WebSocket: JSON frames as things
happen, `{"type":"message","message":{...}}` for each new message,
`{"type":"status","status":...}` when the status changes (and once on connect),
and `{"type":"token","content":...}` while the assistant writes. The turn's events
come through `run_feed.follow`, so it works whichever process runs the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import aclosing
from typing import Any, Literal

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import Field
from starlette.websockets import WebSocketState

from headwater.api.deps import ChatbotKey, RuntimeDep, connection_principal, has_credentials
from headwater.api.native.schemas import StrictModel
from headwater.api.responses import FastJSONResponse
from headwater.api.sse import run_id_header
from headwater.engine import events as ev
from headwater.errors import Forbidden, HeadwaterError, NotFound, RateLimited, Unauthorized
from headwater.runtime import Runtime
from headwater.services.run_feed import follow, last_seq
from headwater.services.thread_journal import MESSAGE, JournalRow, read_items
from headwater.services.threads import ThreadService, ThreadSignals, ThreadView

router = APIRouter(tags=["flowgen"])
DIALECT = "flowgen"
AUTH_FRAME_SECONDS = 5.0
IDLE_POLL_SECONDS = 1.0  # how soon a follower notices a turn started by another process
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_RATE_LIMITED = 4401, 4403, 4404, 4429
STATUS = {None: "ready", "queued": "running", "running": "running", "waiting": "wait_for_human_input",
          "succeeded": "completed", "cancelled": "completed", "failed": "error"}


class ChatCreate(StrictModel):
    name: str = Field(default="", max_length=200)
    from_type: Literal["flow"] = "flow"
    from_flow: str = Field(min_length=1, max_length=200)


class ChatMessageIn(StrictModel):
    message: str = Field(min_length=1, max_length=100_000)


def chat_public(view: ThreadView) -> dict[str, Any]:
    thread = view.thread
    return {"id": thread.id, "name": thread.name, "from_type": "flow", "from_flow": thread.app_id,
            "status": STATUS.get(view.run_status, "running"), "run_id": thread.active_run_id,
            "created_at": thread.created_at, "updated_at": thread.updated_at}


def message_public(row: JournalRow) -> dict[str, Any]:
    message = row.message
    assert message is not None
    public = {"id": message.id, "role": message.role, "content": message.content, "created_at": message.created_at,
              "run_id": message.run_id}
    if (message.meta or {}).get("files"):
        public["files"] = message.meta["files"]
    if (message.meta or {}).get("question"):
        public["question"] = True
    return public


def _service(runtime: Runtime) -> ThreadService:
    return ThreadService(runtime, DIALECT)


@router.get("/chats")
async def list_chats(principal: ChatbotKey, runtime: RuntimeDep):
    return [chat_public(view) for view in await _service(runtime).list(principal.workspace_id)]


@router.post("/chats", status_code=201)
async def create_chat(body: ChatCreate, principal: ChatbotKey, runtime: RuntimeDep):
    view = await _service(runtime).create(principal.workspace_id, body.from_flow, name=body.name,
                                          user_id=principal.key_id)
    return FastJSONResponse(chat_public(view), status_code=201)


@router.get("/chats/{chat_id}")
async def get_chat(chat_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    return chat_public(await _service(runtime).get(principal.workspace_id, chat_id))


@router.delete("/chats/{chat_id}")
async def delete_chat(chat_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    await _service(runtime).delete(principal.workspace_id, chat_id)
    return {"id": chat_id, "deleted": True}


@router.post("/chats/{chat_id}/messages", status_code=202)
async def send_message(chat_id: str, body: ChatMessageIn, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    turn = await service.send(principal.workspace_id, chat_id, body.message)
    view = await service.get(principal.workspace_id, chat_id)
    return FastJSONResponse({**chat_public(view), "message_id": turn.message_id}, status_code=202,
                            headers=run_id_header(turn.run_id))


@router.get("/chats/{chat_id}/messages")
async def list_messages(chat_id: str, principal: ChatbotKey, runtime: RuntimeDep):
    rows = await _service(runtime).items(principal.workspace_id, chat_id, MESSAGE)
    return [message_public(row) for row in rows]


@router.post("/chats/{chat_id}/input", status_code=202)
async def answer(chat_id: str, body: ChatMessageIn, principal: ChatbotKey, runtime: RuntimeDep):
    service = _service(runtime)
    turn = await service.answer(principal.workspace_id, chat_id, body.message)
    view = await service.get(principal.workspace_id, chat_id)
    return FastJSONResponse({**chat_public(view), "message_id": turn.message_id}, status_code=202,
                            headers=run_id_header(turn.run_id))


# -- the WebSocket ---------------------------------------------------------------------------------


@router.websocket("/chats/{chat_id}/ws")
async def chat_socket(websocket: WebSocket, chat_id: str):
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()  # first, so that a refusal can say why (close codes need an open socket)
    try:
        principal = await _socket_principal(websocket, runtime)
        view = await _service(runtime).get(principal.workspace_id, chat_id)
    except (WebSocketDisconnect, RuntimeError):
        return
    except HeadwaterError as exc:
        await _close(websocket, _close_code(exc), exc.detail)
        return
    await ChatSocket(websocket, _service(runtime), principal.workspace_id, view).serve()


async def _socket_principal(websocket: WebSocket, runtime: Runtime):
    """By the connection's credentials, else by a first frame `{"type":"auth","api_key":...}` within 5 s."""
    if has_credentials(websocket):
        return await connection_principal(websocket, runtime, "chatbot")
    try:
        frame = await asyncio.wait_for(websocket.receive_json(), AUTH_FRAME_SECONDS)
    except (TimeoutError, ValueError, KeyError):
        raise Unauthorized("send credentials, or an auth frame within 5 seconds") from None
    if not isinstance(frame, dict) or frame.get("type") != "auth" or not isinstance(frame.get("api_key"), str):
        raise Unauthorized("the first frame must be {\"type\": \"auth\", \"api_key\": ...}")
    return await connection_principal(websocket, runtime, "chatbot", api_key=frame["api_key"])


def _close_code(exc: HeadwaterError) -> int:
    if isinstance(exc, NotFound):
        return CLOSE_NOT_FOUND
    if isinstance(exc, Forbidden):
        return CLOSE_FORBIDDEN
    if isinstance(exc, RateLimited):
        return CLOSE_RATE_LIMITED
    return CLOSE_UNAUTHORIZED


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason[:120])


class ChatSocket:
    """One follower of a chat: new messages (after those it had when it came), status changes, tokens."""

    def __init__(self, websocket: WebSocket, service: ThreadService, workspace_id: str, view: ThreadView):
        self.websocket = websocket
        self.service = service
        self.runtime = service.runtime
        self.workspace_id = workspace_id
        self.view = view
        self.status: str | None = None
        self.cursor = 0  # the stamp of the last message sent (or there when it came)

    async def serve(self) -> None:
        self.cursor = self.view.thread.last_stamp
        listener = asyncio.create_task(self._until_closed())
        sender = asyncio.create_task(self._send_all())
        try:
            await asyncio.wait([listener, sender], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listener, sender):
                task.cancel()
            await asyncio.gather(listener, sender, return_exceptions=True)
            if sender.done() and not sender.cancelled() and isinstance(sender.exception(), NotFound):
                await _close(self.websocket, CLOSE_NOT_FOUND, "chat not found")
            else:
                await _close(self.websocket, 1000, "")

    async def _until_closed(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

    async def _send_all(self) -> None:
        await self._send_status(self.view)
        followed: str | None = None
        with ThreadSignals.of(self.runtime).watch(self.view.id) as noticed:
            while True:
                noticed.clear()
                view = await self.service.get(self.workspace_id, self.view.id)
                await self._send_messages()
                await self._send_status(view)
                run_id = view.thread.active_run_id
                if view.live and run_id and run_id != followed:
                    followed = run_id
                    await self._follow(run_id, await self._start_seq(run_id, view))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(noticed.wait(), IDLE_POLL_SECONDS)

    async def _start_seq(self, run_id: str, view: ThreadView) -> int:
        """A turn that started after we came is followed from its start, one going on from now."""
        if run_id != self.view.thread.active_run_id:
            return 0
        return await last_seq(self.runtime, run_id)

    async def _follow(self, run_id: str, after_seq: int) -> None:
        followed = await follow(self.runtime, self.workspace_id, run_id, after_seq)
        async with aclosing(followed.events) as events:
            async for event in events:
                match event.payload:
                    case ev.Token(text=text) if text:
                        await self.websocket.send_json({"type": "token", "content": text})
                    case ev.RunStarted() | ev.HumanInputRequired() | ev.RunFinished():
                        await self._send_messages()
                        await self._send_status(await self.service.get(self.workspace_id, self.view.id))

    async def _send_messages(self) -> None:
        async with self.runtime.sessionmaker() as db:
            rows = await read_items(db, self.view.id, after_stamp=self.cursor, kinds=(MESSAGE,))
        for row in rows:
            if row.message is not None:
                await self.websocket.send_text(orjson.dumps({"type": "message", "message": message_public(row)}).decode())
            self.cursor = row.item.stamp

    async def _send_status(self, view: ThreadView) -> None:
        status = STATUS.get(view.run_status, "running")
        if status != self.status:
            self.status = status
            await self.websocket.send_json({"type": "status", "status": status})

