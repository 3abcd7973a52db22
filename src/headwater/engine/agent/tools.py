"""The agent's tools. Each reaches outside only through the guarded path of its node.

- `knowledge_search`: the knowledge retriever, over the agent's configured bases only.
- `http_request`: the SSRF-safe egress client (`net/safe_http.py`), as the http_request node.
- `calculator`: `engine/agent/calculator.py`, a tree evaluator (no `eval`).
- `run_app`: another app of the run's own workspace, as a run of its own (stopped with
  this one), at most `MAX_APP_DEPTH` apps deep.
- `code`: the code node's sandbox, only on servers that enable the code node.
- `human_input`: asks the user and waits; the agent loop pauses the run for it
  (its `run` is None: nothing executes until the answer comes).
- `mcp:<server>/<tool>`: a tool of a registered remote MCP server (engine/agent/mcp_tools.py).

A tool returns the text the model observes. A `ToolError` (or any `HeadwaterError`:
a refused URL, an unknown app) is an observation too, `error: ...`, so the model can
react; it is recorded as the call's error. A `ToolUnavailable` (a remote MCP server
that is down or too slow) is not: it fails the run with its typed code. Arguments
arrive as the model wrote them and are checked here, never trusted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.engine.agent.calculator import CalculationError, calculate, format_number
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.engine.context import NodeContext
    from headwater.engine.errors import NodeFailed

log = logging.getLogger(__name__)
HUMAN_INPUT = "human_input"
MAX_APP_DEPTH = 3
HTTP_TIMEOUT_SECONDS = 15.0
HTTP_MAX_BYTES = 512 * 1024
# Old graphs named the web tool after its only method.
ALIASES = {"http_get": "http_request"}


class ToolError(Exception):
    """The call cannot be done as asked; the message is what the model is told."""


class ToolUnavailable(Exception):
    """The service behind the tool cannot be reached: the run fails with `failure` (a typed NodeFailed)."""

    def __init__(self, failure: "NodeFailed"):
        super().__init__(failure.detail)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments (an object)
    primary: str  # the argument a text-protocol model's bare input fills
    text_input: str  # what that bare input is, for the text protocol's tool list
    run: Callable[["NodeContext", "ToolSettings", dict[str, Any]], Awaitable[str]] | None
    ref: str | None = None  # how the agent's config names it, when not `name` (mcp:<server>/<tool>)

    @property
    def shown_name(self) -> str:
        return self.ref or self.name


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """What of the agent's config its tools read."""

    knowledge_bases: tuple[str, ...]


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _text(arguments: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = arguments.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ToolError(f"argument '{name}' must be a non-empty string")
    return value


async def _knowledge_search(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
    query = _text(arguments, "query")
    if not settings.knowledge_bases:
        raise ToolError("no knowledge bases are configured for this agent")
    try:
        from headwater.knowledge.retrieve import retrieve
    except ImportError:
        raise ToolError("knowledge bases are not available in this build") from None
    result = await retrieve(ctx.run.runtime, ctx.run.workspace_id, list(settings.knowledge_bases), query, 4)
    return result.text or "no matching passages"


async def _http_request(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
    from headwater.engine.nodes.http_request import _client

    url = _text(arguments, "url").strip()
    method = str(arguments.get("method") or "GET").upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
        raise ToolError(f"method must be GET, POST, PUT, PATCH, DELETE or HEAD, not {method[:10]!r}")
    body = arguments.get("body")
    content = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else None
    allow_private = bool(getattr(ctx.run.settings, "egress_allow_private", False))
    response = await _client(allow_private).request(method, url, content=content, timeout=HTTP_TIMEOUT_SECONDS,
                                                    max_bytes=HTTP_MAX_BYTES)
    return f"HTTP {response.status_code}\n{response.text()}"


async def _calculator(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
    try:
        return format_number(calculate(_text(arguments, "expression")))
    except CalculationError as exc:
        raise ToolError(str(exc)) from None


async def _run_app(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
    # Imported here: the services import the engine.
    from headwater.services.app_calls import call_app

    target, text = _text(arguments, "app"), _text(arguments, "input", required=False)
    inputs = arguments.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ToolError("argument 'inputs' must be an object")
    depth = int(ctx.run.sys.get("call_depth") or 0) + 1
    if depth > MAX_APP_DEPTH:
        raise ToolError(f"apps may call apps at most {MAX_APP_DEPTH} deep")
    return await call_app(ctx.run.runtime, ctx.run.workspace_id, ctx.run.app_id, target, text, inputs, depth)


async def _code(ctx: "NodeContext", settings: ToolSettings, arguments: dict[str, Any]) -> str:
    if not ctx.run.settings.code_node_enabled:
        raise ToolError("the code tool is disabled on this server")
    from headwater.sandbox.code_runner import CodeLimits, run_code

    result = await run_code(_text(arguments, "source"), {}, CodeLimits())
    return json.dumps(result, ensure_ascii=False, default=str)


TOOLS: dict[str, Tool] = {tool.name: tool for tool in (
    Tool("knowledge_search", "Search the knowledge bases for passages about a topic.",
         _object(["query"], query=_string("what to look for")), "query", "a search query.", _knowledge_search),
    Tool("http_request", "Call a public web page or API over HTTP(S); returns the status and the body.",
         _object(["url"], url=_string("an http(s) URL"),
                 method=_string("the HTTP method", enum=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
                 body=_string("the request body, for POST/PUT/PATCH")),
         "url", "the URL (GET).", _http_request),
    Tool("calculator", "Compute an arithmetic expression exactly (+ - * / // % **, sqrt, log, sin...).",
         _object(["expression"], expression=_string("e.g. (3 + 4) * sqrt(16)")), "expression",
         "the expression.", _calculator),
    Tool("run_app", "Ask another app of this workspace (by its slug or id) and get its answer.",
         _object(["app", "input"], app=_string("the app's slug or id"), input=_string("the message for the app"),
                 inputs={"type": "object", "description": "named inputs, for a workflow app"}),
         "input", 'a JSON object {"app": <slug>, "input": <message>}.', _run_app),
    Tool("code", "Run Python in a sandbox: define main() returning a dict; you get the dict back as JSON.",
         _object(["source"], source=_string("Python source defining main()")), "source",
         "Python source defining main().", _code),
    Tool(HUMAN_INPUT, "Ask the user a question and wait for the answer.",
         _object(["question"], question=_string("the question for the user")), "question", "the question.",
         None),
)}


def canonical_tool_name(name: str) -> str:
    return ALIASES.get(name, name)


async def run_tool(ctx: "NodeContext", settings: ToolSettings, tool: Tool, arguments: dict[str, Any]) -> str:
    """What the model observes of one call; raises ToolError for a failure it should be told about."""
    assert tool.run is not None, "human_input is answered by the user, not run"
    try:
        return await tool.run(ctx, settings, arguments)
    except (ToolError, ToolUnavailable, CalculationError):
        raise
    except HeadwaterError as exc:  # a refused URL, an unknown app, a sandbox refusal
        raise ToolError(exc.detail) from None
    except (TypeError, ValueError) as exc:
        raise ToolError(f"bad arguments: {exc}") from None
    except Exception:
        log.exception("tool %s of run %s crashed", tool.name, ctx.run.run_id)
        raise ToolError("the tool failed unexpectedly") from None
