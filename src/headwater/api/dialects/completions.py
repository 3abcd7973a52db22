"""The OpenAI `chat.completion` object, built in one place for every route that answers with one.

`POST /v1/chat/completions` (a chatbot turn) and Waterflai's `/execute_chatflow`
(a chatflow run) both answer with it; each adds its own top-level fields
(`citations`; `execution_id`, `status`, `waiting_for`), which the openai SDK
keeps in `model_extra`.
"""

from __future__ import annotations

from typing import Any

OPENAI_FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls")


def finish_reason(reason: str | None) -> str:
    """A run's finish reason as OpenAI names it (anything else, a cancelled turn included, is `stop`)."""
    return reason if reason in OPENAI_FINISH_REASONS else "stop"


def usage_object(usage: dict[str, int] | None) -> dict[str, int]:
    """OpenAI's usage object from a run's usage (which may lack any of the counts)."""
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completion(*, run_id: str, created: int, model: str, text: str, reason: str | None,
                    usage: dict[str, int] | None, conversation_id: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason(reason), "logprobs": None}],
        "usage": usage_object(usage),
        "conversation_id": conversation_id,
        "system_fingerprint": None,
        **extra,
    }
