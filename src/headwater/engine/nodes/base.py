"""The contract of a flow node, written once.

A node type is one class in one module of this package, registered with

    @node_type("template")
    class TemplateNode(Node):
        class Config(NodeConfig):          # the node's JSON fields (besides id/type/title/...)
            text: str
        outputs = ("text",)                 # what later templates may read as {{ <id>.text }}
        async def run(self, ctx: NodeContext) -> NodeResult: ...

- `Config` is a pydantic model with `extra="forbid"`: a typo in a saved graph is
  a 422 naming the node, not a silently ignored field.
- `outputs` (or `output_names()` when they depend on the config) lets the graph
  validator refuse `{{ gen.txt }}` at save time. `None` means "not known in
  advance" (code node without declared outputs): those references are not checked.
- `templates()` lists every template string of the config, so the validator can
  check that each name it reads is an earlier node (or `sys`).
- `branches()` returns the branch names a node may take (condition, classifier);
  edges leaving it must carry one of them or "default". Other nodes return None
  and their edges carry no branch.
- `effectful = True` for nodes that reach outside the engine (model calls, HTTP,
  code, human input): their result is made durable before any successor starts,
  so a restart never repeats them. Pure nodes are recomputed instead.
- `run()` reads its inputs only through `ctx` (render/evaluate templates over
  earlier outputs), may stream `ctx.token()`, and returns `NodeResult`; it raises
  `NodeFailed` (or any `HeadwaterError`) to fail. Cancellation arrives as
  `asyncio.CancelledError`; a node that has partial output keeps it in
  `ctx.partial` so a cancelled run still shows it.

Node types are resolved only through this registry, by the exact `type`
string of the saved graph; nothing is ever imported by a user-given name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from headwater.errors import InvalidInput
from headwater.providers.base import Usage
from headwater.providers.registry import split_model_name

if TYPE_CHECKING:
    from headwater.engine.context import NodeContext


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(slots=True)
class NodeResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    branch: str | None = None
    usage: Usage | None = None
    # Set by human_input: the run pauses here with this prompt.
    pause_prompt: str | None = None

    @classmethod
    def pause(cls, prompt: str) -> "NodeResult":
        return cls(pause_prompt=prompt)


class Node:
    type_name: ClassVar[str] = ""
    Config: ClassVar[type[NodeConfig]] = NodeConfig
    outputs: ClassVar[tuple[str, ...] | None] = ()
    effectful: ClassVar[bool] = False
    # Nodes that wait on nothing (no I/O, no model): no timeout timer is armed for them, and the
    # scheduler runs them in its own task (engine/runner.py), so they must never await.
    instant: ClassVar[bool] = False
    # Nodes that make no sense per item of a list (start, end, answer, human_input).
    allowed_in_iteration: ClassVar[bool] = True

    def __init__(self, node_id: str, config: NodeConfig, graph_kind: str):
        self.id = node_id
        self.config = config
        self.graph_kind = graph_kind

    def templates(self) -> Iterable[str]:
        return ()

    def output_names(self) -> set[str] | None:
        return None if self.outputs is None else set(self.outputs)

    def branches(self) -> set[str] | None:
        return None

    async def run(self, ctx: "NodeContext") -> NodeResult:  # pragma: no cover - abstract
        raise NotImplementedError


_REGISTRY: dict[str, type[Node]] = {}


def node_type(name: str):
    def register(cls: type[Node]) -> type[Node]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"node type '{name}' registered twice")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return register


def node_class(name: str) -> type[Node] | None:
    from headwater.engine.nodes import load_builtin_nodes

    load_builtin_nodes()
    return _REGISTRY.get(name)


def registered_types() -> list[str]:
    from headwater.engine.nodes import load_builtin_nodes

    load_builtin_nodes()
    return sorted(_REGISTRY)


def _valid_model_name(value: str) -> str:
    try:
        split_model_name(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None
    return value


#: A `<provider>/<model>` name in a node's config, checked when the graph is saved.
ModelName = Annotated[str, Field(min_length=3, max_length=300), AfterValidator(_valid_model_name)]
