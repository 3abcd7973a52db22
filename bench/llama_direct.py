"""Baseline for the local model: the runtime (xllamacpp's llama.cpp server) called directly, no Headwater.

Same GGUF file, thread count, context, slots and prompt step as the `local`
provider's runtime, the same prompt (built by Headwater's own prompt builder, so
the tokens are identical), stops and request fields; greedy decoding, so both
produce the same tokens. After loading and one warm-up generation it prints
"ready"; then each line "go N" read on stdin runs N generations at once (a thread
each, as Headwater runs them) and prints one JSON line: a list of
{tokens, first_token_s, total_s}. The harness alternates these with calls through
Headwater, so both see the same load from whatever else runs on the machine.

Usage: python -m bench.llama_direct MODEL.gguf --threads 2 --slots 2 --max-tokens 128 --message TEXT
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable

import httpx

from headwater.providers.base import ChatMessage
from headwater.providers.local_llama import TURN_STOPS, build_prompt
from headwater.providers.local_runtime import TOKENS_PER_PROMPT_STEP


class Runtime:
    """xllamacpp's Server, with the tokenizer `build_prompt` needs."""

    def __init__(self, model: str, threads: int, context: int, slots: int):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = model
        params.n_parallel = slots
        params.n_ctx = context * slots
        params.cont_batching = True
        params.n_batch = params.n_ubatch = TOKENS_PER_PROMPT_STEP
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.verbosity = 0
        self.server = xllamacpp.Server(params)
        self.http = httpx.Client(base_url=self.server.listening_address)
        self.context = context

    def n_ctx(self) -> int:
        return self.context

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        body = {"content": text.decode(), "add_special": add_bos, "parse_special": special}
        return self.http.post("/tokenize", json=body).json()["tokens"]


def generate(runtime: Runtime, prompt: list[int], max_tokens: int) -> dict:
    started = time.perf_counter()
    first = None
    tokens = 0

    def on_chunk(chunk: dict) -> bool:
        nonlocal first, tokens
        if chunk["choices"][0].get("text") and first is None:
            first = time.perf_counter()
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        return False

    runtime.server.handle_completions({
        "prompt": prompt, "stream": True, "max_tokens": max_tokens, "stop": TURN_STOPS, "temperature": 0.0,
        "cache_prompt": True, "return_progress": True,
    }, on_chunk)
    ended = time.perf_counter()
    return {"tokens": tokens, "first_token_s": (first or ended) - started, "total_s": ended - started}


def at_once(run: Callable[[], dict], streams: int) -> list[dict]:
    """`streams` calls of `run` started together, a thread each (as Headwater runs requests)."""
    results: list[dict] = [{}] * streams

    def one(index: int) -> None:
        results[index] = run()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--system", default="")
    parser.add_argument("--message", required=True)
    args = parser.parse_args()
    runtime = Runtime(args.model, args.threads, args.context, args.slots)
    messages = [ChatMessage(role="system", content=args.system)] if args.system else []
    messages.append(ChatMessage(role="user", content=args.message))
    prompt = build_prompt(runtime, messages, args.max_tokens)
    generate(runtime, prompt, 4)  # warm-up, as the server's first call warms it
    print("ready", flush=True)
    for line in sys.stdin:
        streams = int(line.split()[1]) if len(line.split()) > 1 else 1
        print(json.dumps(at_once(lambda: generate(runtime, prompt, args.max_tokens), streams)), flush=True)


if __name__ == "__main__":
    main()
