"""Model providers of a workspace: the built-in ones plus those users add (secrets sealed at rest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headwater import telemetry
from headwater.config import Settings
from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.providers.base import ChatProvider, ProviderConfig
from headwater.providers.registry import TEST_PROVIDER_TYPES, ProviderPool, split_model_name
from headwater.services.secrets_box import SecretBox
from headwater.store.config_cache import cache_of
from headwater.store.models import Provider

USER_PROVIDER_TYPES = ("openai", "anthropic")
LOCAL_MODEL_NAME = "gemma-3-270m"

_providers = Provider.__table__
# On the table's columns: a plain Core select skips the ORM's per-statement compile step.
_ROW_BY_NAME = select(
    _providers.c.id, _providers.c.name, _providers.c.type, _providers.c.base_url, _providers.c.api_key_encrypted,
    _providers.c.models,
).where(_providers.c.workspace_id == bindparam("workspace_id"), _providers.c.name == bindparam("name"))
# pool -> {row values -> (client, models)}. Keyed by the whole row, so it can never serve a
# stale provider; it only saves decrypting the key and fingerprinting the config per call.
_resolved: WeakKeyDictionary[ProviderPool, dict[tuple, tuple[ChatProvider, list[str]]]] = WeakKeyDictionary()
_RESOLVED_MAX = 1024


@dataclass(slots=True)
class ProviderView:
    """What the API shows of a provider: never its secret."""

    id: str
    name: str
    type: str
    base_url: str | None
    models: list[str]
    has_api_key: bool
    builtin: bool
    created_at: datetime | None = None
    extra: dict = field(default_factory=dict)


def builtin_configs(settings: Settings) -> dict[str, ProviderConfig]:
    configs = {"local": ProviderConfig(name="local", type="local", models=[LOCAL_MODEL_NAME])}
    if settings.enable_fake_provider:
        configs.update({name: ProviderConfig(name=name, type=name) for name in TEST_PROVIDER_TYPES})
    return configs


class ProviderService:
    def __init__(self, db: AsyncSession, settings: Settings, pool: ProviderPool, box: SecretBox):
        self.db = db
        self.settings = settings
        self.pool = pool
        self.box = box
        self.builtins = builtin_configs(settings)

    async def create(
        self, workspace_id: str, *, name: str, type: str, base_url: str | None,
        api_key: str | None, models: list[str],
    ) -> ProviderView:
        if name in self.builtins or name in ("local", *TEST_PROVIDER_TYPES):
            raise Conflict(f"'{name}' is a built-in provider name")
        if type == "local":
            raise InvalidInput(
                "the local provider is built in as 'local'; choose its GGUF file with HEADWATER_LOCAL_MODEL_PATH"
            )
        if type not in USER_PROVIDER_TYPES:
            raise InvalidInput(f"type must be one of {', '.join(USER_PROVIDER_TYPES + ('local',))}")
        if type == "openai" and not base_url and not api_key:
            raise InvalidInput("an openai provider needs a base_url, an api_key, or both")
        row = Provider(
            workspace_id=workspace_id, name=name, type=type, base_url=base_url,
            api_key_encrypted=self.box.seal(api_key) if api_key else None, models=list(models),
        )
        self.db.add(row)
        try:
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise Conflict(f"a provider named '{name}' already exists") from None
        return self._view(row)

    async def list(self, workspace_id: str) -> list[ProviderView]:
        views = [
            ProviderView(id=c.name, name=c.name, type=c.type, base_url=None, models=c.models,
                         has_api_key=False, builtin=True)
            for c in self.builtins.values()
        ]
        rows = await self.db.scalars(
            select(Provider).where(Provider.workspace_id == workspace_id).order_by(Provider.created_at)
        )
        return views + [self._view(row) for row in rows]

    async def get(self, workspace_id: str, id_or_name: str) -> ProviderView:
        return self._view(await self._row(workspace_id, id_or_name))

    async def delete(self, workspace_id: str, id_or_name: str) -> None:
        if id_or_name in self.builtins:
            raise InvalidInput(f"'{id_or_name}' is built in and cannot be deleted")
        row = await self._row(workspace_id, id_or_name)
        await self.db.execute(delete(Provider).where(Provider.id == row.id))
        await self.db.commit()

    async def resolve(self, workspace_id: str, full_model: str) -> tuple[ChatProvider, str]:
        """`<provider>/<model>` → a ready provider client and the provider's own model name."""
        provider_name, model = split_model_name(full_model)
        config = self.builtins.get(provider_name)
        if config is not None:
            if config.models and model not in config.models:
                raise InvalidInput(
                    f"unknown model '{full_model}': provider '{provider_name}' offers {', '.join(config.models)}"
                )
            return telemetry.traced_provider(self.pool.get(config), config.name, config.type), model
        # The row comes from the config cache, which any change to the providers empties in
        # every process (an edit or delete applies at once); what is derived from it
        # (decrypted key, pooled client) is reused while the row is byte-for-byte the same.
        row = await cache_of(self.db.bind).get(
            ("provider", workspace_id, provider_name),
            lambda: self._row_by_name(workspace_id, provider_name),
        )
        if row is None:
            raise InvalidInput(f"unknown model '{full_model}': no provider named '{provider_name}'")
        cache = _resolved.setdefault(self.pool, {})
        key = (row.id, row.name, row.type, row.base_url, row.api_key_encrypted, tuple(row.models or ()))
        resolved = cache.get(key)
        if resolved is None:
            config = ProviderConfig(
                name=row.name, type=row.type, base_url=row.base_url, models=list(row.models or []),
                api_key=self.box.open(row.api_key_encrypted) if row.api_key_encrypted else None,
            )
            if len(cache) >= _RESOLVED_MAX:
                cache.clear()
            resolved = cache[key] = (telemetry.traced_provider(self.pool.get(config), config.name, config.type),
                                     config.models)
        provider, models = resolved
        if models and model not in models:
            raise InvalidInput(f"unknown model '{full_model}': provider '{provider_name}' offers {', '.join(models)}")
        return provider, model

    async def _row_by_name(self, workspace_id: str, name: str):
        return (await self.db.execute(_ROW_BY_NAME, {"workspace_id": workspace_id, "name": name})).first()

    async def resolve_config(self, workspace_id: str, full_model: str) -> tuple[ProviderConfig, str]:
        """`<provider>/<model>` → the provider's stored config (secret decrypted) and the model name.

        For callers that need the endpoint rather than a chat client (embeddings,
        transcription); the provider's chat `models` list is not checked here.
        """
        provider_name, model = split_model_name(full_model)
        config = self.builtins.get(provider_name)
        if config is not None:
            return config, model
        row = await self.db.scalar(
            select(Provider).where(Provider.workspace_id == workspace_id, Provider.name == provider_name)
        )
        if row is None:
            raise InvalidInput(f"unknown model '{full_model}': no provider named '{provider_name}'")
        return ProviderConfig(
            name=row.name, type=row.type, base_url=row.base_url, models=list(row.models or []),
            api_key=self.box.open(row.api_key_encrypted) if row.api_key_encrypted else None,
        ), model

    async def _row(self, workspace_id: str, id_or_name: str) -> Provider:
        row = await self.db.scalar(
            select(Provider).where(
                Provider.workspace_id == workspace_id,
                (Provider.id == id_or_name) | (Provider.name == id_or_name),
            )
        )
        if row is None:
            raise NotFound("provider not found")
        return row

    @staticmethod
    def _view(row: Provider) -> ProviderView:
        return ProviderView(
            id=row.id, name=row.name, type=row.type, base_url=row.base_url, models=list(row.models or []),
            has_api_key=row.api_key_encrypted is not None, builtin=False, created_at=row.created_at,
        )
