"""`mcp_tool`: call one tool of a remote MCP server the workspace registered (POST /v1/mcp-servers).

`{"server": "<registered name>", "tool": "<tool name>", "arguments": {"q": "{{ in.query }}"}, "timeout": 30,
"fail_on_error": true}`. Argument values are templates (a lone `{{ expr }}` keeps its native value, as
in http_request's JSON body). The connection goes through the egress gate; a server that is down,
refused or too slow fails the node with a typed code (`mcp_unavailable`, `mcp_timeout`,
`egress_refused` as invalid input); a tool that answers with `isError` fails it with `mcp_tool_error`
unless `fail_on_error` is false. Outputs `text` (the text content), `json` (structured content,
or null) and `is_error`. The call (server, tool, rendered arguments) and its result are in the trace.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type
# The same template rules as http_request's JSON body: a lone {{ expr }} keeps its native value.
from headwater.engine.nodes.http_request import _render_json as _render
from headwater.engine.nodes.http_request import _string_leaves


class McpToolConfig(NodeConfig):
    server: str = Field(min_length=1, max_length=100)
    tool: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict, max_length=100)
    timeout: float = Field(default=30.0, gt=0, le=300)
    fail_on_error: bool = True


@node_type("mcp_tool")
class McpToolNode(Node):
    Config = McpToolConfig
    outputs = ("text", "json", "is_error")
    effectful = True

    def templates(self):
        yield from _string_leaves(self.config.arguments)

    async def run(self, ctx: NodeContext) -> NodeResult:
        from headwater.services.mcp_servers import McpToolFailed, call_remote_tool

        config: McpToolConfig = self.config
        arguments = _render(ctx, config.arguments)
        ctx.record_inputs(server=config.server, tool=config.tool, arguments=arguments)
        result = await call_remote_tool(ctx.run.runtime, ctx.run.workspace_id, config.server, config.tool,
                                        arguments, timeout=config.timeout)
        if result.is_error and config.fail_on_error:
            raise McpToolFailed(f"tool '{config.tool}' of MCP server '{config.server}' failed: "
                                f"{result.text[:500] or 'no message'}", "mcp_tool_error")
        return NodeResult(outputs=result.outputs())
