"""Baseline for the local model: llama-cpp-python called directly, no server.

Same GGUF file, thread count, context size, prompt (built by Headwater's own
prompt builder, so the tokens are identical), stops and sampling as the
`local` provider uses; greedy decoding, so both produce the same tokens.
After loading and one warm-up generation it prints "ready"; then each line read on stdin
runs one generation and prints its JSON {tokens, first_token_s, total_s}. The harness
alternates these with calls through Headwater, so both see the same load from whatever
else runs on the machine (llama.cpp with a thread per core slows down a lot when anything
else wants a core).

Usage: python -m bench.llama_direct MODEL.gguf --threads 2 --max-tokens 128 --message TEXT
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from headwater.providers.base import ChatMessage
from headwater.providers.local_llama import TURN_STOPS, build_prompt


def generate(llm, prompt: list[int], max_tokens: int) -> dict:
    started = time.perf_counter()
    first = None
    pieces = []
    for chunk in llm.create_completion(prompt, stream=True, max_tokens=max_tokens, stop=TURN_STOPS, temperature=0.0):
        text = chunk["choices"][0]["text"]
        if text and first is None:
            first = time.perf_counter()
        pieces.append(text)
    ended = time.perf_counter()
    answer = "".join(pieces)
    tokens = len(llm.tokenize(answer.encode(), add_bos=False, special=False)) if answer else 0
    return {"tokens": tokens, "first_token_s": (first or ended) - started, "total_s": ended - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--system", default="")
    parser.add_argument("--message", required=True)
    args = parser.parse_args()
    from llama_cpp import Llama

    llm = Llama(args.model, n_ctx=args.context, n_threads=args.threads, verbose=False)
    messages = [ChatMessage(role="system", content=args.system)] if args.system else []
    messages.append(ChatMessage(role="user", content=args.message))
    prompt = build_prompt(llm, messages, args.max_tokens)
    generate(llm, prompt, 4)  # warm-up, as the server's first call warms it
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps(generate(llm, prompt, args.max_tokens)), flush=True)


if __name__ == "__main__":
    main()
