"""`code`: user Python, `def main(**inputs) -> dict`, run by the sandbox in a separate limited process.

Off unless the server sets HEADWATER_CODE_NODE_ENABLED: a graph with a code
node can be saved, but running it on a server that has not enabled it fails
with a clear 422. Inputs are templates (lone expressions keep their type); the
returned dict is the node's outputs (`outputs` may declare their names so
later templates are checked at save time). Nothing of the server's environment
reaches the child; see headwater.sandbox.code_runner.
"""

from __future__ import annotations

from pydantic import Field

from headwater.engine.context import NodeContext
from headwater.engine.errors import FeatureUnavailable, NodeFailed
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type


class CodeConfig(NodeConfig):
    source: str = Field(min_length=1, max_length=100_000)
    inputs: dict[str, str] = Field(default_factory=dict, max_length=50)
    outputs: list[str] | None = Field(default=None, max_length=50)
    cpu_seconds: float = Field(default=5.0, gt=0, le=60)
    wall_seconds: float = Field(default=10.0, gt=0, le=120)
    memory_mb: int = Field(default=256, ge=16, le=2048)


@node_type("code")
class CodeNode(Node):
    Config = CodeConfig
    outputs = None
    effectful = True

    def output_names(self) -> set[str] | None:
        return set(self.config.outputs) if self.config.outputs is not None else None

    def templates(self):
        return list(self.config.inputs.values())

    async def run(self, ctx: NodeContext) -> NodeResult:
        if not ctx.run.settings.code_node_enabled:
            raise FeatureUnavailable("the code node is disabled on this server (HEADWATER_CODE_NODE_ENABLED)")
        try:
            from headwater.sandbox.code_runner import CodeLimits, run_code
        except ImportError:
            raise FeatureUnavailable("the code sandbox is not available in this build") from None
        config: CodeConfig = self.config
        inputs = {name: ctx.evaluate(source) for name, source in config.inputs.items()}
        ctx.record_inputs(**inputs)
        limits = CodeLimits(
            cpu_seconds=config.cpu_seconds, wall_seconds=config.wall_seconds,
            memory_bytes=config.memory_mb * 1024 * 1024,
        )
        result = await run_code(config.source, inputs, limits)
        if not isinstance(result, dict):
            raise NodeFailed("main() must return a dict", code="code_error", status_code=422)
        missing = [name for name in config.outputs or [] if name not in result]
        if missing:
            raise NodeFailed(f"main() did not return declared output '{missing[0]}'", code="code_error",
                             status_code=422)
        return NodeResult(outputs=result)
