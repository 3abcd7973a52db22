"""The embedded llama.cpp: xllamacpp's `Server` (llama.cpp's own server code, prebuilt wheels).

One model per process, loaded on first use (the server must start without
paying for it). Loading takes 1-2 s and holds the GIL throughout (xllamacpp
builds its Server without releasing it), so the process pauses once then.
llama.cpp decodes `slots` requests at once with continuous
batching: each step decodes one token for every running request, plus a
slice of the prompt of a request that is still reading it.

`SlotQueue` admits at most that many requests; the others wait in arrival
order and hear their place in line each time it changes. A request runs on a
thread of its own, blocked in `Server.handle_completions`, which calls back
once per token (and once per prompt slice: `return_progress`). Returning True
from that callback ends the request and frees its llama.cpp slot, so stopping
takes effect within one decoding step.

The server also listens on a random loopback port, with a random API key; the
provider uses that only for what the Python API lacks (tokenize, detokenize,
apply a chat template), never for generation.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from headwater.providers.base import ProviderUnavailable
from headwater.providers.local_gguf import NotGguf, chat_template

__all__ = ("LoadKey", "LocalRuntime", "SlotQueue", "TOKENS_PER_PROMPT_STEP")

log = logging.getLogger(__name__)

# Prompt tokens read per decoding step. A request is stoppable between steps, and
# running requests get a token per step, so this bounds both the delay of a stop
# during a long prompt and the stall it causes other streams (~0.3 s on 2 cores);
# reading a prompt in larger steps is barely faster on a CPU.
TOKENS_PER_PROMPT_STEP = 256


@dataclass(frozen=True, slots=True)
class LoadKey:
    """What a loaded model depends on; another key means another load."""

    path: Path
    n_ctx: int  # per request (slot)
    n_threads: int
    slots: int


class LocalRuntime:
    """One loaded GGUF file behind llama.cpp's server."""

    def __init__(self, key: LoadKey, path: Path):
        try:
            import xllamacpp
        except ImportError:
            raise ProviderUnavailable("the local model needs the xllamacpp package (pip install xllamacpp)") from None
        try:
            self.chat_template = chat_template(path)
        except NotGguf as exc:
            raise ProviderUnavailable(f"local model file {path} is not usable: {exc}") from None
        self.key = key
        started = time.perf_counter()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = key.slots
        params.n_ctx = key.n_ctx * key.slots  # split evenly between the slots
        params.cont_batching = True
        params.n_batch = params.n_ubatch = TOKENS_PER_PROMPT_STEP
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = key.n_threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        api_key = secrets.token_urlsafe(24)
        params.api_keys = [api_key]
        params.ui = False
        params.verbosity = 0  # errors only; llama.cpp's per-request log lines would flood ours
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ProviderUnavailable(f"could not load local model {path}: {exc}") from None
        # One token now: llama.cpp's loop is surely running afterwards (a Server destroyed
        # before its loop starts waits for it forever).
        self._server.handle_completions({"prompt": " ", "max_tokens": 1, "cache_prompt": False}, lambda _: True)
        self.load_seconds = time.perf_counter() - started
        self._counts_lock = threading.Lock()
        self.prompt_tokens = 0
        self.prompt_tokens_cached = 0  # taken from the cache of an earlier prompt (same conversation)
        self._http = httpx.Client(
            base_url=self._server.listening_address, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )

    def n_ctx(self) -> int:
        return self.key.n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """`special=False`: text a user types (say "<eos>") stays text."""
        body = {"content": text.decode(), "add_special": add_bos, "parse_special": special}
        return self._post("/tokenize", body)["tokens"]

    def detokenize(self, tokens: list[int]) -> bytes:
        return self._post("/detokenize", {"tokens": tokens})["content"].encode()

    def apply_template(self, messages: list[dict[str, str]]) -> str:
        return self._post("/apply-template", {"messages": messages})["prompt"]

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        if response.status_code != 200:
            raise ProviderUnavailable(f"local model {path} failed: {response.status_code} {response.text[:200]}")
        return response.json()

    def complete(self, request: dict[str, Any], on_chunk: Callable[[dict[str, Any]], bool]) -> None:
        """Blocks until the request ends; `on_chunk` returning True ends it early (and so does exiting)."""
        self._server.handle_completions(request, lambda chunk: _exiting.is_set() or on_chunk(chunk))

    def count_prompt(self, tokens: int, cached: int) -> None:
        with self._counts_lock:
            self.prompt_tokens += tokens
            self.prompt_tokens_cached += cached

    def close(self) -> None:
        self._http.close()
        server, self._server = self._server, None
        del server  # the destructor stops llama.cpp's loop and frees the model


