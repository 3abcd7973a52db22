"""Each public bot dialect, called the way its own clients call it; one entry per dialect.

A dialect whose route is not mounted in this build is reported as skipped (the route
is probed, not assumed), so the same bench measures it once it lands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.context import PROMPT, Context
from bench.scenarios import ROUTE_MISSING, Skip, scenario

TOKENS = 16
CONCURRENCY = (1, 16)


@dataclass(frozen=True)
class Dialect:
    name: str
    title: str
    method: str
    route: str  # with {id} where the app goes
    # (app, session or None) -> request body; the load generator puts each client's session at "{var}"
    body: Callable[[dict[str, Any], str | None], dict[str, Any]]
    headers: Callable[[str], dict[str, str]] = lambda key: {"x-api-key": key}
    # Dialects whose sessions the server must have created first: a reply's session field.
    session_from_reply: str | None = None

    def path(self, app: dict[str, Any]) -> str:
        return self.route.replace("{id}", app["id"])


def _with(body: dict[str, Any], field: str, value: str | None) -> dict[str, Any]:
    return {**body, field: value} if value is not None else body


DIALECTS = [
    Dialect(
        "openai", "OpenAI-compatible (Waterflai)", "POST", "/v1/chat/completions",
        lambda app, session: _with({"model": app["slug"], "messages": [{"role": "user", "content": PROMPT}]},
                                   "conversation_id", session),
    ),
    Dialect(
        "wayscloud", "WAYSCloud", "POST", "/v1/chatbot/api/chat",
        lambda app, session: _with({"bot_id": app["id"], "message": PROMPT}, "session_id", session),
        session_from_reply="session_id",
    ),
    Dialect(
        "tailwinds", "Tailwinds / Flowise prediction", "POST", "/api/v1/prediction/{id}",
        lambda app, session: {"question": PROMPT} | ({"overrideConfig": {"sessionId": session}} if session else {}),
        headers=lambda key: {"authorization": f"Bearer {key}"},
    ),
]


def _sessions(ctx: Context, dialect: Dialect, app: dict[str, Any], count: int) -> list[str]:
    """One conversation per client; where the server names sessions, one first call each."""
    if dialect.session_from_reply is None:
        return [f"bench-{dialect.name}-{i}-{app['id'][:8]}" for i in range(count)]
    first = json.dumps(dialect.body(app, None))
    sessions = []
    with httpx.Client(base_url=ctx.headwater.base_url, headers=dialect.headers(ctx.chat_key), timeout=30) as client:
        for _ in range(count):
            reply = client.request(dialect.method, dialect.path(app), content=first,
                                   headers={"content-type": "application/json"})
            if reply.status_code != 200:
                raise RuntimeError(f"{dialect.name}: first call answered {reply.status_code}: {reply.text[:200]}")
            sessions.append(reply.json()[dialect.session_from_reply])
    return sessions


def _runner(dialect: Dialect) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        if not ctx.admin.route_available(dialect.method, dialect.route):
            raise Skip(ROUTE_MISSING)
        app = ctx.chatbot_for(TOKENS, 0)
        body = json.dumps(dialect.body(app, "{var}"))
        for concurrency in CONCURRENCY:
            ctx.measure(f"c{concurrency}", target="headwater", path=dialect.path(app), body=body,
                        concurrency=concurrency, method=dialect.method, headers=dialect.headers(ctx.chat_key),
                        client_vars=_sessions(ctx, dialect, app, concurrency), dialect=dialect.name)

    run.__doc__ = (f"{dialect.title}: `{dialect.method} {dialect.route}`, {TOKENS}-token answers, no delay, "
                   f"one conversation per client, at {' and '.join(map(str, CONCURRENCY))} clients.")
    return run


for _order, _dialect in enumerate(DIALECTS):
    scenario(f"dialect_{_dialect.name}", f"Dialect: {_dialect.title}", order=40 + _order)(_runner(_dialect))
