"""Built-in node types, one module each. The list is fixed here, never taken from user data."""

from __future__ import annotations

import importlib

BUILTIN_NODE_MODULES = (
    "start", "answer", "end", "llm", "template", "condition", "classifier", "variable",
    "iteration", "http_request", "human_input", "code", "retrieval", "agent", "mcp_tool",
)
_loaded = False


def load_builtin_nodes() -> None:
    global _loaded
    if _loaded:
        return
    for name in BUILTIN_NODE_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    _loaded = True
