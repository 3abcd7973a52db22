"""The process-wide objects a request needs, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from headwater.config import Settings
from headwater.providers.registry import ProviderPool
from headwater.queue.inprocess import InProcessQueue
from headwater.ratelimit import RateLimiter
from headwater.services.providers import ProviderService
from headwater.services.secrets_box import SecretBox


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    providers: ProviderPool
    secrets: SecretBox
    rate_limiter: RateLimiter
    jobs: InProcessQueue

    def provider_service(self, db: AsyncSession) -> ProviderService:
        return ProviderService(db, self.settings, self.providers, self.secrets)
