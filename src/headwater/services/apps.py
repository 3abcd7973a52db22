"""Apps and their immutable versions. Every save adds a version; runs use the latest unless asked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.services.agent_config import AgentAppConfig
from headwater.services.chatbot_config import ChatbotConfig
from headwater.store.config_cache import cache_of
from headwater.store.mcp_models import McpServer
from headwater.store.models import App, AppVersion, ChatSession, Message, utcnow

APP_KINDS = ("chatbot", "chatflow", "workflow", "agent")
GRAPH_KINDS = ("chatflow", "workflow")
# Kinds that FlowService runs: those with a graph, and agents (the graph their config implies).
FLOW_KINDS = GRAPH_KINDS + ("agent",)
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


@dataclass(slots=True)
class AppSnapshot:
    """An app as a run sees it: the row plus the chosen version's definition."""

    app: App
    version: AppVersion


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:90]
    return slug or "app"


def validate_definition(kind: str, config: dict[str, Any] | None, graph: dict[str, Any] | None) -> dict[str, Any]:
    """Check an app definition when it is saved; returns the normalised config."""
    if kind not in APP_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(APP_KINDS)}")
    if kind == "chatbot":
        try:
            return ChatbotConfig.model_validate(config or {}).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise InvalidInput(f"invalid chatbot config: {_first_error(exc)}") from None
    if kind == "agent":
        return _validate_agent(config, graph)
    if kind in GRAPH_KINDS and graph is None:
        raise InvalidInput(f"a {kind} app needs a graph")
    if kind in GRAPH_KINDS:
        from headwater.engine.graph import validate_graph  # the engine imports services; import late

        validate_graph(kind, graph)
    return dict(config or {})


def _validate_agent(config: dict[str, Any] | None, graph: dict[str, Any] | None) -> dict[str, Any]:
    """An agent's config, and the graph it implies (its tools are checked there, against the agent node's)."""
    from headwater.engine.errors import GraphInvalid  # the engine imports services; import late
    from headwater.engine.graph import validate_graph
    from headwater.services.implied_graphs import runnable_graph

    if graph is not None:
        raise InvalidInput("an agent app has no graph: its config (mode, model, tools...) defines it")
    try:
        normalised = AgentAppConfig.model_validate(config or {}).model_dump()
    except ValidationError as exc:
        raise InvalidInput(f"invalid agent config: {_first_error(exc)}") from None
    try:
        validate_graph(*runnable_graph("agent", normalised, None))
    except GraphInvalid as exc:
        raise InvalidInput(exc.detail.removeprefix("node 'agent': ")) from None
    return normalised


def mcp_servers_used(kind: str, config: dict[str, Any] | None, graph: dict[str, Any] | None) -> set[str]:
    """The MCP servers an app's agents name in their tools (`mcp:<server>/<tool>`)."""
    from headwater.engine.agent.mcp_tools import servers_named  # the engine imports services; import late

    if kind == "agent":
        return servers_named((config or {}).get("tools") or [])
    nodes = (graph or {}).get("nodes") or []
    return set().union(*(servers_named(node.get("tools") or []) for node in nodes
                         if isinstance(node, dict) and node.get("type") == "agent"))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "config"
    return f"{where}: {err['msg']}"


