"""Shared pieces of request/response models for the native API and the dialects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Who owns an object and what a caller may do come from the caller's key, never from a request body.
OWNERSHIP_FIELDS = frozenset({"workspace_id", "owner_id", "role"})


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so typos surface as 422 instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


def ownership_claims(data: Mapping[str, Any]) -> str | None:
    """Why a body that names its owner is refused, or None."""
    claimed = sorted(OWNERSHIP_FIELDS.intersection(data))
    if not claimed:
        return None
    return f"{', '.join(claimed)} cannot be set in a request: the API key decides the workspace and the rights"


class DialectRequest(BaseModel):
    """A dialect's request body: fields its clients add beyond the seed are ignored, not refused
    (subclasses may keep them with extra="allow"), except fields that claim an owner or a role."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_ownership_claims(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and (problem := ownership_claims(data)):
            raise ValueError(problem)
        return data
