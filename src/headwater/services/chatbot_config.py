"""Typed configuration of the `chatbot` app kind (CONTRACTS §1)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "local/gemma-3-270m"


class ChatbotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default=DEFAULT_MODEL, min_length=3, description="<provider>/<model>")
    system_prompt: str = ""
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=65536)
    knowledge_bases: list[str] = Field(default_factory=list)
    top_k: int = Field(default=4, ge=1, le=50)
    # Number of earlier messages of the session given to the model.
    memory_window: int = Field(default=10, ge=0, le=500)
    # False leaves the app out of the MCP server's tools (None, the default, offers it).
    mcp: bool | None = None
