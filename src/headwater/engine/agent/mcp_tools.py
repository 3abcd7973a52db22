"""Tools of remote MCP servers for agents: `"mcp:<server>/<tool>"` in an agent's `tools`.

`<server>` is the name of a server the workspace registered (POST /v1/mcp-servers);
saving an app that names one that is not registered is a 422 (services/apps.py), and
one deleted since fails the run with `mcp_unknown_server`. When the agent starts,
each server's tool list (cached, services/mcp_servers.py) gives the tool's
description and input schema; a tool the server does not have fails the run with
`mcp_unknown_tool`. The model sees the tool as `<server>__<tool>` (model APIs accept
only letters, digits, `_` and `-` in tool names); the trace names it by its `mcp:` ref.

A call goes the mcp_tool node's way (`call_remote_tool`: egress gate, deadline). A
tool that answers with an error is an observation the model can react to; a server
that is down, too slow or refused is `ToolUnavailable`: the run fails with its typed
code (`mcp_unavailable`, `mcp_timeout`, `egress_refused`) rather than guessing on.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from headwater.engine.agent.tools import Tool, ToolError, ToolSettings, ToolUnavailable
from headwater.engine.errors import NodeFailed
from headwater.errors import InvalidInput

if TYPE_CHECKING:
    from headwater.engine.context import NodeContext

PREFIX = "mcp:"
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_REF = re.compile(r"^mcp:([^/]+)/(\S{1,200})$")
_MODEL_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MODEL_NAME_MAX = 64  # OpenAI's limit on function names, the strictest of the providers
CALL_TIMEOUT_SECONDS = 30.0


def is_mcp_ref(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_ref(ref: str) -> tuple[str, str]:
    """(server, tool) of `mcp:<server>/<tool>`; ValueError (the message is for the user) when malformed."""
    match = _REF.match(ref)
    if match is None or not SERVER_NAME.match(match.group(1)):
        raise ValueError(f"'{ref[:120]}' is not an MCP tool: write mcp:<server>/<tool>, with the name of a "
                         "registered MCP server")
    return match.group(1), match.group(2)


def servers_named(tools: list[Any]) -> set[str]:
    """The servers the well-formed `mcp:` refs of an agent's tools name."""
    servers = set()
    for name in tools:
        if isinstance(name, str) and is_mcp_ref(name):
            try:
                servers.add(parse_ref(name)[0])
            except ValueError:
                continue  # the config's own validation reports it
    return servers


def model_name(server: str, tool: str) -> str:
    return _MODEL_NAME_UNSAFE.sub("_", f"{server}__{tool}")[:MODEL_NAME_MAX]


async def mcp_tools(ctx: "NodeContext", refs: list[str]) -> list[Tool]:
    """The agent's MCP tools, from each named server's tool list (one listing per server, at once)."""
    from headwater.services.mcp_servers import list_remote_tools

    wanted = [parse_ref(ref) for ref in refs]
    servers = list(dict.fromkeys(server for server, _ in wanted))
    runtime, workspace_id = ctx.run.runtime, ctx.run.workspace_id

    async def listing(server: str, refresh: bool = False) -> dict[str, Any]:
        try:
            return {t.name: t for t in await list_remote_tools(runtime, workspace_id, server, refresh=refresh,
                                                                timeout=CALL_TIMEOUT_SECONDS)}
        except InvalidInput as exc:  # deleted since the app was saved
            raise NodeFailed(exc.detail, code="mcp_unknown_server", status_code=422) from None

    listed = dict(zip(servers, await asyncio.gather(*(listing(s) for s in servers))))
    tools = []
    for server, name in wanted:
        remote = listed[server].get(name)
        if remote is None:  # the cached list may predate the tool
            listed[server] = await listing(server, refresh=True)
            remote = listed[server].get(name)
        if remote is None:
            raise NodeFailed(f"MCP server '{server}' has no tool '{name}' (it has: "
                             f"{', '.join(sorted(listed[server]))[:300] or 'none'})", code="mcp_unknown_tool",
                             status_code=422)
        tools.append(_tool(server, remote))
    return tools


def _tool(server: str, remote: Any) -> Tool:
    schema = remote.input_schema if remote.input_schema.get("type") == "object" else {"type": "object"}
    properties = list((schema.get("properties") or {}).keys())
    primary = next(iter(schema.get("required") or ()), None) or (properties[0] if properties else "input")

    async def run(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
        from headwater.services.mcp_servers import McpToolFailed, call_remote_tool

        try:
            result = await call_remote_tool(ctx.run.runtime, ctx.run.workspace_id, server, remote.name, arguments,
                                            timeout=CALL_TIMEOUT_SECONDS)
        except McpToolFailed as exc:  # the server, not the call: the model cannot fix it
            raise ToolUnavailable(exc) from None
        except InvalidInput as exc:
            raise ToolUnavailable(NodeFailed(exc.detail, code="mcp_unknown_server", status_code=422)) from None
        if result.is_error:
            raise ToolError(result.text or "the tool reported an error")
        if result.text or result.structured is None:
            return result.text
        return json.dumps(result.structured, ensure_ascii=False, default=str)

    described = remote.description or f"Tool '{remote.name}' of the MCP server '{server}'."
    return Tool(model_name(server, remote.name), described, schema, primary,
                f"a JSON object of its arguments ({', '.join(properties) or 'none'}).", run,
                ref=f"{PREFIX}{server}/{remote.name}")