class SlotQueue:
    """First come, first served admission to `slots` running requests.

    A request for another model configuration than the running ones waits
    until they are all done (it will unload their model), and everything
    behind it waits too: nobody overtakes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting: deque[Ticket] = deque()
        self._running = 0
        self._key: LoadKey | None = None
        self._closed = False

    def submit(self, ticket: Ticket) -> None:
        with self._lock:
            self._waiting.append(ticket)
            self._admit()

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting request whose caller went away leaves the line at once."""
        with self._lock:
            try:
                self._waiting.remove(ticket)
            except ValueError:
                return
            self._admit()

    def release(self) -> None:
        with self._lock:
            self._running -= 1
            self._admit()
            if self._running == 0:
                self._idle.notify_all()

    def close(self, timeout: float) -> bool:
        """Admit nobody any more; True once no request runs (within `timeout`)."""
        with self._lock:
            self._closed = True
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"slots": self._key.slots if self._key else 0, "busy": self._running, "waiting": len(self._waiting)}

    def _admit(self) -> None:
        while self._waiting and not self._closed:
            ticket = self._waiting[0]
            fits = self._running == 0 or (ticket.key == self._key and self._running < ticket.key.slots)
            if not fits:
                break
            self._waiting.popleft()
            self._running += 1
            self._key = ticket.key
            threading.Thread(target=self._run, args=(ticket,), name="headwater-llama", daemon=True).start()
        for position, ticket in enumerate(self._waiting, start=1):
            ticket.waiting_at(position)

    def _run(self, ticket: Ticket) -> None:
        try:
            ticket.run()
        finally:
            self.release()


class Ticket:
    """A request's place in the `SlotQueue`: `run` is called on a thread of its own once admitted."""

    def __init__(self, key: LoadKey, run: Callable[[], None], on_position: Callable[[int], None]):
        self.key = key
        self.run = run
        self._on_position = on_position
        self._position: int | None = None

    def waiting_at(self, position: int) -> None:
        if position != self._position:
            self._position = position
            self._on_position(position)


slot_queue = SlotQueue()
_runtime: LocalRuntime | None = None
_load_lock = threading.Lock()
_exiting = threading.Event()


def runtime_for(key: LoadKey, resolve_path: Callable[[], Path]) -> LocalRuntime:
    """The loaded runtime for `key`, loading it (and unloading another) if needed.
    Called from admitted requests only, so a model is never unloaded under a running one."""
    global _runtime
    with _load_lock:
        if _runtime is not None and _runtime.key == key:
            return _runtime
        path = resolve_path()
        if _runtime is not None:
            _runtime.close()
            _runtime = None
        _runtime = LocalRuntime(key, path)
        log.info("loaded local model %s in %.2fs (%d slots)", path, _runtime.load_seconds, key.slots)
        return _runtime


def loaded_runtime() -> LocalRuntime | None:
    return _runtime


@atexit.register
def _unload_at_exit() -> None:
    # A request thread must not come back from llama.cpp into a finalizing
    # interpreter: it would be unwound through C++ frames, which aborts the
    # process. So every request ends now (at its next callback, well within a
    # second), and then llama.cpp's own threads stop with the model.
    global _runtime
    _exiting.set()
    if not slot_queue.close(timeout=10):
        log.warning("local model requests still running at exit")
        return
    if _runtime is not None:
        _runtime.close()
        _runtime = None
