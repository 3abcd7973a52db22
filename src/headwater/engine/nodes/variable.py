"""`variable`: names values for later nodes.

`values` sets each name from a template (a lone expression keeps its type);
`aggregate` takes, for each name, the first of several templates that gives a
value: the way to join branches where only one ran.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from headwater.engine.context import NodeContext
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class VariableConfig(NodeConfig):
    values: dict[str, str] = Field(default_factory=dict, max_length=100)
    aggregate: dict[str, list[str]] = Field(default_factory=dict, max_length=100)

    @model_validator(mode="after")
    def _something(self) -> "VariableConfig":
        if not self.values and not self.aggregate:
            raise ValueError("give 'values' or 'aggregate'")
        if set(self.values) & set(self.aggregate):
            raise ValueError("a name cannot be both in 'values' and 'aggregate'")
        return self


@node_type("variable")
class VariableNode(Node):
    Config = VariableConfig

    def output_names(self) -> set[str]:
        return set(self.config.values) | set(self.config.aggregate)

    def templates(self):
        yield from self.config.values.values()
        for sources in self.config.aggregate.values():
            yield from sources

    async def run(self, ctx: NodeContext) -> NodeResult:
        outputs = {name: ctx.evaluate(source) for name, source in self.config.values.items()}
        for name, sources in self.config.aggregate.items():
            outputs[name] = None
            for source in sources:
                value = ctx.evaluate(source)
                if value not in (None, ""):
                    outputs[name] = value
                    break
        return NodeResult(outputs=outputs)
