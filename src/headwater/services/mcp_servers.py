"""Remote MCP servers of a workspace: registering them, listing their tools, calling one.

An admin registers `{"name", "url", "headers"?}`; the headers (usually a token)
are sealed with the instance's SecretBox and never shown again, only their
names. Every connection goes through the egress gate (net/safe_http): a URL on
a private or loopback address is refused unless the instance allows private
egress, at registration and again at each connection (DNS may change).

A call opens a connection, calls, and closes it, all within a deadline, so a
server that is down or hangs is a typed `McpToolFailed` (a NodeFailed with a
stable code) in the run, never a hung run. Tool lists are cached per server
for `TOOLS_TTL_SECONDS`, keyed by the server's id (a server registered again
is a new entry), and dropped at once when the server says its list changed
(notifications/tools/list_changed), when it is deleted, or when a call names a
tool it no longer has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headwater.engine.agent.mcp_tools import SERVER_NAME
from headwater.engine.errors import NodeFailed
from headwater.errors import Conflict, HeadwaterError, InvalidInput, NotFound
from headwater.runtime import Runtime
from headwater.store.mcp_models import McpServer

log = logging.getLogger(__name__)

NAME_PATTERN = SERVER_NAME  # agents name its tools mcp:<name>/<tool>
TOOLS_TTL_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_RESULT_TEXT = 200_000


class McpToolFailed(NodeFailed):
    """A remote MCP server could not be reached, timed out, or its tool answered with an error."""

    def __init__(self, detail: str, code: str, status_code: int = 502):
        super().__init__(detail, code=code, status_code=status_code)


@dataclass(slots=True)
class McpServerView:
    """What the API shows of a registered server: never its header values."""

    id: str
    name: str
    url: str
    header_names: list[str]
    created_at: Any = None


@dataclass(frozen=True, slots=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(slots=True)
class RemoteResult:
    text: str
    structured: Any
    is_error: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def outputs(self) -> dict[str, Any]:
        return {"text": self.text, "json": self.structured, "is_error": self.is_error}


@dataclass(slots=True)
class _Endpoint:
    id: str
    name: str
    url: str
    headers: dict[str, str]


class McpServerService:
    def __init__(self, runtime: Runtime, db: AsyncSession):
        self.runtime = runtime
        self.db = db

    async def create(self, workspace_id: str, *, name: str, url: str, headers: dict[str, str]) -> McpServerView:
        if not NAME_PATTERN.match(name):
            raise InvalidInput("name must be letters, digits, '_', '.' or '-' (at most 100), starting with one")
        await _check_url(self.runtime, url)  # refused now rather than at the first run
        row = McpServer(
            workspace_id=workspace_id, name=name, url=url, header_names=sorted(headers),
            headers_encrypted=self.runtime.secrets.seal(orjson.dumps(headers).decode()) if headers else None,
        )
        self.db.add(row)
        try:
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise Conflict(f"an MCP server named '{name}' already exists") from None
        return _view(row)

    async def list(self, workspace_id: str) -> list[McpServerView]:
        rows = await self.db.scalars(
            select(McpServer).where(McpServer.workspace_id == workspace_id).order_by(McpServer.created_at))
        return [_view(row) for row in rows]

    async def get(self, workspace_id: str, id_or_name: str) -> McpServerView:
        return _view(await self._row(workspace_id, id_or_name))

    async def delete(self, workspace_id: str, id_or_name: str) -> None:
        row = await self._row(workspace_id, id_or_name)
        await self.db.execute(delete(McpServer).where(McpServer.id == row.id))
        await self.db.commit()
        _tool_cache.pop(row.id, None)

    async def _row(self, workspace_id: str, id_or_name: str) -> McpServer:
        row = await self.db.scalar(select(McpServer).where(
            McpServer.workspace_id == workspace_id, or_(McpServer.id == id_or_name, McpServer.name == id_or_name)))
        if row is None:
            raise NotFound("MCP server not found")
        return row

    async def endpoint(self, workspace_id: str, name: str) -> _Endpoint:
        row = await self.db.scalar(
            select(McpServer).where(McpServer.workspace_id == workspace_id, McpServer.name == name))
        if row is None:
            raise InvalidInput(f"no MCP server named '{name}' is registered in this workspace")
        headers = orjson.loads(self.runtime.secrets.open(row.headers_encrypted)) if row.headers_encrypted else {}
        return _Endpoint(row.id, row.name, row.url, headers)


def _view(row: McpServer) -> McpServerView:
    return McpServerView(id=row.id, name=row.name, url=row.url, header_names=list(row.header_names or []),
                         created_at=row.created_at)


async def _check_url(runtime: Runtime, url: str) -> None:
    from headwater.net.safe_http import SafeHttpClient

    gate = SafeHttpClient(allow_private=runtime.settings.egress_allow_private)
    try:
        await gate.check_origin(url)
    finally:
        await gate.aclose()


# -- talking to a server --------------------------------------------------------------------------

# server id -> (fetched at, tools)
_tool_cache: dict[str, tuple[float, list[RemoteTool]]] = {}


async def _endpoint(runtime: Runtime, workspace_id: str, server: str) -> _Endpoint:
    async with runtime.sessionmaker() as db:
        return await McpServerService(runtime, db).endpoint(workspace_id, server)


@asynccontextmanager
async def _connected(runtime: Runtime, endpoint: _Endpoint, timeout: float) -> AsyncIterator[Any]:
    """An initialised `mcp.Client` for the server, through the egress gate."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from headwater.net.safe_http import pinned_stream_client

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            _tool_cache.pop(endpoint.id, None)

    http = await pinned_stream_client(endpoint.url, allow_private=runtime.settings.egress_allow_private,
                                      headers=endpoint.headers, timeout=timeout)
    async with http:
        transport = streamable_http_client(endpoint.url, http_client=http)
        async with Client(transport, cache=None, read_timeout_seconds=timeout, message_handler=on_message,
                          mode="legacy") as client:
            yield client


