"""Shared pieces of request/response models for the native API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so typos surface as 422 instead of being ignored."""

    model_config = ConfigDict(extra="forbid")
