"""The scenario registry: a scenario is one decorated function in a module of this package.

Adding a benchmark for a new feature (asynchronous executions, retrieval,
ingestion...) is adding one function, in a new module here or an existing one:

    @scenario("retrieval", "Knowledge-base query", order=60)
    def retrieval(ctx: Context) -> None:
        if not ctx.admin.route_available("POST", "/v1/knowledge-bases/{id}/query"):
            raise Skip(ROUTE_MISSING)
        ...set up through ctx.admin, then ctx.measure(...) or ctx.record(...)

Modules are discovered, so nothing else needs editing. Scenarios run in
`order`; one that raises `Skip` is reported as skipped with its reason, one
that fails is reported as failed and the run goes on.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import Context

ROUTE_MISSING = "route not available in this build"


class Skip(Exception):
    """The scenario cannot run here; the message says why."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    order: int
    run: Callable[["Context"], None]
    description: str


_REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, title: str, *, order: int):
    def register(func: Callable[["Context"], None]) -> Callable[["Context"], None]:
        if name in _REGISTRY:
            raise ValueError(f"scenario {name!r} registered twice")
        _REGISTRY[name] = Scenario(name, title, order, func, (func.__doc__ or "").strip())
        return func

    return register


def all_scenarios() -> list[Scenario]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))
