"""create_app(): settings → runtime (store, providers, limits) → routers and middleware."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from headwater.api.responses import FastJSONResponse

from headwater import __version__, telemetry
from headwater.api.access import AccessLog
from headwater.api.errors import install_error_handlers
from headwater.api.mcp_server import McpServer
from headwater.api.openapi import document_responses
from headwater.api.middleware import BodySizeLimit, InputGuard, RateLimitHeaders
from headwater.api.routes import ROUTER_MODULES
from headwater.boot import close_runtime, open_runtime
from headwater.config import Settings, get_settings

log = logging.getLogger("headwater")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    mcp = McpServer()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        telemetry.configure_logging(settings)
        runtime, keeper = await open_runtime(settings, "api")
        app.state.runtime = runtime
        _settle_heap()
        try:
            async with mcp.running():  # the MCP session manager's sessions end before the runtime
                yield
        finally:
            await close_runtime(runtime, keeper)

    app = FastAPI(
        title="Headwater", version=__version__, lifespan=lifespan, default_response_class=FastJSONResponse,
    )
    install_error_handlers(app)
    document_responses(app)
    for module in ROUTER_MODULES:
        app.include_router(module.router)
    mcp.install(app)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(InputGuard, max_depth=settings.max_json_depth, max_items=settings.max_json_items,
                       max_keys=settings.max_json_keys)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog, enabled=settings.log_requests)  # outermost: sees every answer, 413s too
    return app


def _settle_heap() -> None:
    """Move what startup built (modules, routes, schemas, the runtime: ~210k objects, most of the
    heap) out of the cyclic collector's reach: otherwise every full collection walks all of it
    (~100 ms each, one every few hundred requests), about 4 % of a chat call's CPU. No collection
    first: it would cost 0.1 s of every start to free a few hundred objects."""
    gc.freeze()
