"""API keys of the caller's workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from headwater.api.deps import AdminKey, DbSession
from headwater.api.native.schemas import StrictModel
from headwater.services.keys import KeyService

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

Scope = Literal["admin", "chatbot", "knowledge"]


class KeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=lambda: ["chatbot"], min_length=1)
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000, description="requests per minute")


class KeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    rate_limit: int | None
    created_at: datetime
    last_used_at: datetime | None


class KeyCreated(BaseModel):
    id: str
    name: str
    key: str
    prefix: str
    scopes: list[str]
    rate_limit: int | None
    created_at: datetime


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, principal: AdminKey, db: DbSession):
    row, key = await KeyService(db).create(principal.workspace_id, body.name, list(body.scopes), body.rate_limit)
    await db.commit()
    return KeyCreated(
        id=row.id, name=row.name, key=key, prefix=row.prefix, scopes=row.scopes,
        rate_limit=row.rate_limit, created_at=row.created_at,
    )


@router.get("", response_model=list[KeyPublic])
async def list_keys(principal: AdminKey, db: DbSession):
    return await KeyService(db).list(principal.workspace_id)


@router.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: str, principal: AdminKey, db: DbSession):
    await KeyService(db).revoke(principal.workspace_id, key_id)
    await db.commit()
