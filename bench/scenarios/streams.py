"""Many long, slow streams held at once: what an idle-ish stream costs the server."""

from __future__ import annotations

import time

from bench.context import TARGETS, Context
from bench.harness import CpuWindow, finish_load, start_load
from bench.scenarios import scenario
from bench.stats import summarise

RAMP_SECONDS = 2.0
SETUP_SECONDS = 3.0  # for the servers to get through 1,000 call set-ups before the CPU is read


@scenario("many_streams", "1,000 concurrent streams", order=60)
def many_streams(ctx: Context) -> None:
    """Each client opens one streaming call whose tokens the mock sends 50 ms apart (300
    tokens, 15 s); the clients start within 2 s. CPU and RSS of each server are read while all
    streams are open and past their set-up (from 5 s to 14 s), plus the relay time of every token."""
    count = ctx.config.many_streams
    tokens, delay = ctx.config.many_stream_tokens, ctx.config.many_stream_delay_ms
    stream_seconds = tokens * delay / 1000
    for target in TARGETS:
        spec = {
            "url": ctx.base_url(target) + "/v1/chat/completions",
            "body": ctx.openai_body(target, tokens, delay, stream=True), "concurrency": count,
            "requests_per_client": 1, "ramp": RAMP_SECONDS, "stream": True, "expect": "@",
            "headers": ctx.auth_headers() if target == "headwater" else {},
        }
        ctx.monitor.phase = f"{ctx.current}:{target}"
        with CpuWindow(ctx.server_pids()) as whole:
            process = start_load(spec)
            # Measure while every stream is open and relaying: after the ramp and the calls'
            # set-up, before the first streams end.
            settle = RAMP_SECONDS + SETUP_SECONDS
            time.sleep(settle)
            with CpuWindow(ctx.server_pids()) as window:
                time.sleep(max(1.0, stream_seconds - settle - 1.0))
            raw = finish_load(process)
        ctx.monitor.phase = ""
        server = "mock" if target == "floor" else target
        # CPU per relayed token over the whole run (set-up and finish included), and what the
        # offered load (every stream's tokens on time) would then need: a figure that does
        # not depend on how much CPU other work on the machine left the server.
        cpu_seconds = whole.cores[server] * whole.elapsed
        per_token_us = cpu_seconds / raw["tokens"] * 1e6 if raw["tokens"] else None
        offered = count * 1000 / delay
        record = ctx.record(f"{count} streams", target=target, concurrency=count, stream=True, **summarise(raw),
                            server_cores=window.cores, server_rss_mb=window.peak_rss_mb, tokens_per_stream=tokens,
                            delay_ms=delay, server_cpu_us_per_token=per_token_us, offered_tokens_per_s=offered,
                            cores_needed_for_offered_load=per_token_us * offered / 1e6 if per_token_us else None,
                            seconds=whole.elapsed)
        ctx.samples[record["id"]] = {k: raw[k] for k in ("relay_ms", "gap_ms") if raw.get(k)}
