"""What the bot chat dialects (WAYSCloud, Tailwinds/Flowise) share: finding the app, starting a turn.

`start_turn()` is the one place where an app and a message become a running
turn. Today it serves chatbot apps through `ChatService`; a chatflow plugs in
there (add its kind to `SERVED_KINDS` and dispatch to the chatflow service),
and every route of both dialects, including the list of bots and Flowise's
`chatflows-streaming` probe, follows. A turn is anything shaped like
`DialectTurn`.

`citations_of()` is the one place the dialects read citations from (WAYSCloud
`citations`, Flowise `sourceDocuments`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine.events import Event
from headwater.errors import Conflict, HeadwaterError, InvalidInput
from headwater.providers.base import ProviderError
from headwater.runtime import Runtime
from headwater.services.apps import AppService, AppSnapshot
from headwater.services.chat import ChatService, TurnRequest, TurnResult
from headwater.store.models import App, ChatSession

SERVED_KINDS: tuple[str, ...] = ("chatbot",)


class DialectTurn(Protocol):
    """What a dialect needs from a prepared turn (services.chat.ChatTurn is one)."""

    run_id: str
    session_id: str
    message_id: str
    citations: list[dict[str, Any]]

    def events(self) -> AsyncIterator[Event]: ...

    async def collect(self) -> TurnResult: ...


async def start_turn(runtime: Runtime, request: TurnRequest) -> DialectTurn:
    """Validate and record a turn of `request.snapshot`'s app; nothing is written if this raises."""
    kind = request.snapshot.app.kind
    if kind == "chatbot":
        return await ChatService(runtime).prepare(request)
    # Chatflow apps plug in here, e.g. `return await ChatflowService(runtime).prepare(request)`.
    raise _wrong_kind(request.snapshot.app)


async def load_served_app(db: AsyncSession, workspace_id: str, id_or_slug: str) -> AppSnapshot:
    """The app's latest version; 404 when it is not in this workspace, 422 when no dialect route serves its kind."""
    snapshot = await AppService(db).snapshot(workspace_id, id_or_slug)
    if snapshot.app.kind not in SERVED_KINDS:
        raise _wrong_kind(snapshot.app)
    return snapshot


async def list_served_apps(db: AsyncSession, workspace_id: str) -> list[AppSnapshot]:
    snapshots = [s for kind in SERVED_KINDS for s in await AppService(db).list_snapshots(workspace_id, kind)]
    return sorted(snapshots, key=lambda s: s.app.created_at)


async def find_app_by_id(db: AsyncSession, app_id: str) -> App | None:
    """Any workspace's app by its id (never its slug: slugs repeat across workspaces and are guessable).

    Only for callers without a key, whose only reach is a public app or the yes/no
    streaming probe, so the caller learns nothing else about the app.
    """
    app = await db.get(App, app_id)
    return app if app is not None and app.kind in SERVED_KINDS else None


async def existing_session(db: AsyncSession, workspace_id: str, session_id: str, app_id: str) -> ChatSession | None:
    """The named session if it exists yet; 409 when it is another app's conversation.

    Session ids may be picked by clients (Flowise `sessionId: "123"`), so without this
    check one app's caller (possibly anonymous, on a public app) could continue, and
    read through the model, another app's conversation.
    """
    session = await db.get(ChatSession, (workspace_id, session_id))
    if session is not None and session.app_id != app_id:
        raise Conflict("this session id belongs to a conversation with another app; use a different one")
    return session


def citations_of(source: DialectTurn | TurnResult) -> list[dict[str, Any]]:
    """The citations of a turn (known at prepare(), so a stream can send them first) or of its result.

    Empty unless the app has knowledge bases; each is a dict with `title`, `url`, `text`, `score`...
    """
    return list(source.citations)


def turn_failure(error: dict[str, Any] | None) -> HeadwaterError:
    """The HTTP error for a non-streamed turn that failed (its run record keeps the details)."""
    error = error or {}
    message = error.get("message", "model call failed")
    if error.get("code") == "invalid_input":
        return InvalidInput(message)
    return ProviderError(message, status=error.get("status"))


def _wrong_kind(app: App) -> InvalidInput:
    return InvalidInput(f"'{app.slug}' is a {app.kind} app; this route serves {' and '.join(SERVED_KINDS)} apps")
