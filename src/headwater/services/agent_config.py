"""Typed configuration of the `agent` app kind (CONTRACTS §1: tool-using agent, mode react or actionplan)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from headwater.services.chatbot_config import DEFAULT_MODEL


class AgentAppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["react", "actionplan"] = "react"
    model: str = Field(default=DEFAULT_MODEL, min_length=3, description="<provider>/<model>")
    system_prompt: str = Field(default="", max_length=40_000)
    # Checked against the agent node's tools when the implied graph is validated (unknown: 422).
    tools: list[str] = Field(default_factory=list)
    knowledge_bases: list[str] = Field(default_factory=list)
    max_steps: int = Field(default=6, ge=1, le=30)
    max_tokens: int | None = Field(default=None, ge=100, le=2_000_000)
    temperature: float | None = Field(default=0, ge=0, le=2)
    # Earlier messages of the conversation the agent sees.
    memory_window: int = Field(default=10, ge=0, le=200)
    # Left out of the MCP server's tools when false (CONTRACTS §9).
    mcp: bool = True
