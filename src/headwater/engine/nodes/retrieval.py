"""`retrieval`: the best chunks of knowledge bases for a query. Outputs `text`, `chunks`, `citations`.

Calls the one knowledge function, `headwater.knowledge.retrieve.retrieve`; a
build without the knowledge package fails the node with a clear 422, never
with made-up results. Citations are also sent as a `citations` event.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field

from headwater.engine import events as ev
from headwater.engine.context import NodeContext
from headwater.engine.errors import FeatureUnavailable
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type
from headwater.errors import InvalidInput, NotFound


class RetrievalConfig(NodeConfig):
    knowledge_bases: list[str] = Field(min_length=1, max_length=20)
    query: str = Field(default="{{ sys.query }}", max_length=20_000)
    top_k: int = Field(default=4, ge=1, le=50)


def plain(value: Any) -> Any:
    """Chunks/citations as JSON-ready data, whatever shape the knowledge package returns."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@node_type("retrieval")
class RetrievalNode(Node):
    Config = RetrievalConfig
    outputs = ("text", "chunks", "citations")
    effectful = True

    def templates(self):
        return [self.config.query]

    async def run(self, ctx: NodeContext) -> NodeResult:
        try:
            from headwater.knowledge.retrieve import retrieve
        except ImportError:
            raise FeatureUnavailable("knowledge bases are not available in this build") from None
        config: RetrievalConfig = self.config
        query = ctx.render(config.query)
        ctx.record_inputs(query=query, knowledge_bases=config.knowledge_bases, top_k=config.top_k)
        try:
            result = await retrieve(ctx.run.runtime, ctx.run.workspace_id, list(config.knowledge_bases), query,
                                    config.top_k)
        except NotFound as exc:  # the app exists; its configuration names a base that is gone
            raise InvalidInput(f"this app's {exc.detail}") from None
        citations = plain(result.citations)
        if citations and ctx.parent is None:
            ctx.run.citations.extend(citations)
            ctx.emit(ev.Citations(node_id=self.id, citations=citations))
        return NodeResult(outputs={"text": result.text, "chunks": plain(result.chunks), "citations": citations})
