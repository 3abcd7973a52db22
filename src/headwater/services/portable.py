"""App definitions as portable documents (the `headwater apps import|export` format)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from headwater.errors import InvalidInput, NotFound
from headwater.services.apps import AppService, AppSnapshot, validate_definition
from headwater.services.chatbot_config import ChatbotConfig

FORMAT_VERSION = 1
_FIELDS = ("name", "slug", "kind", "description", "config", "graph", "is_public")


async def export_app(apps: AppService, workspace_id: str, id_or_slug: str) -> dict[str, Any]:
    snapshot = await apps.snapshot(workspace_id, id_or_slug)
    app, version = snapshot.app, snapshot.version
    document: dict[str, Any] = {
        "headwater_app": FORMAT_VERSION, "name": app.name, "slug": app.slug, "kind": app.kind,
        "description": app.description, "is_public": app.is_public, "config": version.config,
    }
    if version.graph is not None:
        document["graph"] = version.graph
    return document


async def import_app(apps: AppService, runtime, db, workspace_id: str, document: dict[str, Any]) -> AppSnapshot:
    """Create the app, or add a version when the slug exists. Importing only stores data; nothing runs."""
    fields = {k: document[k] for k in _FIELDS if k in document}
    unknown = set(document) - set(_FIELDS) - {"headwater_app"}
    if unknown:
        raise InvalidInput(f"unknown fields in app document: {', '.join(sorted(unknown))}")
    if "name" not in fields or "kind" not in fields:
        raise InvalidInput("an app document needs at least 'name' and 'kind'")
    normalised = validate_definition(fields["kind"], fields.get("config"), fields.get("graph"))
    if fields["kind"] == "chatbot":
        try:
            await runtime.provider_service(db).resolve(workspace_id, ChatbotConfig.model_validate(normalised).model)
        except ValidationError as exc:  # pragma: no cover - validate_definition already checked
            raise InvalidInput(str(exc)) from None
    slug = fields.get("slug")
    if slug:
        try:
            await apps.get(workspace_id, slug)
        except NotFound:
            return await apps.create(workspace_id, **fields)
        return await apps.update(workspace_id, slug, {k: v for k, v in fields.items() if k != "slug"})
    return await apps.create(workspace_id, **fields)
