"""App definitions as documents (JSON or YAML): check one while it is edited, import one, export one.

The Studio's editor works on the same document as `headwater apps import|export`
(services/portable.py). `POST /v1/apps/validate` changes nothing: it parses the
text and reports every problem it can find, each with the node it concerns, so
the editor can show it next to that node. YAML is parsed here with
`yaml.safe_load` (data only, never objects), so the browser needs no YAML library.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from headwater.api.deps import AdminKey, AnyKey, DbSession, RuntimeDep
from headwater.api.native.apps import AppPublic, _public
from headwater.api.native.schemas import StrictModel
from headwater.engine.errors import GraphInvalid
from headwater.engine.graph import COMMON_NODE_FIELDS
from headwater.engine.nodes.base import node_class, registered_types
from headwater.errors import HeadwaterError, InvalidInput
from headwater.services.apps import GRAPH_KINDS, AppService, validate_definition
from headwater.services.chatbot_config import ChatbotConfig
from headwater.services.portable import export_app, import_app

router = APIRouter(prefix="/v1/apps", tags=["apps"])

MAX_SOURCE_CHARS = 1_000_000
DOCUMENT_FIELDS = ("headwater_app", "name", "slug", "kind", "description", "config", "graph", "is_public")


class DocumentSource(StrictModel):
    source: str = Field(max_length=MAX_SOURCE_CHARS)
    format: Literal["json", "yaml"] = "json"


class Problem(BaseModel):
    message: str
    node_id: str | None = None
    line: int | None = None


class ValidationReport(BaseModel):
    valid: bool
    document: dict[str, Any] | None
    errors: list[Problem]
    node_types: list[str]


def parse_document(source: str, format: str) -> dict[str, Any]:
    try:
        # safe_load: an imported definition is data, never a constructor of Python objects.
        document = json.loads(source) if format == "json" else yaml.safe_load(source)
    except json.JSONDecodeError as exc:
        raise _ParseError(f"not valid JSON: {exc.msg}", exc.lineno) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise _ParseError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(document, dict):
        raise _ParseError("an app document is an object with 'name', 'kind' and 'config' or 'graph'", None)
    return document


class _ParseError(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message, self.line = message, line


def _node_problems(graph: Any) -> list[Problem]:
    """Every node's own problems (type, config), not only the first the compiler stops at."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return []
    problems, seen = [], set()
    for raw in graph["nodes"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        node_id, type_name = raw["id"], raw.get("type")
        if node_id in seen:
            problems.append(Problem(message="duplicate node id", node_id=node_id))
        seen.add(node_id)
        cls = node_class(type_name) if isinstance(type_name, str) else None
        if cls is None:
            problems.append(Problem(message=f"unknown node type {str(type_name)[:60]!r}", node_id=node_id))
            continue
        try:
            cls.Config.model_validate({k: v for k, v in raw.items() if k not in COMMON_NODE_FIELDS})
        except ValidationError as exc:
            for err in exc.errors()[:3]:
                where = ".".join(str(p) for p in err["loc"]) or "config"
                problems.append(Problem(message=f"invalid {type_name} config: {where}: {err['msg']}", node_id=node_id))
    return problems


async def check_document(document: dict[str, Any], runtime, db, workspace_id: str) -> list[Problem]:
    unknown = sorted(set(document) - set(DOCUMENT_FIELDS))
    if unknown:
        return [Problem(message=f"unknown fields in app document: {', '.join(unknown)}")]
    kind = document.get("kind")
    problems: list[Problem] = []
    if not isinstance(document.get("name"), str) or not document["name"].strip():
        problems.append(Problem(message="the document needs a 'name'"))
    if kind in GRAPH_KINDS:
        problems.extend(_node_problems(document.get("graph")))
    try:
        normalised = validate_definition(kind, document.get("config"), document.get("graph"))
        if kind == "chatbot":
            await runtime.provider_service(db).resolve(workspace_id, ChatbotConfig.model_validate(normalised).model)
    except GraphInvalid as exc:
        # The compiler names the node in its message too; here the node travels apart.
        message = exc.detail.removeprefix(f"node '{exc.node_id}': ") if exc.node_id else exc.detail
        if not any(p.node_id == exc.node_id and p.message == message for p in problems):
            problems.append(Problem(message=message, node_id=exc.node_id))
    except HeadwaterError as exc:
        problems.append(Problem(message=exc.detail))
    return problems


@router.post("/validate", response_model=ValidationReport)
async def validate_document(body: DocumentSource, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    """Parse and check an app document without saving it; every problem found, with its node."""
    try:
        document = parse_document(body.source, body.format)
    except _ParseError as exc:
        return ValidationReport(valid=False, document=None, errors=[Problem(message=exc.message, line=exc.line)],
                                node_types=registered_types())
    problems = await check_document(document, runtime, db, principal.workspace_id)
    return ValidationReport(valid=not problems, document=document, errors=problems, node_types=registered_types())


@router.post("/import", status_code=201, response_model=AppPublic)
async def import_document(body: DocumentSource, principal: AdminKey, db: DbSession, runtime: RuntimeDep):
    """Create the app of a document, or add a version to the app with its slug. Nothing runs."""
    try:
        document = parse_document(body.source, body.format)
    except _ParseError as exc:
        raise InvalidInput(exc.message + (f" (line {exc.line})" if exc.line else "")) from None
    return _public(await import_app(AppService(db), runtime, db, principal.workspace_id, document))


@router.get("/{app_id}/export")
async def export_document(app_id: str, principal: AnyKey, db: DbSession, format: Literal["json", "yaml"] = "yaml"):
    """The app's current version as a document `POST /v1/apps/import` (or `headwater apps import`) reads."""
    document = await export_app(AppService(db), principal.workspace_id, app_id)
    if format == "json":
        text, media_type = json.dumps(document, indent=2, ensure_ascii=False, default=str), "application/json"
    else:
        text, media_type = yaml.safe_dump(document, sort_keys=False, allow_unicode=True), "application/yaml"
    filename = f"{document['slug']}.{format}"
    return Response(text, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
