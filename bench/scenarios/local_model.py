"""The embedded model through Headwater against its runtime (xllamacpp) called directly."""

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
from bench.llama_direct import at_once
from bench.scenarios import Skip, scenario

# A prompt the base model answers at full length under greedy decoding, whatever the state of
# its prompt cache (most prompts stop after a line, and how soon depends on that state).
SYSTEM = ""
MESSAGE = "Count from 1 to 200, separated by commas."
MODEL_FILE = "models/gemma-3-270m-q4_k_m.gguf"
CONCURRENCY = (1, 2, 4)
SLOTS = 2  # HEADWATER_LOCAL_MODEL_SLOTS's default, which the bench server runs with


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
    """Median tokens/s over the whole call and over decoding alone (after the first token); the
    best run too, nearest to what an idle machine gives (other work slows llama.cpp a lot)."""
    overall = [r["tokens"] / r["total_s"] for r in runs if r["total_s"] > 0]
    decode = [(r["tokens"] - 1) / (r["total_s"] - r["first_token_s"]) for r in runs
              if r["tokens"] > 1 and r["total_s"] > r["first_token_s"]]
    return {"tokens": statistics.median(r["tokens"] for r in runs),
            "tokens_per_s": statistics.median(overall) if overall else None,
            "decode_tokens_per_s": statistics.median(decode) if decode else None,
            "best_decode_tokens_per_s": max(decode) if decode else None,
            "first_token_s": statistics.median(r["first_token_s"] for r in runs), "runs": runs}


def _aggregate(rounds: list[list[dict]]) -> dict:
    """Tokens of all streams of a round over the round's wall time; medians over rounds."""
    per_round = [sum(r["tokens"] for r in runs) / max(r["total_s"] for r in runs) for runs in rounds]
    first = [r["first_token_s"] for runs in rounds for r in runs]
    return {"aggregate_tokens_per_s": statistics.median(per_round), "best_aggregate_tokens_per_s": max(per_round),
            "first_token_s_median": statistics.median(first), "first_token_s_max": max(first),
            "rounds": rounds}


@scenario("local_model", "Embedded model tokens/s", order=80)
def local_model(ctx: Context) -> None:
    """Gemma 3 270M (Q4_K_M) streamed through Headwater's `local` provider (2 slots), greedy,
    against the same runtime, xllamacpp's llama.cpp server, called directly in its own process
    with the same file, threads, context, slots, prompt tokens and stops. Generations alternate
    between the two (median of four each, after a warm-up call each), so both see the same load
    from other work on the machine. Then 1, 2 and 4 streams at once on each side: aggregate
    tokens/s and time to first token (with 2 slots, 4 streams means 2 wait for a slot)."""
    if importlib.util.find_spec("xllamacpp") is None:
        raise Skip("xllamacpp is not installed")
    tokens, repeats = ctx.config.local_tokens, ctx.config.local_repeats
    app = ctx.admin.create_chatbot("local/gemma-3-270m", name="bench-local", system_prompt=SYSTEM, temperature=0)
    warm = _through_headwater(ctx, app["slug"], 4)  # loads the model (and assembles the file on first use)
    ctx.record("model load (first call)", seconds=warm["total_s"],
               rss_mb_with_model=rss_mb(ctx.headwater.pid))
    model_path = Path(ctx.headwater.env["HEADWATER_DATA_DIR"]) / MODEL_FILE
    threads = ctx.headwater.env["HEADWATER_LOCAL_MODEL_THREADS"]
    direct_process = subprocess.Popen(
        [sys.executable, "-m", "bench.llama_direct", str(model_path), "--threads", threads, "--slots", str(SLOTS),
         "--max-tokens", str(tokens), "--system", SYSTEM, "--message", MESSAGE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        env=os.environ.copy(),
    )

    def direct(streams: int) -> list[dict]:
        direct_process.stdin.write(f"go {streams}\n")
        direct_process.stdin.flush()
        return json.loads(direct_process.stdout.readline())

    try:
        if direct_process.stdout.readline().strip() != "ready":
            raise RuntimeError("the direct xllamacpp process did not start")
        direct_rss = rss_mb(direct_process.pid)
        served, baseline = [], []
        for _ in range(repeats):  # alternated, so both see the same load from other work
            served.append(_through_headwater(ctx, app["slug"], tokens))
            baseline.extend(direct(1))
        ctx.record("direct xllamacpp", target="direct", threads=int(threads), rss_mb_with_model=direct_rss,
                   **_rates(baseline))
        ctx.record("through Headwater", target="headwater", threads=int(threads), **_rates(served))
        for streams in CONCURRENCY:
            served_rounds, direct_rounds = [], []
            for _ in range(max(1, repeats // 2)):
                served_rounds.append(at_once(lambda: _through_headwater(ctx, app["slug"], tokens), streams))
                direct_rounds.append(direct(streams))
            ctx.record(f"{streams} at once, direct xllamacpp", target="direct", streams=streams,
                       **_aggregate(direct_rounds))
            ctx.record(f"{streams} at once, through Headwater", target="headwater", streams=streams,
                       **_aggregate(served_rounds))
    finally:
        direct_process.stdin.close()
        direct_process.wait(timeout=60)
    ctx.record("RSS with the model loaded", target="headwater", rss_mb=rss_mb(ctx.headwater.pid),
               direct_rss_mb=direct_rss)