async def _guarded(endpoint: _Endpoint, timeout: float, work):
    """Run `work()` within `timeout`; whatever goes wrong on the wire becomes a McpToolFailed."""
    from headwater.net.safe_http import EgressRefused

    try:
        async with asyncio.timeout(timeout):
            return await work()
    except EgressRefused as exc:
        raise McpToolFailed(f"MCP server '{endpoint.name}': {exc.detail}", "egress_refused", 422) from None
    except HeadwaterError:
        raise  # EgressRefused (422), McpToolFailed: already typed
    except TimeoutError:
        raise McpToolFailed(f"MCP server '{endpoint.name}' did not answer within {timeout:g}s", "mcp_timeout",
                            504) from None
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - connection errors arrive wrapped in exception groups
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.info("MCP server %s failed: %s", endpoint.name, _describe(exc))
        raise McpToolFailed(f"MCP server '{endpoint.name}' is unavailable ({_describe(exc)})",
                            "mcp_unavailable") from None


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__


async def list_remote_tools(runtime: Runtime, workspace_id: str, server: str, *, refresh: bool = False,
                            timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[RemoteTool]:
    endpoint = await _endpoint(runtime, workspace_id, server)
    cached = _tool_cache.get(endpoint.id)
    if cached is not None and not refresh and time.monotonic() - cached[0] < TOOLS_TTL_SECONDS:
        return cached[1]

    async def fetch() -> list[RemoteTool]:
        async with _connected(runtime, endpoint, timeout) as client:
            listed = await client.list_tools()
        return [RemoteTool(t.name, t.description or "", dict(t.input_schema)) for t in listed.tools]

    tools = await _guarded(endpoint, timeout, fetch)
    _tool_cache[endpoint.id] = (time.monotonic(), tools)
    return tools


async def call_remote_tool(runtime: Runtime, workspace_id: str, server: str, tool: str,
                           arguments: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> RemoteResult:
    """One tools/call; a tool that answers `isError` is a result with is_error=True, not an exception."""
    endpoint = await _endpoint(runtime, workspace_id, server)

    async def call() -> RemoteResult:
        async with _connected(runtime, endpoint, timeout) as client:
            result = await client.call_tool(tool, arguments)
        texts = [getattr(block, "text", "") for block in result.content if getattr(block, "type", "") == "text"]
        return RemoteResult(text="\n".join(texts)[:_MAX_RESULT_TEXT], structured=result.structured_content,
                            is_error=bool(result.is_error), meta=dict(result.meta or {}))

    result = await _guarded(endpoint, timeout, call)
    if result.is_error and "unknown tool" in result.text.lower():
        _tool_cache.pop(endpoint.id, None)  # the list we hold may be stale
    return result
