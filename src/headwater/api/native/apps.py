"""Apps and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from headwater.api.deps import AdminKey, AnyKey, DbSession, RuntimeDep
from headwater.api.native.schemas import StrictModel
from headwater.services.apps import AppService, AppSnapshot, validate_definition
from headwater.services.chatbot_config import ChatbotConfig

router = APIRouter(prefix="/v1/apps", tags=["apps"])

Kind = Literal["chatbot", "chatflow", "workflow", "agent"]


class AppCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=100)
    kind: Kind
    description: str = Field(default="", max_length=10_000)
    config: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    is_public: bool = False


class AppUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    slug: str | None = Field(default=None, max_length=100)
    kind: Kind | None = None
    description: str | None = Field(default=None, max_length=10_000)
    config: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    is_public: bool | None = None


class AppPublic(BaseModel):
    id: str
    name: str
    slug: str
    kind: str
    description: str
    is_public: bool
    version: int
    config: dict[str, Any]
    graph: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class AppVersionPublic(BaseModel):
    version: int
    name: str
    description: str
    config: dict[str, Any]
    graph: dict[str, Any] | None
    created_at: datetime


def _public(snapshot: AppSnapshot) -> AppPublic:
    app, version = snapshot.app, snapshot.version
    return AppPublic(
        id=app.id, name=app.name, slug=app.slug, kind=app.kind, description=app.description,
        is_public=app.is_public, version=version.version, config=version.config, graph=version.graph,
        created_at=app.created_at, updated_at=app.updated_at,
    )


async def _check_model(runtime, db, workspace_id: str, kind: str, config: dict[str, Any] | None) -> None:
    """A chatbot naming a model nobody provides is refused when saved, not when first called."""
    if kind == "chatbot":
        model = ChatbotConfig.model_validate(config or {}).model
        await runtime.provider_service(db).resolve(workspace_id, model)


@router.post("", status_code=201, response_model=AppPublic)
async def create_app(body: AppCreate, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    normalised = validate_definition(body.kind, body.config, body.graph)
    await _check_model(runtime, db, principal.workspace_id, body.kind, normalised)
    return _public(await AppService(db).create(principal.workspace_id, **body.model_dump()))


@router.get("", response_model=list[AppPublic])
async def list_apps(principal: AnyKey, db: DbSession, kind: Kind | None = None):
    return [_public(s) for s in await AppService(db).list_snapshots(principal.workspace_id, kind)]


@router.get("/{app_id}", response_model=AppPublic)
async def get_app(app_id: str, principal: AnyKey, db: DbSession,
                  version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None):
    return _public(await AppService(db).snapshot(principal.workspace_id, app_id, version))


@router.get("/{app_id}/versions", response_model=list[AppVersionPublic])
async def list_versions(app_id: str, principal: AnyKey, db: DbSession):
    return await AppService(db).versions(principal.workspace_id, app_id)


@router.put("/{app_id}", response_model=AppPublic)
async def update_app(app_id: str, body: AppUpdate, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    service = AppService(db)
    changes = body.model_dump(exclude_unset=True)
    if "config" in changes:
        current = await service.get(principal.workspace_id, app_id)
        await _check_model(runtime, db, principal.workspace_id, current.kind, changes["config"])
    return _public(await service.update(principal.workspace_id, app_id, changes))


@router.delete("/{app_id}", status_code=204)
async def delete_app(app_id: str, principal: AdminKey, db: DbSession):
    await AppService(db).delete(principal.workspace_id, app_id)
