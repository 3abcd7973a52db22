"""`answer`: the chatflow's reply text (a template). Several answers that run are joined in order.

When the text is exactly `{{ <llm>.text }}` the llm's tokens stream as the
reply while it generates; otherwise the rendered text is sent when it is ready.
"""

from __future__ import annotations

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class AnswerConfig(NodeConfig):
    text: str = Field(max_length=50_000)


@node_type("answer")
class AnswerNode(Node):
    instant = True
    Config = AnswerConfig
    outputs = ("text",)
    allowed_in_iteration = False

    def templates(self):
        return [self.config.text]

    async def run(self, ctx: NodeContext) -> NodeResult:
        text = ctx.render(self.config.text)
        if self.id not in ctx.graph.streamed_answers:
            ctx.token(text)
        return NodeResult(outputs={"text": text})
