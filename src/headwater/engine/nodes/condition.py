"""`condition`: the first case whose `when` is true picks the branch; none → `default`.

`{"cases": [{"id": "yes", "when": "{{ start.n > 3 }}"}]}`; edges leaving the
node carry `"branch": "yes"` or `"branch": "default"`. Output `branch`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from headwater.engine import templates
from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class Case(NodeConfig):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    when: str = Field(max_length=10_000)


class ConditionConfig(NodeConfig):
    cases: list[Case] = Field(min_length=1, max_length=50)

    @field_validator("cases")
    @classmethod
    def _ids(cls, cases: list[Case]) -> list[Case]:
        ids = [c.id for c in cases]
        if len(ids) != len(set(ids)) or "default" in ids:
            raise ValueError("case ids must be unique and not 'default'")
        return cases


@node_type("condition")
class ConditionNode(Node):
    Config = ConditionConfig
    outputs = ("branch",)

    def templates(self):
        return [case.when for case in self.config.cases]

    def branches(self) -> set[str]:
        return {case.id for case in self.config.cases}

    async def run(self, ctx: NodeContext) -> NodeResult:
        for case in self.config.cases:
            if templates.truthy(ctx.evaluate(case.when)):
                return NodeResult(outputs={"branch": case.id}, branch=case.id)
        return NodeResult(outputs={"branch": "default"}, branch="default")
