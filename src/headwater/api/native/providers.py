"""Model providers of the caller's workspace. Secrets go in, never come out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, HttpUrl

from headwater.api.deps import AdminKey, AnyKey, DbSession, RuntimeDep
from headwater.api.native.schemas import StrictModel

router = APIRouter(prefix="/v1/providers", tags=["providers"])


class ProviderCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["openai", "anthropic", "local"]
    base_url: HttpUrl | None = None
    api_key: str | None = Field(default=None, max_length=4096)
    models: list[str] = Field(default_factory=list, max_length=500)


class ProviderPublic(BaseModel):
    id: str
    name: str
    type: str
    base_url: str | None
    models: list[str]
    has_api_key: bool
    builtin: bool
    created_at: datetime | None


@router.post("", status_code=201, response_model=ProviderPublic)
async def create_provider(body: ProviderCreate, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    return await runtime.provider_service(db).create(
        principal.workspace_id, name=body.name, type=body.type,
        base_url=str(body.base_url).rstrip("/") if body.base_url else None,
        api_key=body.api_key, models=body.models,
    )


@router.get("", response_model=list[ProviderPublic])
async def list_providers(principal: AnyKey, db: DbSession, runtime: RuntimeDep):
    return await runtime.provider_service(db).list(principal.workspace_id)


@router.get("/{provider_id}", response_model=ProviderPublic)
async def get_provider(provider_id: str, principal: AnyKey, db: DbSession, runtime: RuntimeDep):
    return await runtime.provider_service(db).get(principal.workspace_id, provider_id)


@router.delete("/{provider_id}", status_code=204)
async def delete_provider(provider_id: str, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    await runtime.provider_service(db).delete(principal.workspace_id, provider_id)
