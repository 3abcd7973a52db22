"""`human_input`: pauses the run until someone answers; output `text` is the answer.

The first time the node is reached it asks (`human_input_required {node_id,
prompt}`) and its branch stops; the run becomes `waiting` once nothing else can
run. `POST /v1/runs/{id}/input` stores the answer and the run continues from
here: nodes that finished before the pause are not run again.
"""

from __future__ import annotations

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class HumanInputConfig(NodeConfig):
    prompt: str = Field(default="Please reply to continue.", max_length=20_000)


@node_type("human_input")
class HumanInputNode(Node):
    Config = HumanInputConfig
    outputs = ("text",)
    effectful = True
    allowed_in_iteration = False

    def templates(self):
        return [self.config.prompt]

    async def run(self, ctx: NodeContext) -> NodeResult:
        answer = ctx.human_answer
        if answer is None:
            return NodeResult.pause(ctx.render(self.config.prompt))
        ctx.record_inputs(answer=answer)
        return NodeResult(outputs={"text": answer})
