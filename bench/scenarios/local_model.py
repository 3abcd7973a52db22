"""The embedded model through Headwater against llama-cpp-python called directly."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.context import Context
from bench.harness import ROOT, rss_mb
from bench.scenarios import Skip, scenario

# A prompt the base model answers at full length under greedy decoding, whatever the state of
# its prompt cache (most prompts stop after a line, and how soon depends on that state).
SYSTEM = ""
MESSAGE = "Count from 1 to 200, separated by commas."
MODEL_FILE = "models/gemma-3-270m-q4_k_m.gguf"


def _through_headwater(ctx: Context, slug: str, max_tokens: int) -> dict:
    body = {"model": slug, "stream": True, "stream_options": {"include_usage": True}, "temperature": 0,
            "max_tokens": max_tokens, "messages": [{"role": "user", "content": MESSAGE}]}
    started = time.perf_counter()
    first = last = None
    tokens = 0
    with httpx.Client(base_url=ctx.headwater.base_url, headers=ctx.auth_headers(), timeout=300) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    last = time.perf_counter()
                    first = first or last
    ended = time.perf_counter()
    return {"tokens": tokens, "first_token_s": (first or ended) - started, "total_s": (last or ended) - started}


def _rates(runs: list[dict]) -> dict:
    """Median tokens/s over the whole call and over decoding alone (after the first token)."""
    overall = [r["tokens"] / r["total_s"] for r in runs if r["total_s"] > 0]
    decode = [(r["tokens"] - 1) / (r["total_s"] - r["first_token_s"]) for r in runs
              if r["tokens"] > 1 and r["total_s"] > r["first_token_s"]]
    return {"tokens": statistics.median(r["tokens"] for r in runs),
            "tokens_per_s": statistics.median(overall) if overall else None,
            "decode_tokens_per_s": statistics.median(decode) if decode else None,
            "first_token_s": statistics.median(r["first_token_s"] for r in runs), "runs": runs}


@scenario("local_model", "Embedded model tokens/s", order=80)
def local_model(ctx: Context) -> None:
    """Gemma 3 270M (Q4_K_M) streamed through Headwater's `local` provider, greedy, against
    llama-cpp-python called directly in its own process with the same file, threads, context,
    prompt tokens and stops; generations alternate between the two (median of four each, after
    a warm-up call each), so both see the same load from other work on the machine."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise Skip("llama-cpp-python is not installed (scripts/install_llama.sh)")
    tokens, repeats = ctx.config.local_tokens, ctx.config.local_repeats
    app = ctx.admin.create_chatbot("local/gemma-3-270m", name="bench-local", system_prompt=SYSTEM, temperature=0)
    warm = _through_headwater(ctx, app["slug"], 4)  # loads the model (and assembles the file on first use)
    ctx.record("model load (first call)", seconds=warm["total_s"],
               rss_mb_with_model=rss_mb(ctx.headwater.pid))
    model_path = Path(ctx.headwater.env["HEADWATER_DATA_DIR"]) / MODEL_FILE
    threads = ctx.headwater.env["HEADWATER_LOCAL_MODEL_THREADS"]
    direct_process = subprocess.Popen(
        [sys.executable, "-m", "bench.llama_direct", str(model_path), "--threads", threads, "--max-tokens",
         str(tokens), "--system", SYSTEM, "--message", MESSAGE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        env=os.environ.copy(),
    )
    try:
        if direct_process.stdout.readline().strip() != "ready":
            raise RuntimeError("the direct llama-cpp-python process did not start")
        served, direct = [], []
        for _ in range(repeats):  # alternated, so both see the same load from other work
            served.append(_through_headwater(ctx, app["slug"], tokens))
            direct_process.stdin.write("go\n")
            direct_process.stdin.flush()
            direct.append(json.loads(direct_process.stdout.readline()))
    finally:
        direct_process.stdin.close()
        direct_process.wait(timeout=60)
    ctx.record("direct llama-cpp-python", target="direct", threads=int(threads), **_rates(direct))
    ctx.record("through Headwater", target="headwater", threads=int(threads), **_rates(served))
