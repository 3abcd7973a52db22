"""The scheduler: runs a compiled graph's nodes as soon as their inputs are decided, concurrently.

Each edge into a node is decided once its source finishes: active (the source
ran and, for a branching node, took this edge's branch) or dead (the source was
skipped, or took another branch). A node runs when all its incoming edges are
decided and at least one is active; when all are dead it is skipped and its own
edges die (dead-path elimination). Independent branches therefore run at the
same time, and a join waits for every branch that can still reach it. Each node
runs in a task of its own (a stop cancels the node's work, not the scheduler's
bookkeeping), except nodes that never wait (`instant`: start, answer, end), which
run in the scheduler's task: a task each would cost more than they do.

Nodes already finished in an earlier segment of the run (`known`: replayed from
the persisted events after a pause or a restart) are not run again: their
stored outputs are put back and their edges decided as they were.

A node that fails fails the run: the others in flight are cancelled, each
recording a `node_finished` with status `cancelled` and its partial outputs.
Cancelling the scheduler does the same and re-raises. A `human_input` node that
has no answer yet pauses its branch; the rest of the graph runs on as far as it
can, and `execute()` returns the paused nodes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from headwater import telemetry
from headwater.engine import events as ev
from headwater.engine.context import NodeContext, RunState
from headwater.engine.errors import NodeTimeout
from headwater.engine.failures import RunFailure
from headwater.engine.graph import CompiledGraph
from headwater.engine.nodes.base import NodeResult
from headwater.providers.base import Usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NodeOutcome:
    """A node's result as replayed from the store."""

    status: str  # succeeded | waiting
    outputs: dict[str, Any] = field(default_factory=dict)
    branch: str | None = None
    usage: dict[str, int] | None = None


class NodeError(Exception):
    """A node failed; `failure` is what the run records."""

    def __init__(self, failure: RunFailure):
        super().__init__(failure.message)
        self.failure = failure


class GraphScheduler:
    def __init__(
        self, graph: CompiledGraph, run: RunState, variables: dict[str, Any],
        known: dict[str, NodeOutcome] | None = None, parent: tuple[str, int] | None = None,
    ):
        self.graph = graph
        self.run = run
        self.vars = variables
        self.known = known or {}
        self.parent = parent
        self.pending_in = {nid: len(edges) for nid, edges in graph.incoming.items()}
        self.active_in = dict.fromkeys(graph.nodes, 0)
        self.skipped: set[str] = set()
        self.finished: set[str] = set()

    async def execute(self) -> list[tuple[str, str]]:
        """Run to the end of every reachable branch; returns [(node_id, prompt)] of paused nodes."""
        ready: deque[str] = deque(self.graph.entries)
        running: dict[asyncio.Task, str] = {}
        paused: list[tuple[str, str]] = []
        try:
            while True:
                while ready:
                    nid = ready.popleft()
                    outcome = self.known.get(nid)
                    if outcome is not None and outcome.status == "succeeded":
                        self._accept(nid, outcome.outputs, outcome.usage)
                        ready.extend(self._propagate(nid, outcome.branch))
                        continue
                    if self.graph.nodes[nid].instant:  # it never waits: run it here, not in a task of its own
                        self._finished_node(nid, await self._run_node(nid), ready, paused)
                        continue
                    task = asyncio.create_task(self._run_node(nid), name=f"node:{nid}")
                    running[task] = nid
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._finished_node(running.pop(task), task.result(), ready, paused)
        except BaseException:
            await _cancel_all(list(running))
            raise
        return paused

    def _finished_node(self, nid: str, result: NodeResult, ready: deque[str], paused: list[tuple[str, str]]) -> None:
        if result.pause_prompt is not None:
            paused.append((nid, result.pause_prompt))
            return
        self._accept(nid, result.outputs, result.usage.as_dict() if result.usage else None)
        ready.extend(self._propagate(nid, result.branch))

    # -- bookkeeping -------------------------------------------------------------------------

    def _accept(self, nid: str, outputs: dict[str, Any], usage: dict[str, int] | None) -> None:
        self.vars[nid] = outputs
        self.finished.add(nid)
        if usage:
            self.run.usage.add(Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))
        if self.parent is not None:
            return
        node_type = self.graph.nodes[nid].type_name
        if node_type == "answer":
            self.run.reply_parts.append(str(outputs.get("text", "")))
        elif node_type == "end":
            self.run.end_outputs.update(outputs)

    def _propagate(self, nid: str, branch: str | None) -> list[str]:
        """Decide the edges leaving `nid`; returns nodes that became ready. Skips dead ones transitively."""
        ready: list[str] = []
        stack: list[tuple[str, str | None, bool]] = [(nid, branch, False)]
        while stack:
            source, taken, dead = stack.pop()
            for edge in self.graph.outgoing[source]:
                target = edge.target
                self.pending_in[target] -= 1
                if not dead and (edge.branch is None or edge.branch == taken):
                    self.active_in[target] += 1
                if self.pending_in[target] == 0:
                    if self.active_in[target]:
                        ready.append(target)
                    else:
                        self.skipped.add(target)
                        stack.append((target, None, True))
        return ready

    # -- one node ----------------------------------------------------------------------------

    def _identity(self, nid: str) -> dict[str, Any]:
        """The fields naming one node execution in its events (inside an iteration: the item too)."""
        identity: dict[str, Any] = {"node_id": nid, "node_type": self.graph.nodes[nid].type_name}
        if self.parent is not None:
            identity["parent"], identity["index"] = self.parent
        return identity

    @telemetry.traced_node
    async def _run_node(self, nid: str) -> NodeResult:
        node = self.graph.nodes[nid]
        recorder = self.run.recorder
        identity = self._identity(nid)
        ctx = NodeContext(self.run, nid, node.type_name, self.vars, self.graph, self.parent)
        resuming = nid in self.known  # a waiting human_input: its node_started is already recorded
        if not resuming:
            recorder.emit(ev.NodeStarted(**identity))
        started = time.perf_counter()
        timeout = None if node.instant else self.graph.timeouts.get(nid) or self.run.settings.flow_node_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                result = await node.run(ctx)
        except asyncio.CancelledError:
            recorder.emit(ev.NodeFinished(
                **identity, status="cancelled", outputs=ctx.partial, inputs=ctx.inputs,
                elapsed_ms=_ms_since(started), usage=None,
            ))
            raise
        except Exception as exc:  # every failure is recorded, then fails the run
            failure = RunFailure.of_exception(exc, timeout=timeout, node_id=nid)
            if failure.code == "internal_error":
                log.exception("node %s (%s) of run %s crashed", nid, node.type_name, self.run.run_id)
            recorder.emit(ev.NodeFinished(
                **identity, status="failed", outputs=ctx.partial, inputs=ctx.inputs,
                elapsed_ms=_ms_since(started), usage=None, error=failure,
            ))
            raise NodeError(failure) from None
        if result.pause_prompt is not None:
            return result
        recorder.emit(ev.NodeFinished(
            **identity, status="succeeded", outputs=result.outputs, inputs=ctx.inputs,
            elapsed_ms=_ms_since(started), usage=result.usage.as_dict() if result.usage else None,
            branch=result.branch,
        ))
        if node.effectful and self.parent is None:
            await recorder.checkpoint()
        return result


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["GraphScheduler", "NodeError", "NodeOutcome", "NodeTimeout"]
