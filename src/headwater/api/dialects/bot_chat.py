"""What the bot chat dialects (WAYSCloud, Tailwinds/Flowise) share: finding the app, starting a turn, its reply.

`start_turn()` is the one place where an app and a message become a running
turn, through `ChatService` (a message to a chatflow waiting for input answers it).
Every route of both dialects, including the list of bots and Flowise's
`chatflows-streaming` probe, serves the kinds in `SERVED_KINDS`. A turn is
anything shaped like `DialectTurn`; `reply_parts()` reads its events as the
reply a dialect streams.

`citations_of()` is the one place the dialects read citations from (WAYSCloud
`citations`, Flowise `sourceDocuments`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine import events as ev
from headwater.engine.events import Event
from headwater.errors import InvalidInput
from headwater.runtime import Runtime
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.chat import ChatService, TurnRequest, TurnResult

if TYPE_CHECKING:  # types only: dialects use the store through services
    from headwater.store.models import App

SERVED_KINDS: tuple[str, ...] = ("chatbot", "chatflow")


class DialectTurn(Protocol):
    """What a dialect needs from a started turn (services.chat.ChatTurn).

    `events()` yields engine events (CONTRACTS §3): the reply's `token`s, an `error` when
    the turn fails, and `run_finished`, except for a chatflow that pauses for human
    input, whose stream ends after the question (sent as the reply's last `token`).
    `citations` may grow while the events pass (a chatflow's retrieval node runs mid-way).
    """

    run_id: str
    session_id: str
    message_id: str
    citations: list[dict[str, Any]]

    def events(self) -> AsyncIterator[Event]: ...

    async def collect(self) -> TurnResult: ...


async def start_turn(runtime: Runtime, request: TurnRequest) -> DialectTurn:
    """Validate and record a turn of `request.snapshot`'s app; nothing is written if this raises."""
    if request.snapshot.app.kind not in SERVED_KINDS:
        raise _wrong_kind(request.snapshot.app)
    return await ChatService(runtime).prepare(request)


async def load_served_app(db: AsyncSession, workspace_id: str, id_or_slug: str) -> AppSnapshot:
    """The app's latest version; 404 when it is not in this workspace, 422 when no dialect route serves its kind."""
    snapshot = await AppService(db).snapshot_for_run(workspace_id, id_or_slug)
    if snapshot.app.kind not in SERVED_KINDS:
        raise _wrong_kind(snapshot.app)
    return snapshot


async def list_served_apps(db: AsyncSession, workspace_id: str) -> list[AppSnapshot]:
    snapshots = [s for kind in SERVED_KINDS for s in await AppService(db).list_snapshots(workspace_id, kind)]
    return sorted(snapshots, key=lambda s: s.app.created_at)


async def find_app_by_id(db: AsyncSession, app_id: str) -> App | None:
    """Any workspace's app of a served kind, by id: only for callers without a key (see AppService)."""
    app = await AppService(db).find_in_any_workspace(app_id)
    return app if app is not None and app.kind in SERVED_KINDS else None


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """One step of a streamed reply: a `token` of text, then `done`, or one `error` (with its message) instead."""

    type: Literal["token", "error", "done"]
    text: str = ""


async def reply_parts(turn: DialectTurn) -> AsyncIterator[ReplyPart]:
    """The turn's events as the reply a dialect streams; the turn runs (and is recorded) to its end."""
    failed = False
    async with aclosing(turn.events()) as events:
        async for event in events:
            if failed:
                continue  # the rest (run_finished) only records the failure
            match event.payload:
                case ev.Token(text=text):
                    yield ReplyPart("token", text)
                case ev.ErrorEvent(message=message):
                    failed = True
                    yield ReplyPart("error", message)
                case ev.RunFinished(status="cancelled"):
                    failed = True  # cancelled elsewhere (DELETE /v1/runs/{id}): no error event precedes it
                    yield ReplyPart("error", "the run was cancelled")
    if not failed:
        yield ReplyPart("done")


def citations_of(source: DialectTurn | TurnResult) -> list[dict[str, Any]]:
    """The citations of a turn (so far: a stream sends those seen before its first output) or of its result.

    Empty unless the app retrieves from knowledge bases; each is a dict with `title`, `url`, `text`, `score`...
    """
    return list(source.citations)


def _wrong_kind(app: App) -> InvalidInput:
    return InvalidInput(f"'{app.slug}' is a {app.kind} app; this route serves {' and '.join(SERVED_KINDS)} apps")
