"""`iteration`: runs a sub-graph once per item of a list, at most `concurrency` items at a time.

`{"items": "{{ start.urls }}", "graph": {"nodes": [...], "edges": [...]},
"output": "{{ fetch.body }}", "concurrency": 4}`. Inside the sub-graph
templates see `item`, `index` and every node that runs before the iteration.
`output` is evaluated per item after its sub-graph ran; the node's output
`results` is the list of those values, in item order. The sub-graph starts at
its nodes without incoming edges. It is the only way to loop: edges may not
form cycles. A failing item fails the node (the other items are cancelled).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import Field

from headwater.engine import templates
from headwater.engine.context import NodeContext
from headwater.engine.errors import NodeFailed
from headwater.engine.nodes.base import Node, NodeConfig, NodeResult, node_type

MAX_ITEMS = 10_000


class IterationConfig(NodeConfig):
    items: str = Field(max_length=10_000)
    graph: dict[str, Any]
    output: str = Field(max_length=10_000)
    concurrency: int = Field(default=4, ge=1, le=32)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, (list, tuple)):
        return list(value)
    raise NodeFailed("iteration items must be a list", code="invalid_input", status_code=422)


@node_type("iteration")
class IterationNode(Node):
    Config = IterationConfig
    outputs = ("results", "count")

    def templates(self):
        return [self.config.items]

    async def run(self, ctx: NodeContext) -> NodeResult:
        from headwater.engine.runner import GraphScheduler, NodeError

        config: IterationConfig = self.config
        items = _as_list(ctx.evaluate(config.items))
        if len(items) > MAX_ITEMS:
            raise NodeFailed(f"iteration over {len(items)} items; the limit is {MAX_ITEMS}",
                             code="invalid_input", status_code=422)
        ctx.record_inputs(count=len(items))
        sub = ctx.graph.subgraphs[self.id]
        slots = asyncio.Semaphore(config.concurrency)
        results: list[Any] = [None] * len(items)

        async def one(index: int, item: Any) -> None:
            async with slots:
                variables = {**ctx.variables, "item": item, "index": index}
                await GraphScheduler(sub, ctx.run, variables, parent=(self.id, index)).execute()
                results[index] = templates.evaluate(config.output, variables)

        tasks = [asyncio.create_task(one(i, item)) for i, item in enumerate(items)]
        try:
            if tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()
        except NodeError as exc:
            failure = exc.failure
            index = next((i for i, t in enumerate(tasks) if t.done() and t.exception() is exc), "?")
            raise NodeFailed(f"item {index}: node '{failure.node_id}': {failure.message}",
                             code=failure.code, status_code=failure.status) from None
        finally:
            pending = [t for t in tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for task in tasks:  # consume every outcome so none is reported as unretrieved
                if task.done() and not task.cancelled():
                    task.exception()
        return NodeResult(outputs={"results": results, "count": len(items)})
