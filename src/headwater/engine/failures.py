"""Why a run failed, as one typed value: what its record, its events and the dialects' error replies say.

A node's exception becomes a `RunFailure` in one place (`of_exception`); the run
record keeps `to_data()` (CONTRACTS §3's `{code, message}` plus the HTTP status
and the node), the `node_finished`/`run_finished` events carry the value itself,
and a dialect answering a non-streamed call turns it into its HTTP error with
`http_error()`, so every dialect answers a given failure with the same status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater.engine.errors import NodeFailed
from headwater.errors import HeadwaterError, RunFailed
from headwater.providers.base import ProviderError


@dataclass(frozen=True, slots=True)
class RunFailure:
    code: str  # provider_error, timeout, invalid_input, interrupted, cancelled, internal_error, ...
    message: str
    status: int = 502  # what a non-streamed reply answers with
    node_id: str | None = None  # the node that failed, when one did

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.node_id is not None:
            data["node_id"] = self.node_id
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> "RunFailure | None":
        """The failure of a stored record or event (None when it has none)."""
        if not data:
            return None
        return cls(code=str(data.get("code") or "failed"), message=str(data.get("message") or "the run failed"),
                   status=int(data.get("status") or 502), node_id=data.get("node_id"))

    @classmethod
    def of_exception(cls, exc: BaseException, *, timeout: float | None = None,
                     node_id: str | None = None) -> "RunFailure":
        """What an exception raised while running (a node, a model call) means for the run."""
        if isinstance(exc, TimeoutError):
            within = f" within {timeout:g}s" if timeout is not None else ""
            return cls("timeout", f"node did not finish{within}", 504, node_id)
        if isinstance(exc, NodeFailed):
            return cls(exc.code, exc.detail, exc.status_code, node_id)
        if isinstance(exc, ProviderError):
            return cls("provider_error", exc.detail, exc.status_code, node_id)
        if isinstance(exc, HeadwaterError):
            return cls("invalid_input" if exc.status_code < 500 else "node_failed", exc.detail, exc.status_code,
                       node_id)
        return cls("internal_error", "internal error", 500, node_id)

    def http_error(self, run_id: str) -> RunFailed:
        """The HTTP error of a non-streamed call whose run failed this way."""
        return RunFailed(self.message, self.status, run_id)


CANCELLED = RunFailure("cancelled", "the run was cancelled", 409)
INTERRUPTED = RunFailure("interrupted", "the process executing this run stopped before it ended", 503)
