"""Server-Sent Events responses with keep-alive pings and disconnect-aware cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from headwater.errors import InvalidInput

PING_INTERVAL_SECONDS = 15.0
# Every response that starts a run names it (CONTRACTS: any client can then follow or stop it).
RUN_ID_HEADER = "X-Run-Id"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
_END = object()
_PING = b": ping\n\n"


def sse_response(frames: AsyncIterator[bytes | str], ping_interval: float | None = None, *,
                 run_id: str | None = None) -> StreamingResponse:
    """Stream pre-formatted SSE frames, inserting `: ping` comments while the source is quiet.

    The source runs in its own task feeding a queue, so waiting for a ping never
    cancels the source mid-step. When the client goes away Starlette cancels this
    generator; we then cancel the source task, which cancels the run behind it.
    `run_id` names the run the stream started (the `X-Run-Id` header). Pings come
    every `ping_interval` seconds, by default the server's `sse_ping_seconds`.
    """
    headers = SSE_HEADERS if run_id is None else {**SSE_HEADERS, **run_id_header(run_id)}
    return _PingingResponse(frames, ping_interval, headers)


class _PingingResponse(StreamingResponse):
    """The stream's pings are set up when it is sent, when the server's settings are at hand."""

    def __init__(self, frames: AsyncIterator[bytes | str], ping_interval: float | None, headers: dict[str, str]):
        super().__init__(frames, media_type="text/event-stream", headers=headers)
        self._frames = frames
        self._ping_interval = ping_interval

    async def __call__(self, scope, receive, send) -> None:
        self.body_iterator = _with_pings(self._frames, self._ping_interval or _configured_interval(scope))
        await super().__call__(scope, receive, send)


def _configured_interval(scope) -> float:
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    return getattr(getattr(runtime, "settings", None), "sse_ping_seconds", PING_INTERVAL_SECONDS)


def run_id_header(run_id: str) -> dict[str, str]:
    return {RUN_ID_HEADER: run_id}


def last_event_id_after(last_event_id: str | None) -> int:
    """The seq a resumed stream continues after (`Last-Event-ID`); 0 replays from the start."""
    if not last_event_id:
        return 0
    try:
        return max(0, int(last_event_id))
    except ValueError:
        raise InvalidInput("Last-Event-ID must be an event id (an integer)") from None


async def _with_pings(frames: AsyncIterator[bytes | str], ping_interval: float) -> AsyncIterator[bytes | str]:
    queue: asyncio.Queue = asyncio.Queue(maxsize=256)
    loop = asyncio.get_running_loop()
    last_sent = loop.time()

    async def pump():
        try:
            async for frame in frames:
                await queue.put(frame)
        except Exception as exc:  # handed to the consumer, which re-raises it in the response task
            await queue.put(exc)
            return
        await queue.put(_END)

    # One timer per stream instead of a timeout on every wait: `wait_for` made a task and a
    # timer for each frame, which under many streams cost more than relaying the frame.
    def ping_when_quiet():
        nonlocal timer
        quiet_for = loop.time() - last_sent
        if quiet_for >= ping_interval and queue.empty():
            queue.put_nowait(_PING)
            quiet_for = 0.0
        timer = loop.call_later(max(ping_interval - quiet_for, 0.01), ping_when_quiet)

    task = asyncio.create_task(pump())
    timer = loop.call_later(ping_interval, ping_when_quiet)
    held = None  # an item taken out of the queue while gathering frames, handled next
    try:
        while True:
            item = held if held is not None else await queue.get()
            held = None
            if item is _END:
                break
            if isinstance(item, Exception):
                raise item
            if isinstance(item, str):
                item = item.encode()
            # Frames that queued up meanwhile go out in one write: a socket write per
            # frame was the largest single cost of relaying a busy stream.
            if not queue.empty():
                frames_now = [item]
                while not queue.empty():
                    following = queue.get_nowait()
                    if following is _END or isinstance(following, Exception):
                        held = following
                        break
                    frames_now.append(following.encode() if isinstance(following, str) else following)
                item = b"".join(frames_now)
            last_sent = loop.time()
            yield item
    finally:
        timer.cancel()
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
