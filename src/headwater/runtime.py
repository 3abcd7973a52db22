"""The process-wide objects a request or a job needs, built once at start-up.

The parts that must reach other processes are protocols with two
implementations, chosen by settings: without `HEADWATER_REDIS_URL` everything is
in this process (the embedded mode); with it the bus, run control and rate
limits live in Redis and background jobs go to Celery workers (scale-out).
Nothing of these is a module-level singleton: tests build a Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from headwater.config import Settings
from headwater.engine.bus import EventBus, InProcessEventBus
from headwater.engine.control import InProcessRunControl, RunControl
from headwater.providers.registry import ProviderPool
from headwater.queue.base import JobQueue
from headwater.queue.inprocess import InProcessQueue
from headwater.ratelimit import MemoryRateLimiter, RateLimiter
from headwater.services.providers import ProviderService
from headwater.services.secrets_box import SecretBox
from headwater.store.models import new_id, utcnow


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    providers: ProviderPool
    secrets: SecretBox
    rate_limiter: RateLimiter
    jobs: JobQueue
    bus: EventBus
    control: RunControl
    # Names this process as the owner of the runs it executes (see services.leases).
    owner_id: str = field(default_factory=new_id)

    def lease_until(self, now: datetime | None = None) -> datetime:
        """Until when this process vouches for a run or job it executes (renewed by the LeaseKeeper)."""
        return (now or utcnow()) + timedelta(seconds=self.settings.run_lease_seconds)

    def provider_service(self, db: AsyncSession) -> ProviderService:
        return ProviderService(db, self.settings, self.providers, self.secrets)

    async def aclose(self) -> None:
        await self.jobs.close()
        await self.control.close()
        await self.bus.close()
        await self.rate_limiter.close()
        await self.providers.aclose()
        await self.engine.dispose()


@dataclass(slots=True)
class Parts:
    rate_limiter: RateLimiter
    jobs: JobQueue
    bus: EventBus
    control: RunControl


def build_parts(settings: Settings) -> Parts:
    """The in-process parts, or the Redis/Celery ones when a Redis URL is set."""
    if not settings.redis_url:
        return Parts(MemoryRateLimiter(settings.rate_limit_per_minute),
                     InProcessQueue(settings.background_concurrency), InProcessEventBus(), InProcessRunControl())
    # Imported only in scale-out mode: the embedded default must not need redis or celery.
    from headwater.queue.celery_queue import CeleryQueue
    from headwater.scaleout.redis_bus import RedisEventBus
    from headwater.scaleout.redis_control import RedisRunControl
    from headwater.scaleout.redis_ratelimit import RedisRateLimiter

    url = settings.redis_url
    return Parts(RedisRateLimiter(url, settings.rate_limit_per_minute), CeleryQueue(settings),
                 RedisEventBus(url), RedisRunControl(url))
