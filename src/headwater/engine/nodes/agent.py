"""`agent`: a model that uses tools in steps, in mode `react` or `actionplan`. The one agent of Headwater.

`{"model": ..., "prompt": "{{ sys.query }}", "instructions": "...", "tools": ["calculator", ...],
"knowledge_bases": [...], "mode": "react", "max_steps": 6, "max_tokens": 20000, "memory": true}`.
Agent apps run as a graph with this node (services/implied_graphs.py).

- `react`: reason, act, observe, repeat: each model call may call tools (several at
  once run in parallel); a reply without tool calls is the answer.
- `actionplan`: the model first writes a numbered plan; each step is then carried out
  as a react loop of its own (with tools), and a last call, without tools, writes the
  answer, streamed. The plan and each step's progress are events (`agent_plan`,
  `agent_step`).
- Tools are the ones of engine/agent/tools.py and, as `mcp:<server>/<tool>`, those of the
  workspace's remote MCP servers (engine/agent/mcp_tools.py), spoken natively when the provider
  supports tool calling and in the ReAct text format otherwise (engine/agent/protocol.py).
- Bounds: `max_steps` model calls with tools, and `max_tokens` tokens in all (prompt
  and completion, every call counted); past either the agent stops and says so.
- `human_input` pauses the run with the question; the agent's conversation goes into an
  `agent_checkpoint` event, and the answer resumes it there (engine/agent/checkpoint.py).
- `mode` may be a template (`{{ start.mode or 'react' }}`): an app can let each run choose.

Every thought, tool call (arguments, result or error, elapsed ms) and model call
(tokens) is an event of the run. Outputs: `text`, `steps`, `plan`, `mode`, `usage`.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import aclosing
from typing import Any

from pydantic import Field, field_validator

from headwater.engine import events as ev
from headwater.engine.agent.checkpoint import load_checkpoint
from headwater.engine.agent.protocol import (
    NativeTools,
    Reply,
    TextTools,
    message_from_state,
    message_to_state,
    parse_arguments,
)
from headwater.engine.agent.mcp_tools import is_mcp_ref, mcp_tools, parse_ref
from headwater.engine.agent.tools import (
    HUMAN_INPUT,
    TOOLS,
    Tool,
    ToolError,
    ToolSettings,
    ToolUnavailable,
    canonical_tool_name,
    run_tool,
)
from headwater.engine.context import NodeContext
from headwater.engine.errors import NodeFailed
from headwater.engine.nodes.base import ModelName, Node, NodeResult, node_type
from headwater.engine.nodes.llm import ConversationMemory
from headwater.providers.base import ChatMessage, GenerationParams, ToolCall, Usage

MODES = ("react", "actionplan")
OBSERVATION_CHARS = 4000
CALL_MAX_TOKENS = 1024
MAX_TOOLS = 40
PLAN_REQUEST = ("Before doing anything, write a plan: a numbered list of at most {limit} short steps that "
                "lead to the answer. Do not carry them out yet.")
STEP_REQUEST = ("Step {index} of {total}: {title}\nCarry out this step now (use your tools if it needs them), "
                "then reply with what you found.")
ANSWER_REQUEST = "Now write the final answer to my question, using what the steps found."
_PLAN_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s+(.+?)\s*$")


class AgentConfig(ConversationMemory):
    model: ModelName
    instructions: str = Field(default="", max_length=50_000)
    prompt: str = Field(default="{{ sys.query }}", max_length=50_000)
    tools: list[str] = Field(default_factory=list, max_length=MAX_TOOLS)
    knowledge_bases: list[str] = Field(default_factory=list, max_length=20)
    mode: str = Field(default="react", min_length=1, max_length=500)
    max_steps: int = Field(default=6, ge=1, le=30)
    max_tokens: int | None = Field(default=None, ge=100, le=2_000_000)
    temperature: float | None = Field(default=0, ge=0, le=2)

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        names = [canonical_tool_name(t) for t in tools]
        for name in names:
            if is_mcp_ref(name):
                parse_ref(name)  # its server is checked against the workspace when the app is saved
            elif name not in TOOLS:
                raise ValueError(f"unknown tool '{name}' (available: {', '.join(TOOLS)}, or mcp:<server>/<tool>)")
        return list(dict.fromkeys(names))

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode not in MODES and "{{" not in mode:
            raise ValueError("mode must be 'react', 'actionplan' or a template choosing one")
        return mode


def parse_plan(text: str, limit: int) -> list[str]:
    """The steps of a plan: its numbered or bulleted lines, else its non-empty lines; at most `limit`."""
    lines = [line for line in text.splitlines() if line.strip()]
    items = [m.group(1) for line in lines if (m := _PLAN_ITEM.match(line))]
    steps = (items or [line.strip() for line in lines])[:limit]
    return steps or ["Answer the question."]


class _Paused(Exception):
    """The agent waits for the user's answer to `question`."""

    def __init__(self, question: str):
        self.question = question


