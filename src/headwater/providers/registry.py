"""From a stored `ProviderConfig` to a live provider, reusing clients.

Building an SDK client per request would throw away its connection pool (and
TLS handshakes) every time, so instances are cached. The cache key is a
fingerprint of everything that shapes the client, so editing a provider's URL
or key yields a fresh client on the next request while unchanged configs keep
theirs. The API key enters the fingerprint only as a hash, so the key material
is not kept around in one more place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from headwater.config import Settings, get_settings
from headwater.errors import InvalidInput
from headwater.providers.base import ChatProvider, ProviderConfig

__all__ = ("ProviderPool", "PROVIDER_TYPES", "TEST_PROVIDER_TYPES", "builtin_config", "split_model_name")

PROVIDER_TYPES = ("openai", "anthropic", "local", "fake", "scripted")
# The package's deterministic providers, built in under their type's name when HEADWATER_ENABLE_FAKE_PROVIDER is set.
TEST_PROVIDER_TYPES = ("fake", "scripted")


def split_model_name(full: str) -> tuple[str, str]:
    """"<provider>/<model>" -> (provider, model), split on the first slash only:
    model names have slashes of their own ("myollama/library/llama3:8b")."""
    provider, sep, model = full.partition("/")
    if not sep or not provider or not model:
        raise InvalidInput(
            f"model {full!r} must be written as '<provider>/<model>', e.g. 'local/gemma-3-270m'"
        )
    return provider, model


def builtin_config(name: str, settings: Settings) -> ProviderConfig | None:
    """Providers that exist without being stored: `local`, and `fake` and `scripted` when enabled."""
    if name == "local":
        return ProviderConfig(name="local", type="local")
    if name in TEST_PROVIDER_TYPES and settings.enable_fake_provider:
        return ProviderConfig(name=name, type=name)
    return None


def _fingerprint(config: ProviderConfig) -> str:
    key_hash = hashlib.sha256(config.api_key.encode()).hexdigest() if config.api_key else None
    material = [config.type, config.base_url, key_hash, sorted(config.models), config.options]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class ProviderPool:
    """Builds and caches provider instances; one per distinct configuration."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self._by_fingerprint: dict[str, ChatProvider] = {}
        self._fingerprint_of: dict[str, str] = {}
        # Replaced instances may still be serving a stream that started before
        # the edit, so they are closed with the pool rather than on the spot.
        self._retired: list[ChatProvider] = []

    def get(self, config: ProviderConfig) -> ChatProvider:
        if config.type == "local":
            # Not cached here: the model is process-wide, whichever pool asks.
            from headwater.providers.local_llama import shared_local_provider

            return shared_local_provider(self.settings)
        fingerprint = _fingerprint(config)
        provider = self._by_fingerprint.get(fingerprint)
        if provider is None:
            provider = self._by_fingerprint[fingerprint] = self._build(config)
        previous = self._fingerprint_of.get(config.name)
        self._fingerprint_of[config.name] = fingerprint
        if previous is not None and previous != fingerprint and previous not in self._fingerprint_of.values():
            self._retired.append(self._by_fingerprint.pop(previous))
        return provider

    def _build(self, config: ProviderConfig) -> ChatProvider:
        builder = self._builders().get(config.type)
        if builder is None:
            raise InvalidInput(
                f"provider {config.name!r} has unknown type {config.type!r}; "
                f"expected one of {', '.join(PROVIDER_TYPES)}"
            )
        return builder(config)

    def _builders(self) -> dict[str, Callable[[ProviderConfig], ChatProvider]]:
        return {"openai": self._openai, "anthropic": self._anthropic, "fake": self._fake, "scripted": self._scripted}

    def _timeout(self, config: ProviderConfig) -> float:
        return float(config.options.get("timeout", self.settings.provider_timeout_seconds))

    def _max_retries(self, config: ProviderConfig) -> int:
        return int(config.options.get("max_retries", self.settings.provider_max_retries))

    def _openai(self, config: ProviderConfig) -> ChatProvider:
        from headwater.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=self._timeout(config),
            max_retries=self._max_retries(config),
            options=config.options,
            name=config.name,
        )

    def _anthropic(self, config: ProviderConfig) -> ChatProvider:
        from headwater.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=self._timeout(config),
            max_retries=self._max_retries(config),
            name=config.name,
        )

    def _fake(self, config: ProviderConfig) -> ChatProvider:
        if not self.settings.enable_fake_provider:
            raise InvalidInput("the fake provider is disabled (set HEADWATER_ENABLE_FAKE_PROVIDER=1 to use it)")
        from headwater.providers.fake import FakeProvider

        return FakeProvider()

    def _scripted(self, config: ProviderConfig) -> ChatProvider:
        if not self.settings.enable_fake_provider:
            raise InvalidInput("the scripted provider is disabled (set HEADWATER_ENABLE_FAKE_PROVIDER=1 to use it)")
        from headwater.providers.scripted import ScriptedProvider

        return ScriptedProvider()

    async def aclose(self) -> None:
        """Close every client this pool built (the shared local model stays loaded)."""
        providers = [*self._by_fingerprint.values(), *self._retired]
        self._by_fingerprint.clear()
        self._fingerprint_of.clear()
        self._retired.clear()
        for provider in providers:
            await provider.aclose()
