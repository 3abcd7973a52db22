"""`end`: a workflow's outputs, `{"outputs": {"name": "{{ expr }}"}}`; a lone expression keeps its type."""

from __future__ import annotations

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class EndConfig(NodeConfig):
    outputs: dict[str, str] = Field(default_factory=dict, max_length=100)


@node_type("end")
class EndNode(Node):
    instant = True
    Config = EndConfig
    allowed_in_iteration = False

    def output_names(self) -> set[str]:
        return set(self.config.outputs)

    def templates(self):
        return list(self.config.outputs.values())

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(outputs={name: ctx.evaluate(source) for name, source in self.config.outputs.items()})
