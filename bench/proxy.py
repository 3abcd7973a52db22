"""Baseline (b): the thinnest useful proxy built with Headwater's own web stack.

FastAPI + uvicorn (uvloop, httptools) + a pooled HTTP client (httpx2, the one the
provider path uses: plain httpx's pool slows down as connections grow), forwarding
`/v1/chat/completions` to the mock and relaying the answer (streamed when the
answer is streamed). No auth, no database, no parsing beyond what the stack
does anyway: what is left is the price of Python + ASGI + an HTTP client.

Usage: python -m bench.proxy --port 8102 --upstream http://127.0.0.1:8101
"""

from __future__ import annotations

import argparse
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx


CALLS_PER_CLIENT = 32


def create_app(upstream: str) -> FastAPI:
    # Several small pools rather than one big one, as Headwater's provider does: an httpx
    # pool's bookkeeping grows with the square of its connections.
    clients = [httpx.AsyncClient(base_url=upstream, timeout=60,
                                 limits=httpx.Limits(max_connections=4 * CALLS_PER_CLIENT,
                                                     max_keepalive_connections=CALLS_PER_CLIENT))
               for _ in range(64)]
    turn = 0

    @asynccontextmanager
    async def lifespan(_app):
        yield
        for client in clients:
            await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def relay(request: Request):
        nonlocal turn
        turn = (turn + 1) % len(clients)
        client = clients[turn]
        body = await request.body()
        upstream_request = client.build_request(
            "POST", "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        upstream = await client.send(upstream_request, stream=True)
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(
                upstream.aiter_raw(), status_code=upstream.status_code, media_type="text/event-stream",
                background=BackgroundTask(upstream.aclose),
            )
        content = await upstream.aread()
        await upstream.aclose()
        return Response(content, status_code=upstream.status_code, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host=args.host, port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, server_header=False)


if __name__ == "__main__":
    main()
