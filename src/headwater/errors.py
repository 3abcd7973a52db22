"""The typed error hierarchy shared by services, engine and providers.

`HeadwaterError` subclasses carry the HTTP status they map to, so the API layer
turns any of them into `{"detail": ...}` without knowing where it came from.
User mistakes (4xx) and run-time failures (5xx, provider errors) stay distinct.
"""

from __future__ import annotations


class HeadwaterError(Exception):
    status_code = 500
    # The run this failure ended, when a run was started: its id goes out as `X-Run-Id`.
    run_id: str | None = None

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail

    def of_run(self, run_id: str) -> "HeadwaterError":
        self.run_id = run_id
        return self


class BadRequest(HeadwaterError):
    status_code = 400


class Unauthorized(HeadwaterError):
    status_code = 401


class Forbidden(HeadwaterError):
    status_code = 403


class NotFound(HeadwaterError):
    status_code = 404


class Conflict(HeadwaterError):
    status_code = 409


class PayloadTooLarge(HeadwaterError):
    status_code = 413


class UnsupportedMediaType(HeadwaterError):
    """A file whose type is not accepted, or whose content does not match its name."""

    status_code = 415


class InvalidInput(HeadwaterError):
    """Well-formed JSON whose meaning is wrong (unknown model, empty messages)."""

    status_code = 422


class RunFailed(HeadwaterError):
    """A run that ended failed, answered with its failure's own HTTP status (engine.failures.RunFailure)."""

    def __init__(self, detail: str, status_code: int, run_id: str | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.run_id = run_id


class RateLimited(HeadwaterError):
    status_code = 429

    def __init__(self, detail: str, retry_after: float):
        super().__init__(detail)
        self.retry_after = retry_after
