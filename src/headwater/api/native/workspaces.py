"""Workspaces (instance admin only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from headwater.api.deps import DbSession, InstanceAdmin
from headwater.api.native.schemas import StrictModel
from headwater.services.workspaces import WorkspaceService

router = APIRouter(prefix="/v1/workspaces", tags=["workspaces"])


class WorkspaceCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)


class WorkspacePublic(BaseModel):
    id: str
    name: str
    created_at: datetime


class WorkspaceCreated(WorkspacePublic):
    admin_key: str


@router.post("", status_code=201, response_model=WorkspaceCreated)
async def create_workspace(body: WorkspaceCreate, _: InstanceAdmin, db: DbSession):
    workspace, key = await WorkspaceService(db).create(body.name)
    await db.commit()
    return WorkspaceCreated(id=workspace.id, name=workspace.name, created_at=workspace.created_at, admin_key=key)


@router.get("", response_model=list[WorkspacePublic])
async def list_workspaces(_: InstanceAdmin, db: DbSession):
    return await WorkspaceService(db).list()


@router.delete("/{workspace_id}", status_code=204)
async def delete_workspace(workspace_id: str, _: InstanceAdmin, db: DbSession):
    await WorkspaceService(db).delete(workspace_id)
    await db.commit()
