"""create_app(): settings → runtime (store, providers, limits) → routers and middleware."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from headwater.api.responses import FastJSONResponse

from headwater import __version__
from headwater.api.errors import install_error_handlers
from headwater.api.middleware import BodySizeLimit, RateLimitHeaders
from headwater.api.routes import ROUTER_MODULES
from headwater.config import Settings, get_settings
from headwater.providers.registry import ProviderPool
from headwater.queue.inprocess import InProcessQueue
from headwater.ratelimit import RateLimiter
from headwater.runtime import Runtime
from headwater.services.runs import fail_interrupted_runs
from headwater.services.secrets_box import SecretBox
from headwater.services.workspaces import bootstrap
from headwater.store.config_cache import cache_of
from headwater.store.db import create_engine, create_sessionmaker
from headwater.store.migrate import upgrade_to_head
from headwater.services import flow_jobs  # noqa: F401  (registers the `flow_run` job handler)

log = logging.getLogger("headwater")


async def build_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as db:
        await bootstrap(db, settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        providers=ProviderPool(settings),
        secrets=SecretBox(settings),
        rate_limiter=RateLimiter(settings.rate_limit_per_minute),
        jobs=InProcessQueue(settings.background_concurrency),
    )
    runtime.jobs.bind(runtime)
    return runtime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = await build_runtime(settings)
        app.state.runtime = runtime
        if settings.is_sqlite:  # one process owns the store: what it left running is orphaned
            async with runtime.sessionmaker() as db:
                await fail_interrupted_runs(db)
        await runtime.jobs.recover()
        await cache_of(runtime.engine).start()
        try:
            yield
        finally:
            await cache_of(runtime.engine).stop()
            await runtime.jobs.close()
            await runtime.providers.aclose()
            await runtime.engine.dispose()

    app = FastAPI(
        title="Headwater", version=__version__, lifespan=lifespan, default_response_class=FastJSONResponse,
    )
    install_error_handlers(app)
    for module in ROUTER_MODULES:
        app.include_router(module.router)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
