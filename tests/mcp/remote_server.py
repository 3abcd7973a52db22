"""A small MCP server written with the official SDK, run by the tests as a process on 127.0.0.1.

Tools: `add` (a + b, structured), `shout` (upper-cases text), `slow` (sleeps `seconds`, then answers),
`broken` (answers with isError). Requests must carry `Authorization: Bearer <token>` when a token is given.
"""

from __future__ import annotations

import argparse

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server
from starlette.types import ASGIApp

TOOLS = [
    types.Tool(name="add", description="Add two integers", input_schema={
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
    types.Tool(name="shout", description="Upper-case a text", input_schema={
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
    types.Tool(name="slow", description="Answer after a while", input_schema={
        "type": "object", "properties": {"seconds": {"type": "number"}}}),
    types.Tool(name="broken", description="Always fails", input_schema={"type": "object", "properties": {}}),
]


async def list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "add":
        total = int(args["a"]) + int(args["b"])
        return types.CallToolResult(content=[types.TextContent(text=str(total))], structured_content={"sum": total})
    if params.name == "shout":
        return types.CallToolResult(content=[types.TextContent(text=str(args.get("text", "")).upper())])
    if params.name == "slow":
        await anyio.sleep(float(args.get("seconds", 30)))
        return types.CallToolResult(content=[types.TextContent(text="done")])
    if params.name == "broken":
        return types.CallToolResult(content=[types.TextContent(text="the tool broke")], is_error=True)
    return types.CallToolResult(content=[types.TextContent(text=f"unknown tool {params.name}")], is_error=True)


def require_token(app: ASGIApp, token: str | None) -> ASGIApp:
    async def guarded(scope, receive, send):
        if token and scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"no"})
                return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    server = Server("test-tools", on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(require_token(app, args.token), host="127.0.0.1", port=args.port, log_level="warning",
                lifespan="on")


if __name__ == "__main__":
    main()
