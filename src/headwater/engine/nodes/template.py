"""`template`: renders a text from earlier outputs; output `text`."""

from __future__ import annotations

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class TemplateConfig(NodeConfig):
    text: str = Field(max_length=50_000)


@node_type("template")
class TemplateNode(Node):
    Config = TemplateConfig
    outputs = ("text",)

    def templates(self):
        return [self.config.text]

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(outputs={"text": ctx.render(self.config.text)})