class AppService:
    def __init__(self, db: AsyncSession):
        self.db = db

    async def create(
        self,
        workspace_id: str,
        *,
        name: str,
        kind: str,
        slug: str | None = None,
        description: str = "",
        config: dict[str, Any] | None = None,
        graph: dict[str, Any] | None = None,
        is_public: bool = False,
    ) -> AppSnapshot:
        normalised = validate_definition(kind, config, graph)
        await self._check_mcp_servers(workspace_id, kind, normalised, graph)
        if slug is not None:
            _check_slug(slug)
            if await self._slug_taken(workspace_id, slug):
                raise Conflict(f"slug '{slug}' is already used in this workspace")
        else:
            slug = await self._free_slug(workspace_id, slugify(name))
        app = App(
            workspace_id=workspace_id, name=name, slug=slug, kind=kind,
            description=description, is_public=is_public, version=1,
        )
        self.db.add(app)
        await self.db.flush()
        version = AppVersion(
            app_id=app.id, version=1, name=name, description=description, config=normalised, graph=graph
        )
        self.db.add(version)
        await self._commit_or_conflict(slug)
        return AppSnapshot(app, version)

    async def list_snapshots(self, workspace_id: str, kind: str | None = None) -> list[AppSnapshot]:
        query = (
            select(App, AppVersion)
            .join(AppVersion, (AppVersion.app_id == App.id) & (AppVersion.version == App.version))
            .where(App.workspace_id == workspace_id)
            .order_by(App.created_at)
        )
        if kind is not None:
            query = query.where(App.kind == kind)
        return [AppSnapshot(app, version) for app, version in await self.db.execute(query)]

    async def get(self, workspace_id: str, id_or_slug: str) -> App:
        app = await self.db.scalar(
            select(App).where(App.workspace_id == workspace_id, or_(App.id == id_or_slug, App.slug == id_or_slug))
        )
        if app is None:
            raise NotFound("app not found")
        return app

    async def snapshot(self, workspace_id: str, id_or_slug: str, version: int | None = None) -> AppSnapshot:
        # Every run starts here, so the app and its version come back in one query;
        # only a miss takes the slower path that tells "no app" from "no such version".
        wanted = AppVersion.version == (version if version else App.version)
        found = (await self.db.execute(
            select(App, AppVersion)
            .join(AppVersion, (AppVersion.app_id == App.id) & wanted)
            .where(App.workspace_id == workspace_id, or_(App.id == id_or_slug, App.slug == id_or_slug))
        )).first()
        if found is not None:
            return AppSnapshot(found[0], found[1])
        app = await self.get(workspace_id, id_or_slug)
        raise NotFound(f"app version {version or app.version} not found")

    async def snapshot_for_run(self, workspace_id: str, id_or_slug: str, version: int | None = None) -> AppSnapshot:
        """`snapshot()` through the config cache, for the calls that run an app.

        Any change to an app or its versions empties the cache in every process, so the
        next call runs the new version. The snapshot is shared by the calls that follow:
        read it, never change it (edits go through `snapshot()`).
        """
        return await cache_of(self.db.bind).get(
            ("app", workspace_id, id_or_slug, version), lambda: self.snapshot(workspace_id, id_or_slug, version)
        )

    async def versions(self, workspace_id: str, id_or_slug: str) -> list[AppVersion]:
        app = await self.get(workspace_id, id_or_slug)
        return list(
            await self.db.scalars(select(AppVersion).where(AppVersion.app_id == app.id).order_by(AppVersion.version))
        )

    async def update(self, workspace_id: str, id_or_slug: str, changes: dict[str, Any]) -> AppSnapshot:
        current = await self.snapshot(workspace_id, id_or_slug)
        app = current.app
        if "kind" in changes and changes["kind"] != app.kind:
            raise InvalidInput("the kind of an app cannot change; create a new app")
        config = changes.get("config", current.version.config)
        graph = changes.get("graph", current.version.graph)
        normalised = validate_definition(app.kind, config, graph)
        if "config" in changes or "graph" in changes:  # a rename is not refused for a server deleted since
            await self._check_mcp_servers(workspace_id, app.kind, normalised, graph)
        new_slug = changes.get("slug")
        if new_slug is not None and new_slug != app.slug:
            _check_slug(new_slug)
            if await self._slug_taken(workspace_id, new_slug):
                raise Conflict(f"slug '{new_slug}' is already used in this workspace")
            app.slug = new_slug
        app.name = changes.get("name") or app.name
        if changes.get("description") is not None:
            app.description = changes["description"]
        if changes.get("is_public") is not None:
            app.is_public = changes["is_public"]
        app.version += 1
        app.updated_at = utcnow()
        version = AppVersion(
            app_id=app.id, version=app.version, name=app.name, description=app.description,
            config=normalised, graph=graph,
        )
        self.db.add(version)
        await self._commit_or_conflict(app.slug)
        return AppSnapshot(app, version)

    async def delete(self, workspace_id: str, id_or_slug: str) -> None:
        app = await self.get(workspace_id, id_or_slug)
        # Conversations of a deleted app go with it; run records stay for audit (app_id → NULL).
        await self.db.execute(delete(Message).where(Message.workspace_id == workspace_id, Message.app_id == app.id))
        await self.db.execute(
            delete(ChatSession).where(ChatSession.workspace_id == workspace_id, ChatSession.app_id == app.id)
        )
        await self.db.execute(delete(AppVersion).where(AppVersion.app_id == app.id))
        await self.db.delete(app)
        await self.db.commit()

    async def _check_mcp_servers(self, workspace_id: str, kind: str, config: dict[str, Any] | None,
                                 graph: dict[str, Any] | None) -> None:
        """An agent's `mcp:<server>/...` tools name servers registered in the workspace (else 422)."""
        wanted = mcp_servers_used(kind, config, graph)
        if not wanted:
            return
        registered = set(await self.db.scalars(select(McpServer.name).where(
            McpServer.workspace_id == workspace_id, McpServer.name.in_(wanted))))
        missing = sorted(wanted - registered)
        if missing:
            raise InvalidInput(f"no MCP server named '{missing[0]}' is registered in this workspace "
                               "(POST /v1/mcp-servers)")

    async def _slug_taken(self, workspace_id: str, slug: str) -> bool:
        found = await self.db.scalar(select(App.id).where(App.workspace_id == workspace_id, App.slug == slug))
        return found is not None

    async def _free_slug(self, workspace_id: str, base: str) -> str:
        slug, n = base, 1
        while await self._slug_taken(workspace_id, slug):
            n += 1
            slug = f"{base}-{n}"
        return slug

    async def _commit_or_conflict(self, slug: str) -> None:
        try:
            await self.db.commit()
        except IntegrityError:  # a concurrent save took the slug between check and insert
            await self.db.rollback()
            raise Conflict(f"slug '{slug}' is already used in this workspace") from None

    async def find_in_any_workspace(self, app_id: str) -> App | None:
        """Any workspace's app by its id (never its slug: slugs repeat across workspaces and are guessable).

        Only for callers without a key (a public app, a yes/no probe): the caller must learn
        nothing about the app beyond what the route decides to answer.
        """
        return await self.db.get(App, app_id)


def _check_slug(slug: str) -> None:
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput("slug must be lowercase letters, digits, '-' or '_' (at most 100)")
