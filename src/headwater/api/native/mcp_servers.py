"""Remote MCP servers of the caller's workspace (admin only). Header values go in, never come out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field, HttpUrl

from headwater.api.deps import AdminKey, DbSession, RuntimeDep
from headwater.api.native.schemas import StrictModel
from headwater.services.mcp_servers import McpServerService, list_remote_tools

router = APIRouter(prefix="/v1/mcp-servers", tags=["mcp"])


class McpServerCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)


class McpServerPublic(BaseModel):
    id: str
    name: str
    url: str
    header_names: list[str]
    created_at: datetime | None


class RemoteToolPublic(BaseModel):
    name: str
    description: str
    input_schema: dict


@router.post("", status_code=201, response_model=McpServerPublic)
async def register_server(body: McpServerCreate, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    return await McpServerService(runtime, db).create(
        principal.workspace_id, name=body.name, url=str(body.url), headers=body.headers)


@router.get("", response_model=list[McpServerPublic])
async def list_servers(principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    return await McpServerService(runtime, db).list(principal.workspace_id)


@router.get("/{server_id}", response_model=McpServerPublic)
async def get_server(server_id: str, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    return await McpServerService(runtime, db).get(principal.workspace_id, server_id)


@router.get("/{server_id}/tools", response_model=list[RemoteToolPublic])
async def server_tools(server_id: str, principal: AdminKey, db: DbSession, runtime: RuntimeDep,
                       refresh: bool = False):
    server = await McpServerService(runtime, db).get(principal.workspace_id, server_id)
    await db.close()
    return await list_remote_tools(runtime, principal.workspace_id, server.name, refresh=refresh)


@router.delete("/{server_id}", status_code=204)
async def delete_server(server_id: str, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    await McpServerService(runtime, db).delete(principal.workspace_id, server_id)
