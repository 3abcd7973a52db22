"""The registry of job kinds. A feature declares what a job of its kind does, once:

    @job_handler("ingest_document")
    async def ingest(ctx: JobContext, payload: dict) -> None: ...

Handlers must be idempotent: a job interrupted by a restart runs again from the
start (the `attempts` counter says which try it is), so a handler re-checks the
state it left behind instead of assuming a clean slate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.runtime import Runtime


@dataclass(slots=True)
class JobContext:
    runtime: "Runtime"
    job_id: str
    kind: str
    attempt: int
    workspace_id: str | None


JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
_HANDLERS: dict[str, JobHandler] = {}


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(handler: JobHandler) -> JobHandler:
        if kind in _HANDLERS and _HANDLERS[kind] is not handler:
            raise ValueError(f"job kind '{kind}' registered twice")
        _HANDLERS[kind] = handler
        return handler

    return register


def handler_for(kind: str) -> JobHandler | None:
    return _HANDLERS.get(kind)


class JobHeldElsewhere(Exception):
    """Raised by a handler whose work another live executor holds (a second delivery of the same job):
    the job is left as it is, for that executor to finish."""
