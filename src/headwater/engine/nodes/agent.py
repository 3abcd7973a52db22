"""`agent`: a model that uses tools in steps. `mode` react (reason, act, observe) or actionplan (plan first).

`{"model": ..., "prompt": "{{ sys.query }}", "instructions": "...", "tools": ["http_get", "knowledge_search"],
"knowledge_bases": [...], "mode": "react", "max_steps": 6}`. Works with any
chat model, without a tool-calling API: the model is asked to answer in the
ReAct text format (`Action:` / `Action Input:` or `Final Answer:`), each action
runs one of the tools below and its result goes back as an `Observation:`.
A reply in neither form is taken as the final answer. Tools are only these
capabilities, each through the same guarded path as its node: `http_get` uses
the SSRF-safe client, `knowledge_search` the knowledge retriever of the
configured bases. Outputs `text`, `steps` (thought, action, input, observation)
and `usage`; every step is also a `node` trace entry via the outputs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from headwater.engine.context import NodeContext
from headwater.engine.errors import FeatureUnavailable
from headwater.engine.nodes.base import ModelName, Node, NodeConfig, NodeResult, node_type
from headwater.engine.nodes.llm import stream_completion
from headwater.errors import HeadwaterError
from headwater.providers.base import ChatMessage, GenerationParams, Usage

OBSERVATION_CHARS = 4000
TOOL_DESCRIPTIONS = {
    "http_get": "fetch a public web page or API over HTTP(S). Input: the URL.",
    "knowledge_search": "search the knowledge bases for passages. Input: a search query.",
}
_FINAL = re.compile(r"final answer\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_ACTION = re.compile(r"action\s*:\s*([A-Za-z_]+)\s*\n+\s*action input\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_THOUGHT = re.compile(r"thought\s*:\s*(.*?)(?:\n\s*(?:action|final answer)\s*:|$)", re.IGNORECASE | re.DOTALL)


class AgentConfig(NodeConfig):
    model: ModelName
    instructions: str = Field(default="", max_length=50_000)
    prompt: str = Field(default="{{ sys.query }}", max_length=50_000)
    tools: list[str] = Field(default_factory=list, max_length=len(TOOL_DESCRIPTIONS))
    knowledge_bases: list[str] = Field(default_factory=list, max_length=20)
    mode: Literal["react", "actionplan"] = "react"
    max_steps: int = Field(default=6, ge=1, le=30)
    memory: bool = False

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = [t for t in tools if t not in TOOL_DESCRIPTIONS]
        if unknown:
            raise ValueError(f"unknown tool '{unknown[0]}' (available: {', '.join(TOOL_DESCRIPTIONS)})")
        return list(dict.fromkeys(tools))


def _system_prompt(config: AgentConfig, instructions: str, plan: str | None) -> str:
    tools = "\n".join(f"- {name}: {TOOL_DESCRIPTIONS[name]}" for name in config.tools) or "(no tools)"
    parts = [instructions] if instructions else []
    parts.append(
        "You can use these tools:\n" + tools + "\n\n"
        "To use a tool, reply exactly:\nThought: <why>\nAction: <tool name>\nAction Input: <input>\n"
        "You will then get an Observation. When you know the answer, reply:\n"
        "Thought: <why>\nFinal Answer: <the answer>"
    )
    if plan:
        parts.append("Follow this plan:\n" + plan)
    return "\n\n".join(parts)


def parse_reply(reply: str) -> tuple[str, str | None, str | None, str | None]:
    """(thought, action, action input, final answer) of one model reply."""
    thought_match = _THOUGHT.search(reply)
    thought = thought_match.group(1).strip() if thought_match else ""
    final = _FINAL.search(reply)
    action = _ACTION.search(reply)
    if action and (not final or action.start() < final.start()):
        return thought, action.group(1).strip(), action.group(2).strip().splitlines()[0].strip(), None
    if final:
        return thought, None, None, final.group(1).strip()
    return thought, None, None, reply.strip()


async def _run_tool(ctx: NodeContext, config: AgentConfig, name: str, argument: str) -> str:
    if name not in config.tools:
        return f"error: '{name}' is not one of your tools ({', '.join(config.tools) or 'none'})"
    try:
        if name == "http_get":
            from headwater.engine.nodes.http_request import _client

            allow_private = bool(getattr(ctx.run.settings, "egress_allow_private", False))
            response = await _client(allow_private).request("GET", argument, timeout=10, max_bytes=512 * 1024)
            return f"HTTP {response.status_code}\n{response.text()}"
        if name == "knowledge_search":
            try:
                from headwater.knowledge.retrieve import retrieve
            except ImportError:
                raise FeatureUnavailable("knowledge bases are not available in this build") from None
            if not config.knowledge_bases:
                return "error: no knowledge bases are configured for this agent"
            result = await retrieve(ctx.run.runtime, ctx.run.workspace_id, list(config.knowledge_bases), argument, 4)
            return result.text or "no matching passages"
    except HeadwaterError as exc:  # a refused URL or a failed search is something the model can react to
        return f"error: {exc.detail}"
    return f"error: unknown tool '{name}'"


@node_type("agent")
class AgentNode(Node):
    Config = AgentConfig
    outputs = ("text", "steps", "usage", "plan")
    effectful = True

    def templates(self):
        return [self.config.instructions, self.config.prompt]

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: AgentConfig = self.config
        question = ctx.render(config.prompt)
        instructions = ctx.render(config.instructions) if config.instructions else ""
        ctx.record_inputs(model=config.model, prompt=question, tools=config.tools, mode=config.mode)
        usage = Usage()
        params = GenerationParams(temperature=0, max_tokens=1024)
        plan = None
        if config.mode == "actionplan":
            planning = [ChatMessage(role="system", content=(instructions + "\n\n" if instructions else "")
                                    + "Write a short numbered plan of the steps needed to answer. Do not answer yet."),
                        ChatMessage(role="user", content=question)]
            plan, step_usage, _ = await stream_completion(ctx, config.model, planning, params, stream_tokens=False)
            usage.add(step_usage)
        messages = [ChatMessage(role="system", content=_system_prompt(config, instructions, plan))]
        if config.memory:
            messages += ctx.run.history_messages(10)
        messages.append(ChatMessage(role="user", content=question))
        steps: list[dict[str, Any]] = []
        answer = None
        for _ in range(config.max_steps):
            reply, step_usage, _ = await stream_completion(ctx, config.model, messages, params, stream_tokens=False)
            usage.add(step_usage)
            thought, action, argument, final = parse_reply(reply)
            if final is not None:
                answer = final
                steps.append({"thought": thought, "final_answer": final})
                break
            observation = (await _run_tool(ctx, config, action or "", argument or ""))[:OBSERVATION_CHARS]
            steps.append({"thought": thought, "action": action, "input": argument, "observation": observation})
            ctx.partial["steps"] = steps
            messages += [ChatMessage(role="assistant", content=reply),
                         ChatMessage(role="user", content=f"Observation: {observation}")]
        if answer is None:
            answer = f"Stopped after {config.max_steps} steps without a final answer."
        return NodeResult(outputs={"text": answer, "steps": steps, "usage": usage.as_dict(), "plan": plan},
                          usage=usage)