@node_type("agent")
class AgentNode(Node):
    Config = AgentConfig
    outputs = ("text", "steps", "plan", "mode", "usage")
    effectful = True

    def templates(self):
        config: AgentConfig = self.config
        return [config.instructions, config.prompt] + ([config.mode] if config.mode not in MODES else [])

    async def run(self, ctx: NodeContext) -> NodeResult:
        agent = await _AgentRun.open(ctx, self.config)
        try:
            return await agent.run()
        except _Paused as pause:
            ctx.emit(ev.AgentCheckpoint(node_id=ctx.node_id, state=agent.state()))
            return NodeResult.pause(pause.question)


class _AgentRun:
    """One execution of an agent node: its conversation and progress (all of it in `state()`)."""

    def __init__(self, ctx: NodeContext, config: AgentConfig, mode: str, tools: list[Tool], native: bool):
        self.ctx = ctx
        self.config = config
        self.mode = mode
        self.tools = {tool.name: tool for tool in tools}
        self.protocol = NativeTools(tools) if native else TextTools(tools)
        self.settings = ToolSettings(knowledge_bases=tuple(config.knowledge_bases))
        self.messages: list[ChatMessage] = []
        self.steps: list[dict[str, Any]] = []
        self.plan: list[str] | None = None
        self.phase = "plan" if mode == "actionplan" else "act"
        self.plan_index = 0
        self.step_open = False
        self.model_calls = 0
        self.tool_rounds = 0
        self.usage = Usage()
        self.answer: str | None = None
        self.pending: list[dict[str, Any]] = []  # human_input calls waiting for the user, in order

    @classmethod
    async def open(cls, ctx: NodeContext, config: AgentConfig) -> "_AgentRun":
        mode = config.mode if config.mode in MODES else ctx.render(config.mode).strip().lower()
        if mode not in MODES:
            raise NodeFailed(f"mode must be react or actionplan, not {mode[:40]!r}", code="invalid_mode",
                             status_code=422)
        provider, model = await ctx.run.resolve_model(config.model)
        tools = [TOOLS[name] for name in config.tools if not is_mcp_ref(name) and _offered(ctx, name)]
        tools += await mcp_tools(ctx, [name for name in config.tools if is_mcp_ref(name)])
        agent = cls(ctx, config, mode, tools, native=bool(tools) and provider.supports_tools(model))
        agent.provider, agent.model = provider, model
        answer = ctx.human_answer
        saved = await load_checkpoint(ctx) if answer is not None else None
        if saved is not None:
            agent.restore(saved)
            agent.answer_pending(answer)  # type: ignore[arg-type]
        else:
            agent.begin()
        return agent

    # -- state -------------------------------------------------------------------------------

    def begin(self) -> None:
        ctx, config = self.ctx, self.config
        question = ctx.render(config.prompt)
        instructions = ctx.render(config.instructions) if config.instructions else ""
        system = "\n\n".join(part for part in (instructions, self.protocol.system_note()) if part)
        if system:
            self.messages.append(ChatMessage(role="system", content=system))
        self.messages += ctx.run.history_messages(config.memory_window)
        self.messages.append(ChatMessage(role="user", content=question))
        ctx.record_inputs(model=config.model, prompt=question, tools=[t.shown_name for t in self.tools.values()],
                          mode=self.mode, native_tools=self.protocol.native)

    def state(self) -> dict[str, Any]:
        return {
            "messages": [message_to_state(m) for m in self.messages], "steps": self.steps, "plan": self.plan,
            "phase": self.phase, "plan_index": self.plan_index, "step_open": self.step_open,
            "model_calls": self.model_calls, "tool_rounds": self.tool_rounds, "usage": self.usage.as_dict(),
            "pending": self.pending,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.messages = [message_from_state(m) for m in state["messages"]]
        self.steps, self.plan = list(state["steps"]), state.get("plan")
        self.phase, self.plan_index, self.step_open = state["phase"], state["plan_index"], state["step_open"]
        self.model_calls, self.tool_rounds = state["model_calls"], state["tool_rounds"]
        usage = state["usage"]
        self.usage = Usage(usage["prompt_tokens"], usage["completion_tokens"])
        self.pending = list(state["pending"])

    def answer_pending(self, answer: str) -> None:
        """The user's answer is the result of the first waiting human_input call."""
        if not self.pending:
            return
        call = self.pending.pop(0)
        elapsed = max(0, int(time.time() * 1000) - int(call.get("asked_at_ms") or 0))
        self.ctx.emit(ev.ToolCalled(node_id=self.ctx.node_id, step=call["step"], call_id=call["id"],
                                    tool=HUMAN_INPUT, arguments={"question": call["question"]},
                                    elapsed_ms=elapsed, result=answer))
        self._record_call(call["step"], HUMAN_INPUT, {"question": call["question"]}, answer, None)
        call_object = ToolCall(id=call["id"], name=HUMAN_INPUT, arguments="")
        self.messages += self.protocol.result_messages([(call_object, answer)])

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> NodeResult:
        if self.pending:  # more than one question in one step: one at a time
            raise _Paused(self.pending[0]["question"])
        while self.phase != "done":
            if self.phase == "plan":
                await self._make_plan()
            elif self.phase == "act":
                await self._act()
            else:
                await self._write_answer()
        text = self.answer or ""
        self.ctx.partial.update(text=text)
        return NodeResult(outputs={"text": text, "steps": self.steps, "plan": self.plan, "mode": self.mode,
                                   "usage": self.usage.as_dict()}, usage=self.usage)

    async def _make_plan(self) -> None:
        self.messages.append(ChatMessage(role="user", content=PLAN_REQUEST.format(limit=self.config.max_steps)))
        text, _ = await self._call(with_tools=False)
        self.messages.append(ChatMessage(role="assistant", content=text))
        self.plan = parse_plan(text, self.config.max_steps)
        self.ctx.partial["plan"] = self.plan
        self.ctx.emit(ev.AgentPlan(node_id=self.ctx.node_id, steps=self.plan))
        self.phase = "act"

    async def _act(self) -> None:
        """Carry out the question (react) or the current plan step (actionplan) until the model replies."""
        plan = self.plan
        if plan is not None and not self.step_open:
            title = plan[self.plan_index]
            self._progress("running")
            self.messages.append(ChatMessage(role="user", content=STEP_REQUEST.format(
                index=self.plan_index + 1, total=len(plan), title=title)))
            self.step_open = True
        reply = await self._react()
        if plan is None:
            self.answer = reply
            self.phase = "done"
            if self.ctx.streams_tokens:
                self.ctx.token(reply)
            return
        self._progress("done")
        self.step_open = False
        self.plan_index += 1
        if self.plan_index >= len(plan):
            self.phase = "answer"

    async def _react(self) -> str:
        """Model calls with tools until one replies without calling any; its text is the result."""
        while True:
            if self.tool_rounds >= self.config.max_steps:
                return f"Stopped after {self.config.max_steps} steps without a final answer."
            if self._tokens_left() <= 0:
                return "Stopped: the token budget ran out before a final answer."
            step = self.tool_rounds + 1
            text, calls = await self._call(with_tools=True)
            reply = self.protocol.parse(text, calls)
            if reply.thought:
                self.ctx.emit(ev.AgentThought(node_id=self.ctx.node_id, step=step, text=reply.thought))
            if not reply.calls:
                self.messages.append(ChatMessage(role="assistant", content=text))
                self.steps.append({"step": step, "thought": reply.thought, "final_answer": reply.final or ""})
                return reply.final or ""
            self.tool_rounds += 1
            self.steps.append({"step": step, "thought": reply.thought, "calls": []})
            self.ctx.partial["steps"] = self.steps
            self.messages.append(self.protocol.assistant_message(text, reply))
            results = await self._run_calls(step, reply)
            self.messages += self.protocol.result_messages(results)
            if self.pending:
                raise _Paused(self.pending[0]["question"])

    async def _write_answer(self) -> None:
        if self._tokens_left() <= 0:
            self.answer = "Stopped: the token budget ran out before a final answer."
        else:
            self.messages.append(ChatMessage(role="user", content=ANSWER_REQUEST))
            text, _ = await self._call(with_tools=False, stream=self.ctx.streams_tokens)
            self.answer = self.protocol.parse(text, None).final or text
        self.phase = "done"

    # -- one model call, the tool calls of one step ------------------------------------------

    async def _call(self, *, with_tools: bool, stream: bool = False) -> tuple[str, list[ToolCall] | None]:
        budget = self._tokens_left()
        base = GenerationParams(temperature=self.config.temperature,
                                max_tokens=max(16, min(CALL_MAX_TOKENS, budget)) if self.config.max_tokens else None)
        params = self.protocol.params(base, with_tools and bool(self.tools))
        parts: list[str] = []
        usage, finish_reason, calls = Usage(), None, None
        started = time.perf_counter()
        try:
            async with aclosing(self.provider.stream_chat(self.model, self.messages, params)) as deltas:
                async for delta in deltas:
                    if delta.text:
                        parts.append(delta.text)
                        if stream:
                            self.ctx.token(delta.text)
                    if delta.usage is not None:
                        usage = delta.usage
                    finish_reason = delta.finish_reason or finish_reason
                    calls = delta.tool_calls or calls
        except BaseException:
            self.ctx.partial["text"] = "".join(parts)  # what was said when it broke off (or was stopped)
            raise
        self.model_calls += 1
        self.usage.add(usage)
        self.ctx.emit(ev.ModelCalled(
            node_id=self.ctx.node_id, step=self.tool_rounds + 1, model=self.config.model, usage=usage.as_dict(),
            elapsed_ms=int((time.perf_counter() - started) * 1000), finish_reason=finish_reason,
            tool_calls=len(calls or ()),
        ))
        return "".join(parts), calls

    async def _run_calls(self, step: int, reply: Reply) -> list[tuple[ToolCall, str]]:
        """Run the step's calls at once; human_input calls are queued for the user instead."""
        runnable: list[ToolCall] = []
        for call in reply.calls:
            if call.name == HUMAN_INPUT and HUMAN_INPUT in self.tools:
                arguments = parse_arguments(self.tools[HUMAN_INPUT], call.arguments)
                question = str(arguments.get("question") or "Please answer to continue.")
                self.pending.append({"id": call.id, "step": step, "question": question,
                                     "asked_at_ms": int(time.time() * 1000)})
            else:
                runnable.append(call)
        tasks = [asyncio.ensure_future(self._run_call(step, call)) for call in runnable]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:  # one call fails the run (a server down): the others stop with it
            for task in tasks:
                task.cancel()
            raise
        return list(zip(runnable, results))

    async def _run_call(self, step: int, call: ToolCall) -> str:
        tool = self.tools.get(canonical_tool_name(call.name))
        name = tool.shown_name if tool else call.name
        arguments = parse_arguments(tool, call.arguments)
        started = time.perf_counter()
        result: str | None = None
        error: str | None = None
        try:
            if tool is None or tool.run is None:
                raise ToolError(f"'{name}' is not one of your tools ({', '.join(self.tools) or 'none'})")
            result = (await run_tool(self.ctx, self.settings, tool, arguments))[:OBSERVATION_CHARS]
        except ToolError as exc:
            error = str(exc)[:OBSERVATION_CHARS]
        except ToolUnavailable as exc:  # the run fails with the typed failure; the call is in the trace
            error = exc.failure.detail[:OBSERVATION_CHARS]
            raise exc.failure from None
        except asyncio.CancelledError:
            error = "cancelled"
            raise
        finally:
            self.ctx.emit(ev.ToolCalled(node_id=self.ctx.node_id, step=step, call_id=call.id, tool=name,
                                        arguments=arguments, elapsed_ms=int((time.perf_counter() - started) * 1000),
                                        result=result, error=error))
            self._record_call(step, name, arguments, result, error)
        return result if error is None else f"error: {error}"

    def _record_call(self, step: int, tool: str, arguments: Any, result: str | None, error: str | None) -> None:
        entry = next((s for s in reversed(self.steps) if s["step"] == step and "calls" in s), None)
        if entry is not None:
            entry["calls"].append({"tool": tool, "arguments": arguments, "result": result, "error": error})

    def _progress(self, status: str) -> None:
        assert self.plan is not None
        self.ctx.emit(ev.AgentStep(node_id=self.ctx.node_id, index=self.plan_index + 1, total=len(self.plan),
                                   title=self.plan[self.plan_index], status=status))

    def _tokens_left(self) -> int:
        if self.config.max_tokens is None:
            return CALL_MAX_TOKENS
        return self.config.max_tokens - self.usage.total_tokens


def _offered(ctx: NodeContext, name: str) -> bool:
    """Tools this run can use: code only where the code node is enabled, human input only outside iterations."""
    if name == "code":
        return bool(ctx.run.settings.code_node_enabled)
    if name == HUMAN_INPUT:
        return ctx.parent is None
    return True


__all__ = ["AgentConfig", "AgentNode", "parse_plan"]
