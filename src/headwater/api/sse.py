"""Server-Sent Events responses with keep-alive pings and disconnect-aware cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

PING_INTERVAL_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
_END = object()


def sse_response(frames: AsyncIterator[bytes | str], ping_interval: float = PING_INTERVAL_SECONDS) -> StreamingResponse:
    """Stream pre-formatted SSE frames, inserting `: ping` comments while the source is quiet.

    The source runs in its own task feeding a queue, so waiting for a ping never
    cancels the source mid-step. When the client goes away Starlette cancels this
    generator; we then cancel the source task, which cancels the run behind it.
    """
    return StreamingResponse(_with_pings(frames, ping_interval), media_type="text/event-stream", headers=SSE_HEADERS)


async def _with_pings(frames: AsyncIterator[bytes | str], ping_interval: float) -> AsyncIterator[bytes | str]:
    queue: asyncio.Queue = asyncio.Queue(maxsize=256)

    async def pump():
        try:
            async for frame in frames:
                await queue.put(frame)
        except Exception as exc:  # handed to the consumer, which re-raises it in the response task
            await queue.put(exc)
            return
        await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ping_interval)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if item is _END:
                break
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await frames.aclose()  # type: ignore[attr-defined]


def format_event(data: bytes | str, event: str | None = None, event_id: int | str | None = None) -> bytes:
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    text = data.decode() if isinstance(data, bytes) else data
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()
