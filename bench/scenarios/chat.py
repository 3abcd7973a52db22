"""The chatbot route every dialect builds on: `/v1/chat/completions`, against both baselines."""

from __future__ import annotations

from bench.context import TARGETS, Context
from bench.scenarios import scenario

PATH = "/v1/chat/completions"
SWEEP_TOKENS = 16


@scenario("chat_sweep", "Non-streaming chatbot call, concurrency sweep", order=20)
def chat_sweep(ctx: Context) -> None:
    """Closed loop of N clients, each sending its next request as soon as the last one is
    answered; 16-token answers from the mock with no delay. Through Headwater each client
    keeps one conversation (`conversation_id`), so every call reads memory and writes the
    run, its events and both messages."""
    for concurrency in ctx.config.sweep:
        for target in TARGETS:
            ctx.measure(f"c{concurrency}", target=target, path=PATH, concurrency=concurrency,
                        body=ctx.openai_body(target, SWEEP_TOKENS, 0))


@scenario("chat_stream", "Streaming chatbot call", order=30)
def chat_stream(ctx: Context) -> None:
    """`stream: true`; the mock sends its tokens a few ms apart. Time to first token, time
    between tokens, total, and the relay time of each token (arrival minus the moment the
    mock sent it, from the stamp in its text)."""
    tokens, delay = ctx.config.stream_tokens, ctx.config.stream_delay_ms
    for concurrency in (1, 16):
        for target in TARGETS:
            ctx.measure(f"c{concurrency}", target=target, path=PATH, concurrency=concurrency, stream=True,
                        body=ctx.openai_body(target, tokens, delay, stream=True), answer_tokens=tokens,
                        delay_ms=delay)
