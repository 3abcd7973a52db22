"""What a node sees while it runs: its template variables, the run's shared services, its event outlet.

`RunState` is shared by every node of one run (and of its iterations): the
recorder that numbers and persists events, the `sys` variables, the cache of
resolved models, and what the run accumulates (reply text, usage, end outputs).
`NodeContext` is one node's view: the template variables visible to it (earlier
outputs by node id, `sys`, and `item`/`index` inside an iteration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.engine import events as ev
from headwater.engine import templates
from headwater.errors import InvalidInput
from headwater.providers.base import ChatMessage, ChatProvider, Usage

if TYPE_CHECKING:
    from headwater.engine.graph import CompiledGraph
    from headwater.engine.recorder import RunRecorder
    from headwater.runtime import Runtime


@dataclass
class RunState:
    runtime: "Runtime"
    run_id: str
    workspace_id: str
    app_id: str
    kind: str
    recorder: "RunRecorder"
    sys: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)  # the start node's checked values
    answers: dict[str, str] = field(default_factory=dict)  # human input given for waiting nodes
    reply_parts: list[str] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)  # reply tokens as clients saw them (partial on cancel)
    end_outputs: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    citations: list[dict[str, Any]] = field(default_factory=list)
    # Whether anyone reads the tokens as they come (a streaming client, a follower of a background
    # run); when not, a model call may answer in one piece (cheaper).
    live: bool = True
    # The reply's model call (the llm node whose tokens are the reply): its model and why it stopped.
    reply_model: str | None = None
    finish_reason: str | None = None
    models: dict[str, tuple[ChatProvider, str]] = field(default_factory=dict)  # resolved, by full name

    @property
    def settings(self):
        return self.runtime.settings

    async def resolve_model(self, full_name: str) -> tuple[ChatProvider, str]:
        """`<provider>/<model>` → provider client, once per run."""
        found = self.models.get(full_name)
        if found is None:
            async with self.runtime.sessionmaker() as db:
                found = await self.runtime.provider_service(db).resolve(self.workspace_id, full_name)
            self.models[full_name] = found
        return found

    def history_messages(self, limit: int) -> list[ChatMessage]:
        """The conversation's last `limit` messages; all of them when the caller sent its own history."""
        if limit <= 0:
            return []
        items = self.sys.get("history") or []
        if not self.sys.get("history_given"):
            items = items[-limit:]
        return [ChatMessage(role=m["role"], content=m["content"]) for m in items
                if m.get("role") in ("user", "assistant")]


@dataclass
class NodeContext:
    run: RunState
    node_id: str
    node_type: str
    variables: dict[str, Any]
    graph: "CompiledGraph"
    # Set for nodes inside an iteration: (iteration node id, item index).
    parent: tuple[str, int] | None = None
    partial: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    def render(self, source: str) -> str:
        return templates.render(source, self.variables)

    def evaluate(self, source: str) -> Any:
        return templates.evaluate(source, self.variables)

    @property
    def streams_tokens(self) -> bool:
        return self.parent is None and self.node_id in self.graph.streaming_llms

    def token(self, text: str) -> None:
        if text and self.parent is None:
            self.run.streamed.append(text)
            self.run.recorder.emit(ev.Token(node_id=self.node_id, text=text))

    def emit(self, payload: ev.EventPayload) -> None:
        self.run.recorder.emit(payload)

    def record_inputs(self, **inputs: Any) -> None:
        """What the node actually used (rendered prompts, URL...): shown in the run trace."""
        self.inputs.update(inputs)

    @property
    def human_answer(self) -> str | None:
        return self.run.answers.get(self.node_id) if self.parent is None else None

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            raise InvalidInput(message)
