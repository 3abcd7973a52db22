"""The flow graph of CONTRACTS §2: validated when an app is saved, compiled for runs.

Validation refuses, with a 422 naming the node: unknown node types (resolved
only through the registry), configs that do not fit the type, duplicate ids,
edges to or from unknown nodes, branches a node cannot take, cycles (looping is
the `iteration` node's job), nodes the start cannot reach, and templates that
read a node which does not run before them, or an output it does not have.

Compiling yields the node objects, edge maps, a topological order and, for
each iteration node, its compiled sub-graph. Compiled graphs are cached by
(app id, version): a stored version never changes.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from headwater.engine import templates
from headwater.engine.errors import GraphInvalid
from headwater.engine.nodes.base import Node, node_class

NODE_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
COMMON_NODE_FIELDS = ("id", "type", "title", "description", "position", "timeout")
SYS_FIELDS = frozenset({"session_id", "user_id", "history", "files", "query", "run_id", "app_id"})
HISTORY_LIMIT = 50
ITERATION_SCOPE = frozenset({"item", "index"})
RESERVED_IDS = frozenset({"sys", "loop", "range", "dict", "true", "false", "none"}) | ITERATION_SCOPE
MAX_NODES = 2000
MAX_TIMEOUT_SECONDS = 24 * 3600


@dataclass(slots=True, frozen=True)
class Edge:
    source: str
    target: str
    branch: str | None = None


@dataclass(slots=True)
class CompiledGraph:
    kind: str
    nodes: dict[str, Node]
    timeouts: dict[str, float | None]
    edges: list[Edge]
    outgoing: dict[str, list[Edge]]
    incoming: dict[str, list[Edge]]
    order: list[str]
    entries: list[str]
    subgraphs: dict[str, "CompiledGraph"] = field(default_factory=dict)
    # llm nodes whose tokens are the reply (an answer node prints exactly their text).
    streaming_llms: set[str] = field(default_factory=set)
    streamed_answers: set[str] = field(default_factory=set)
    # The graph's own limit for one execution segment (top-level "timeout"), else the server's.
    run_timeout: float | None = None
    # How many of the conversation's last messages a run loads as `sys.history`: what its
    # nodes' `memory` reads, or HISTORY_LIMIT when a template reads sys.history itself.
    history_window: int = 0

    def nodes_everywhere(self):
        yield from self.nodes.values()
        for subgraph in self.subgraphs.values():
            yield from subgraph.nodes_everywhere()

    def node_count(self) -> int:
        return len(self.nodes) + sum(g.node_count() for g in self.subgraphs.values())


def validate_graph(kind: str, graph: Any) -> CompiledGraph:
    """Check a graph as it is saved; raises GraphInvalid (422) naming the node."""
    return _Compiler(kind).compile_top(graph)


class _Compiler:
    def __init__(self, kind: str):
        self.kind = kind
        self.all_ids: set[str] = set()
        self.total = 0
        self.reads_history = False

    def compile_top(self, graph: Any) -> CompiledGraph:
        compiled = self._compile(graph, scope=frozenset(), where="graph", is_sub=False)
        _mark_streaming(compiled)
        memory = [getattr(node.config, "memory_window", 0) for node in compiled.nodes_everywhere()]
        compiled.history_window = max([HISTORY_LIMIT if self.reads_history else 0, *memory])
        timeout = graph.get("timeout")
        if timeout is not None:
            if not _valid_timeout(timeout):
                raise GraphInvalid(f"graph timeout must be a number of seconds in (0, {MAX_TIMEOUT_SECONDS}]")
            compiled.run_timeout = float(timeout)
        return compiled

    def _compile(self, graph: Any, scope: frozenset[str], where: str, is_sub: bool) -> CompiledGraph:
        if not isinstance(graph, dict):
            raise GraphInvalid(f"{where} must be an object with 'nodes' and 'edges'")
        raw_nodes, raw_edges = graph.get("nodes"), graph.get("edges", [])
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise GraphInvalid(f"{where} needs a non-empty 'nodes' list")
        if not isinstance(raw_edges, list):
            raise GraphInvalid(f"{where}: 'edges' must be a list")
        nodes: dict[str, Node] = {}
        timeouts: dict[str, float | None] = {}
        for raw in raw_nodes:
            node, timeout = self._node(raw, is_sub)
            nodes[node.id] = node
            timeouts[node.id] = timeout
        edges = self._edges(raw_edges, nodes)
        outgoing: dict[str, list[Edge]] = {nid: [] for nid in nodes}
        incoming: dict[str, list[Edge]] = {nid: [] for nid in nodes}
        for edge in edges:
            outgoing[edge.source].append(edge)
            incoming[edge.target].append(edge)
        order = _topological_order(nodes, outgoing, incoming)
        if is_sub:
            entries = [nid for nid in order if not incoming[nid]]
        else:
            entries = [nid for nid in order if nodes[nid].type_name == "start"]
            if len(entries) != 1:
                raise GraphInvalid(f"a {self.kind} graph needs exactly one start node (found {len(entries)})")
            for nid in entries:
                if incoming[nid]:
                    raise GraphInvalid("the start node cannot have incoming edges", nid)
            _check_reachable(nodes, outgoing, entries)
        compiled = CompiledGraph(self.kind, nodes, timeouts, edges, outgoing, incoming, order, entries)
        ancestors = _ancestors(order, incoming)
        for nid in order:
            node = nodes[nid]
            visible = {a: nodes[a] for a in ancestors[nid]}
            self._check_templates(node, node.templates(), visible, scope)
            if node.type_name == "iteration":
                inner_scope = scope | frozenset(visible) | ITERATION_SCOPE
                sub = self._compile(node.config.graph, inner_scope, f"iteration '{nid}' graph", is_sub=True)
                compiled.subgraphs[nid] = sub
                self._check_templates(node, [node.config.output], sub.nodes, inner_scope)
        return compiled

    def _node(self, raw: Any, is_sub: bool) -> tuple[Node, float | None]:
        if not isinstance(raw, dict):
            raise GraphInvalid("every node must be an object with 'id' and 'type'")
        node_id, type_name = raw.get("id"), raw.get("type")
        if not isinstance(node_id, str) or not NODE_ID_PATTERN.match(node_id):
            raise GraphInvalid(
                f"node id {str(node_id)[:70]!r} must be letters, digits or '_' (not starting with a digit), "
                "so templates can name it"
            )
        if node_id.lower() in RESERVED_IDS:
            raise GraphInvalid(f"'{node_id}' is a reserved name", node_id)
        if node_id in self.all_ids:
            raise GraphInvalid("duplicate node id", node_id)
        self.all_ids.add(node_id)
        self.total += 1
        if self.total > MAX_NODES:
            raise GraphInvalid(f"a graph may have at most {MAX_NODES} nodes")
        cls = node_class(type_name) if isinstance(type_name, str) else None
        if cls is None:
            raise GraphInvalid(f"unknown node type {str(type_name)[:60]!r}", node_id)
        if is_sub and not cls.allowed_in_iteration:
            raise GraphInvalid(f"a {type_name} node cannot be inside an iteration", node_id)
        config_fields = {k: v for k, v in raw.items() if k not in COMMON_NODE_FIELDS}
        try:
            config = cls.Config.model_validate(config_fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            location = ".".join(str(p) for p in err["loc"]) or "config"
            raise GraphInvalid(f"invalid {type_name} config: {location}: {err['msg']}", node_id) from None
        timeout = raw.get("timeout")
        if timeout is not None and not _valid_timeout(timeout):
            raise GraphInvalid(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_SECONDS}]", node_id)
        return cls(node_id, config, self.kind), (float(timeout) if timeout is not None else None)

    def _edges(self, raw_edges: list[Any], nodes: dict[str, Node]) -> list[Edge]:
        edges: list[Edge] = []
        seen: set[Edge] = set()
        for raw in raw_edges:
            if not isinstance(raw, dict):
                raise GraphInvalid("every edge must be an object with 'source' and 'target'")
            source, target, branch = raw.get("source"), raw.get("target"), raw.get("branch")
            for end, name in (("source", source), ("target", target)):
                if not isinstance(name, str) or name not in nodes:
                    other = target if end == "source" else source
                    raise GraphInvalid(f"edge {end} {str(name)[:70]!r} is not a node of this graph",
                                       other if isinstance(other, str) and other in nodes else None)
            if source == target:
                raise GraphInvalid("an edge from a node to itself is a cycle; use an iteration node", source)
            if branch is not None and not isinstance(branch, str):
                raise GraphInvalid("an edge branch must be a string", source)
            allowed = nodes[source].branches()
            if allowed is None and branch is not None:
                raise GraphInvalid(f"a {nodes[source].type_name} node has no branches (edge to '{target}')", source)
            if allowed is not None:
                if branch is None:
                    raise GraphInvalid(
                        f"the edge to '{target}' needs a 'branch' ({_names(allowed)} or default)", source)
                if branch != "default" and branch not in allowed:
                    raise GraphInvalid(f"unknown branch {branch!r} (has {_names(allowed)} and default)", source)
            edge = Edge(source, target, branch)
            if edge not in seen:
                seen.add(edge)
                edges.append(edge)
        return edges

    def _check_templates(self, node: Node, sources, visible: dict[str, Node], scope: frozenset[str]) -> None:
        for source in sources:
            if not source:
                continue
            try:
                refs = templates.references(source)
            except templates.TemplateProblem as exc:
                raise GraphInvalid(str(exc), node.id) from None
            for name, attributes in refs.items():
                if name == "sys":
                    self.reads_history = self.reads_history or not attributes or "history" in attributes
                    unknown = attributes - SYS_FIELDS
                    if unknown:
                        raise GraphInvalid(
                            f"template reads sys.{sorted(unknown)[0]}; sys has {_names(SYS_FIELDS)}", node.id)
                elif name in visible:
                    known = visible[name].output_names()
                    missing = attributes - known if known is not None else set()
                    if missing:
                        raise GraphInvalid(
                            f"template reads {name}.{sorted(missing)[0]}, but '{name}' has outputs {_names(known)}",
                            node.id)
                elif name in scope:
                    continue
                elif name in self.all_ids:
                    raise GraphInvalid(
                        f"template refers to node '{name}', which does not run before this node", node.id)
                else:
                    raise GraphInvalid(f"template refers to unknown node '{name}'", node.id)


def _valid_timeout(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= MAX_TIMEOUT_SECONDS


def _names(items) -> str:
    return ", ".join(sorted(items)) or "none"


def _topological_order(nodes, outgoing, incoming) -> list[str]:
    indegree = {nid: len(incoming[nid]) for nid in nodes}
    queue = deque(nid for nid in nodes if indegree[nid] == 0)
    order: list[str] = []
    while queue:
        nid = queue.popleft()
        order.append(nid)
        for edge in outgoing[nid]:
            indegree[edge.target] -= 1
            if indegree[edge.target] == 0:
                queue.append(edge.target)
    if len(order) != len(nodes):
        in_cycle = next(nid for nid in nodes if indegree[nid] > 0)
        raise GraphInvalid("the graph has a cycle through this node; loop with an iteration node instead", in_cycle)
    return order


def _check_reachable(nodes, outgoing, entries) -> None:
    seen = set(entries)
    queue = deque(entries)
    while queue:
        for edge in outgoing[queue.popleft()]:
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append(edge.target)
    for nid in nodes:
        if nid not in seen:
            raise GraphInvalid("not reachable from the start node", nid)


def _ancestors(order: list[str], incoming) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for nid in order:
        found: set[str] = set()
        for edge in incoming[nid]:
            found.add(edge.source)
            found |= result[edge.source]
        result[nid] = found
    return result


def _mark_streaming(graph: CompiledGraph) -> None:
    """Which llm nodes stream tokens as the reply.

    In a chatflow, an answer node whose text is exactly `{{ x.text }}` of an llm
    (or agent) node streams that node's tokens; other answers send their text
    whole. In a workflow every top-level llm node streams (progress, not a
    reply). An llm's own `stream` setting overrides both.
    """
    for node in graph.nodes.values():
        if node.type_name == "answer":
            expression = templates.single_expression(node.config.text)
            root, _, attribute = (expression or "").partition(".")
            source = graph.nodes.get(root)
            is_llm = source is not None and source.type_name in ("llm", "agent")
            if attribute == "text" and is_llm and getattr(source.config, "stream", None) is not False:
                graph.streaming_llms.add(root)
                graph.streamed_answers.add(node.id)
        elif node.type_name == "llm":
            if node.config.stream or (node.config.stream is None and graph.kind == "workflow"):
                graph.streaming_llms.add(node.id)
