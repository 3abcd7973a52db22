"""Opening and closing a process's Runtime: the API server and the Celery worker start the same way.

`open_runtime` migrates the store, builds the parts the settings choose (see
`runtime.build_parts`), starts the config cache's change listener and the run
lease keeper, and delivers again the jobs a previous life left unfinished.
The store is bootstrapped by whichever process starts first (the default
workspace; the instance admin key, printed once when it is generated).
"""

from __future__ import annotations

from typing import Literal

from headwater import telemetry
from headwater.config import Settings
from headwater.providers.registry import ProviderPool
from headwater.runtime import Runtime, build_parts
from headwater.services import flow_jobs  # noqa: F401  (registers the `flow_run` job handler)
from headwater.services.leases import LeaseKeeper
from headwater.services.secrets_box import SecretBox
from headwater.services.workspaces import bootstrap
from headwater.store.config_cache import cache_of
from headwater.store.db import create_engine, create_sessionmaker
from headwater.store.migrate import upgrade_to_head

Role = Literal["api", "worker"]


async def build_runtime(settings: Settings) -> Runtime:
    """The Runtime alone, nothing started (tests and tools that only need the store and the parts)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as db:
        await bootstrap(db, settings)
    parts = build_parts(settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        providers=ProviderPool(settings),
        secrets=SecretBox(settings),
        rate_limiter=parts.rate_limiter,
        jobs=parts.jobs,
        bus=parts.bus,
        control=parts.control,
    )
    runtime.jobs.bind(runtime)
    return runtime


async def open_runtime(settings: Settings, role: Role) -> tuple[Runtime, LeaseKeeper]:
    telemetry.configure_tracing(settings, role)
    runtime = await build_runtime(settings)
    await cache_of(runtime.engine).start()
    keeper = LeaseKeeper(runtime)
    await keeper.start()
    if role == "api" or settings.redis_url:
        await runtime.jobs.recover()
    return runtime, keeper


async def close_runtime(runtime: Runtime, keeper: LeaseKeeper) -> None:
    await keeper.stop()
    await cache_of(runtime.engine).stop()
    await runtime.aclose()
    telemetry.shutdown_tracing()
